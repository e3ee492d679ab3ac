// bench:cache — memory stays bounded by the document cache, not by the number of documents:
// 100,000 documents touched (written, then read back cold) with the cache set to 1,000
// documents. Writes the `bench:cache` section of RESULTS.md.
//
//   npm run bench:cache        (BENCH_CACHE_DOCS=100000, BENCH_CACHE_SIZE=1000)
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openDru } from '@dru/node'
import { machineLine, writeSection } from './results.mjs'

const DOCS = Number(process.env.BENCH_CACHE_DOCS ?? 100_000)
const CACHE = Number(process.env.BENCH_CACHE_SIZE ?? 1_000)
const BATCH = 500
const dir = mkdtempSync(join(tmpdir(), 'dru-bench-cache-'))
const mib = (b) => (b / 2 ** 20).toFixed(1)

const dru = await openDru({
  id: 'cache-bench',
  path: join(dir, 'c.db'),
  durability: 'process',
  cache: { maxDocs: CACHE },
})
globalThis.gc?.()
const baseline = process.memoryUsage().rss
let peak = baseline
const samples = []
const sample = (phase, i) => {
  const m = process.memoryUsage()
  peak = Math.max(peak, m.rss)
  if (i % 10_000 === 0) console.log(phase, i, mib(m.rss), 'MiB', Math.round(performance.now() / 1000), 's')
  if (i % 10_000 === 0)
    samples.push({ phase, i, rss: m.rss, heap: m.heapUsed, cached: dru.documents.stats().cachedDocs })
}

const t0 = performance.now()
for (let i = 0; i < DOCS; i += BATCH) {
  dru.transact((tx) => {
    for (let j = i; j < Math.min(DOCS, i + BATCH); j++) {
      tx.change(`doc-${j}`, (d) => {
        d.title = `document ${j}`
        d.n = j
      })
    }
  })
  sample('write', i + BATCH)
}
const writeMs = performance.now() - t0
const t1 = performance.now()
let checked = 0
for (let i = 0; i < DOCS; i++) {
  const doc = dru.get(`doc-${i}`)
  if (doc?.n !== i) throw new Error(`doc-${i} read back wrong: ${JSON.stringify(doc)}`)
  checked++
  if ((i + 1) % 1000 === 0) sample('read', i + 1)
}
const readMs = performance.now() - t1
const stats = dru.documents.stats()
await dru.close()
rmSync(dir, { recursive: true, force: true })

console.log(
  `baseline ${mib(baseline)} MiB, peak ${mib(peak)} MiB, cached ${stats.cachedDocs}, evictions ${stats.evictions}`,
)
const table = [
  '| phase | documents touched | RSS MiB | JS heap MiB | documents in cache |',
  '| --- | ---: | ---: | ---: | ---: |',
  ...samples.map(
    (s) =>
      `| ${s.phase} | ${s.i.toLocaleString('en')} | ${mib(s.rss)} | ${mib(s.heap)} | ${s.cached.toLocaleString('en')} |`,
  ),
]
writeSection(
  'bench:cache',
  `## bench:cache — RSS with ${DOCS.toLocaleString('en')} documents and a ${CACHE.toLocaleString('en')}-document cache

Command: \`npm run bench:cache\` (benchmarks/cache-rss.mjs). Machine: ${machineLine()}.

${DOCS.toLocaleString('en')} documents written (2 fields each, ${BATCH} changes per \`dru.transact\`, \`durability: 'process'\`),
then every one read back with \`dru.get()\` (cold loads from the log, checked), with \`cache: { maxDocs: ${CACHE} }\`.

**Peak RSS: ${mib(peak)} MiB** (RSS after open: ${mib(baseline)} MiB; growth ${mib(peak - baseline)} MiB).
Stated bound for this configuration: 256 MiB. Cache at the end: ${stats.cachedDocs.toLocaleString('en')} documents,
${stats.evictions.toLocaleString('en')} evictions, ${stats.loads.toLocaleString('en')} cold loads.
Write ${Math.round((DOCS / writeMs) * 1000).toLocaleString('en')} docs/s, cold read ${Math.round((checked / readMs) * 1000).toLocaleString('en')} docs/s.

${table.join('\n')}
`,
)
if (peak > 256 * 2 ** 20) {
  console.error(`peak RSS ${mib(peak)} MiB exceeds the stated 256 MiB bound`)
  process.exitCode = 1
}
