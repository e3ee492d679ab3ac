// npm run bench:frames — what compressing `events` frames would save, measured on real frames:
// a DRU writes a partition-heal-like workload (1,000 documents, a counter and a short string
// per op), its log is cut into the batches sync sends, each batch encoded as the wire frame,
// then compressed one frame at a time with node:zlib deflate (raw) and brotli at several
// levels. Reports the ratio and the throughput of each, median of 3 runs, and writes the
// `bench:frames` section of RESULTS.md. Nothing in the protocol changes: this is the evidence
// for choosing a codec (issue 13, "compact wire").
import * as zlib from 'node:zlib'
import * as A from '@automerge/automerge'
import { openDru, generateKeys } from '@dru/node'
import { encodeFrame } from '@dru/sync'
import { machineLine, summarize, writeSection } from './results.mjs'

const quick = process.argv.includes('--quick')
const DOCS = 1_000
const OPS = quick ? 5_000 : 20_000
const RUNS = quick ? 1 : 3
const BATCH_BYTES = 256 * 1024

const keys = generateKeys()
const dru = await openDru({
  id: 'bench',
  path: ':memory:',
  keys: { privateKey: keys.privateKey, publicKeys: { bench: keys.publicKey } },
})
const words = ['placed', 'paid', 'packed', 'shipped', 'delivered', 'returned', 'cancelled']
for (let i = 0; i < OPS; i++) {
  await dru.change(`doc-${i % DOCS}`, (d) => {
    if (d.n === undefined) d.n = new A.Counter(0)
    else d.n.increment(1)
    d.status = words[i % words.length]
  })
}
const frames = []
for (const batch of dru.store.eventsMissing({}, { maxBatchBytes: BATCH_BYTES }))
  frames.push(encodeFrame({ type: 'events', batch }))
await dru.close()
const rawBytes = frames.reduce((n, f) => n + f.byteLength, 0)
const events = OPS

const codecs = [
  ['deflate-raw level 1', (b) => zlib.deflateRawSync(b, { level: 1 }), (b) => zlib.inflateRawSync(b)],
  ['deflate-raw level 6', (b) => zlib.deflateRawSync(b, { level: 6 }), (b) => zlib.inflateRawSync(b)],
  ['deflate-raw level 9', (b) => zlib.deflateRawSync(b, { level: 9 }), (b) => zlib.inflateRawSync(b)],
  ...[1, 4, 6, 11].map((q) => [
    `brotli quality ${q}`,
    (b) =>
      zlib.brotliCompressSync(b, {
        params: { [zlib.constants.BROTLI_PARAM_QUALITY]: q, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: b.byteLength },
      }),
    (b) => zlib.brotliDecompressSync(b),
  ]),
]

const rows = []
for (const [name, compress, decompress] of codecs) {
  const ratios = []
  const cSpeeds = []
  const dSpeeds = []
  for (let r = 0; r < RUNS; r++) {
    let out = 0
    const t0 = performance.now()
    const packed = frames.map((f) => compress(f))
    const t1 = performance.now()
    for (const p of packed) out += decompress(p).byteLength
    const t2 = performance.now()
    if (out !== rawBytes) throw new Error(`${name}: round trip lost bytes`)
    ratios.push(packed.reduce((n, p) => n + p.byteLength, 0) / rawBytes)
    cSpeeds.push(rawBytes / 2 ** 20 / ((t1 - t0) / 1000))
    dSpeeds.push(rawBytes / 2 ** 20 / ((t2 - t1) / 1000))
  }
  rows.push({ name, ratio: summarize(ratios), compress: summarize(cSpeeds), decompress: summarize(dSpeeds) })
  console.log(`${name}: ${summarize(ratios).median.toFixed(3)} of the bytes`)
}

// The pick: the smallest output among codecs that keep up with a live stream (≥ 100 MiB/s,
// ten times bench:sync's catch-up rate), ties to the faster.
const fast = rows.filter((r) => r.compress.median >= 100)
const pick = fast.sort((a, b) => a.ratio.median - b.ratio.median || b.compress.median - a.compress.median)[0]
const best = [...rows].sort((a, b) => a.ratio.median - b.ratio.median)[0]
const f = (s, d) => `${s.median.toFixed(d)} (${s.min.toFixed(d)}–${s.max.toFixed(d)})`
const table = [
  '| codec (one frame at a time) | bytes after ÷ before | compress, MiB/s | decompress, MiB/s |',
  '| --- | ---: | ---: | ---: |',
  ...rows.map((r) => `| ${r.name} | ${f(r.ratio, 3)} | ${f(r.compress, 0)} | ${f(r.decompress, 0)} |`),
].join('\n')

writeSection(
  'bench:frames',
  `## Compressing events frames (\`npm run bench:frames\`)

Command: \`npm run bench:frames\` (benchmarks/frame-compression.mjs). Machine: ${machineLine()}.
One DRU writes ${OPS.toLocaleString('en-US')} ops over ${DOCS.toLocaleString('en-US')} documents (each op: a counter increment and a
short status string, one signed change each: ${events.toLocaleString('en-US')} events); its log is cut into the batches sync sends
(${BATCH_BYTES / 1024} KiB), each encoded as the wire \`events\` frame (${frames.length} frames, ${(rawBytes / 2 ** 20).toFixed(2)} MiB,
${Math.round(rawBytes / events)} bytes per event) and compressed alone, as a sender would before sealing it. Median of ${RUNS} run(s), range in
brackets. Nothing in the protocol changes yet: this is what choosing a codec rests on.

${table}

Pick for the wire: **${pick.name}** (${pick.ratio.median.toFixed(3)} of the bytes at ${pick.compress.median.toFixed(0)} MiB/s): the smallest output among
codecs compressing at least 100 MiB/s. ${best.name} saves more (${best.ratio.median.toFixed(3)}) at ${best.compress.median.toFixed(0)} MiB/s, too slow for a
live stream. Hex hashes and repeated origin and document ids are most of what compresses; sending
binary hashes and dictionary-coded ids (issue 13) would take part of this gain without a codec.`,
)
