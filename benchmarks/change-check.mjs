// bench:change-check — what ingest's change check (checkChanges) costs per received change,
// against Automerge's full decode it used to run on each. 40,000 real changes, like one DRU's
// share of the partition heal (2 peers × 20,000): 2 origins × 20 documents × 1,000 changes
// each, every change a few puts in a map and a list, some nesting.
//
//   npx tsc -b && node benchmarks/change-check.mjs [--rounds 5]
import * as A from '@automerge/automerge'
import { GENESIS_HASH, encodeHlc, sealEvent } from '@dru/core'
import { actorForOrigin, checkChanges } from '@dru/documents'

const at = process.argv.indexOf('--rounds')
const rounds = at > 0 ? Number(process.argv[at + 1]) : 5
const events = []
for (const origin of ['dru-a', 'dru-b']) {
  for (let doc = 0; doc < 20; doc++) {
    let d = A.init({ actor: actorForOrigin(origin) })
    let prev = GENESIS_HASH
    for (let i = 0; i < 1000; i++) {
      d = A.change(d, (x) => {
        x[`k${i % 7}`] = i
        x.title = `note ${i}`
        if (i === 0) x.items = []
        x.items.push({ n: i, tags: ['a'] })
      })
      const change = A.getLastLocalChange(d)
      const e = sealEvent({
        origin,
        seq: doc * 1000 + i + 1,
        hlc: encodeHlc({ wall: 1_700_000_000_000 + i, counter: 0, node: origin }),
        docId: `doc-${doc}`,
        change,
        prev,
      })
      prev = e.hash
      events.push(e)
    }
    A.free(d)
  }
}
const bytes = events.reduce((n, e) => n + e.change.length, 0)

/** Median µs per change of `fn` over fresh copies of the events (checkChanges remembers what it checked, by bytes). */
function measure(fn) {
  const samples = []
  for (let r = 0; r < rounds; r++) {
    const fresh = events.map((e) => ({ ...e, change: Uint8Array.from(e.change) }))
    const t = performance.now()
    fn(fresh)
    samples.push(((performance.now() - t) * 1000) / events.length)
  }
  samples.sort((a, b) => a - b)
  return { median: samples[samples.length >> 1], min: samples[0], max: samples[samples.length - 1] }
}

const fmt = ({ median, min, max }) => `${median.toFixed(2)} µs (${min.toFixed(2)}–${max.toFixed(2)})`
console.log(`${events.length} changes, ${(bytes / events.length).toFixed(0)} B each on average, ${rounds} rounds`)
console.log(
  `A.decodeChange       ${fmt(
    measure((es) => {
      for (const e of es) A.decodeChange(e.change)
    }),
  )} per change`,
)
console.log(
  `checkChanges         ${fmt(
    measure((es) => {
      for (let i = 0; i < es.length; i += 500) checkChanges(es.slice(i, i + 500))
    }),
  )} per change`,
)
