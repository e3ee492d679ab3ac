// The materialise step of a 3-way partition heal, profiled in one process (no replicas
// contending for the cores, which inflates the JS share of heal-profile.mjs's samples
// several times): three stores write the compare harness's workload to shared documents,
// then one ingests the other two's events and reads every document, under the CPU profiler.
//
//   node benchmarks/materialize-profile.mjs [--ops 20000] [--docs 1000] [--out DIR] [--conflicts FILE]
//
// Prints the CPU-s under Materializer.materialize: Automerge's applyChanges, its getConflicts
// (asked once per conflicted path), SQLite, and dru's own JavaScript. --conflicts writes the
// conflicts table (every row, values and writers) to compare two builds (seeded: equal runs
// give equal bytes). Not a timing benchmark: compare the split, not wall time.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DocumentStore } from '@dru/documents'
import { EventStore } from '@dru/store-sqlite'
import { ops } from './compare/workload.mjs'

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : dflt
}
const OPS = Number(arg('ops', '20000'))
const DOCS = Number(arg('docs', '1000'))
const out = arg('out', mkdtempSync(join(tmpdir(), 'dru-materialize-profile-')))

let clock = 1_700_000_000_000
const now = () => clock
const sides = ['a-1', 'b-1', 'c-1'].map((druId) => {
  const draws = [0, 1] // incarnation 1 on every run: equal runs log equal bytes
  const store = EventStore.open({
    path: ':memory:',
    druId,
    now,
    skewPolicy: 'tolerate',
    random: () => draws.shift() ?? 2,
  })
  const onError = (e) => {
    throw e
  }
  return {
    store,
    docs: new DocumentStore(store, { now, onError, conflictPolicy: 'keep-visible', backgroundApply: false }),
  }
})
for (let d = 0; d < DOCS; d++)
  sides[0].docs.change(`doc-${d}`, (x) => {
    x.k0 = 0
  })
for (const to of sides.slice(1)) for (const b of sides[0].store.eventsMissing(to.store.vv())) to.store.ingest(b)
for (const s of sides) for (let d = 0; d < DOCS; d++) s.docs.get(`doc-${d}`)
sides.forEach((s, replica) => {
  for (const op of ops({ seed: 1, replica, count: OPS, docs: DOCS })) {
    clock++
    s.docs.change(`doc-${op.doc}`, (x) => {
      x[op.key] = op.value
    })
  }
})
const me = sides[0]
const batches = []
for (const from of sides.slice(1)) for (const b of from.store.eventsMissing(me.store.vv())) batches.push(b)

const session = new Session()
session.connect()
const post = (method, params) =>
  new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))))
await post('Profiler.enable')
await post('Profiler.setSamplingInterval', { interval: 200 })
await post('Profiler.start')
for (const b of batches) me.store.ingest(b)
for (let d = 0; d < DOCS; d++) me.docs.get(`doc-${d}`)
const { profile } = await post('Profiler.stop')
mkdirSync(out, { recursive: true })
writeFileSync(join(out, 'materialize.cpuprofile'), JSON.stringify(profile))
const conflictsFile = arg('conflicts')
if (conflictsFile) writeFileSync(conflictsFile, JSON.stringify(me.docs.listConflicts('all')))

// Every sample under materialize, by what it was doing (the first match from the leaf up).
const parent = new Map()
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n)
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const split = { total: 0, applyChanges: 0, getConflicts: 0, sqlite: 0 }
profile.samples.forEach((id, i) => {
  const frames = []
  for (let n = byId.get(id); n; n = parent.get(n.id)) frames.push(n.callFrame)
  const at = frames.findIndex((f) => f.functionName === 'materialize' && f.url.endsWith('materializer.js'))
  if (at < 0) return
  const dt = profile.timeDeltas[i] ?? 0
  const below = frames.slice(0, at)
  split.total += dt
  if (below.some((f) => f.functionName === 'applyChanges' && f.url.includes('automerge'))) split.applyChanges += dt
  else if (below.some((f) => f.functionName === 'getConflicts')) split.getConflicts += dt
  else if (below.some((f) => f.url === '' || f.url.includes('better-sqlite3'))) split.sqlite += dt
})
const s = (us) => (us / 1e6).toFixed(2)
const own = split.total - split.applyChanges - split.getConflicts - split.sqlite
console.log(`ops=${OPS} docs=${DOCS}: ${me.docs.conflictCounts().resolved.policy ?? 0} conflicts recorded`)
console.log(
  `CPU s under materialize ${s(split.total)}: applyChanges ${s(split.applyChanges)}, getConflicts ${s(split.getConflicts)}, SQLite and other native ${s(split.sqlite)}, dru JS ${s(own)}`,
)
console.log(`profile: ${join(out, 'materialize.cpuprofile')}`)
