// bench:event-validate — what the receive path's per-event shape checks cost: validateEvent
// (every remote event, at ingest) and decodeHlc (validateEvent, the clock check and receive at
// ingest, the wire encoder). 100,000 events of 4 origins, each with a ~200-byte change.
//
//   npx tsc -b && node benchmarks/event-validate.mjs [--rounds 7]
import { GENESIS_HASH, decodeHlc, encodeHlc, sealEvent, validateEvent } from '@dru/core'

const at = process.argv.indexOf('--rounds')
const rounds = at > 0 ? Number(process.argv[at + 1]) : 7
const events = []
for (const origin of ['eu-west-1/3', 'us-east-2/7', 'ap-south-1/1', 'dru-d/4503599627370495']) {
  let prev = GENESIS_HASH
  for (let seq = 1; seq <= 25_000; seq++) {
    const e = sealEvent({
      origin,
      seq,
      hlc: encodeHlc({ wall: 1_700_000_000_000 + seq, counter: seq % 3, node: origin }),
      docId: `order-${seq % 500}`,
      change: new Uint8Array(200).fill(seq & 0xff),
      prev,
    })
    prev = e.hash
    events.push(seq % 10 === 0 ? { ...e, sig: new Uint8Array(64) } : e)
  }
}
const hlcs = events.map((e) => e.hlc)

/**
 * Median (min–max) ns per item of `fn`, `rounds` times. Items are timed in batches of 500
 * just copied (as the wire decoder builds them), so they are in cache as at ingest.
 */
function measure(items, copy, fn) {
  const samples = []
  for (let r = 0; r < rounds; r++) {
    let ms = 0
    for (let i = 0; i < items.length; i += 500) {
      const batch = items.slice(i, i + 500).map(copy)
      const t = performance.now()
      for (const x of batch) fn(x)
      ms += performance.now() - t
    }
    samples.push((ms * 1e6) / items.length)
  }
  samples.sort((a, b) => a - b)
  const f = (n) => n.toFixed(0)
  return `${f(samples[samples.length >> 1])} ns (${f(samples[0])}–${f(samples[samples.length - 1])})`
}

console.log(`${events.length} events, ${rounds} rounds`)
console.log(
  `validateEvent  ${measure(
    events,
    (e) => ({ ...e }),
    (e) => validateEvent(e),
  )} per event`,
)
console.log(
  `decodeHlc      ${measure(
    hlcs,
    (h) => (h + ' ').slice(0, -1),
    (h) => decodeHlc(h),
  )} per timestamp`,
)
