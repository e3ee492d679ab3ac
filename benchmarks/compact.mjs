// npm run bench:compact [-- --quick] [--docs D] [--changes N[,N2…]] [--runs R]
//
// Compaction and bootstrap below the floor, each DRU its own process on 127.0.0.1:
// 1. DRU a writes N Automerge changes over D documents, stops cleanly; its file is copied.
// 2. a compacts (its log empties: no peers, so the floor is its own vector): time, events
//    and pages before/after.
// 3. A fresh DRU b joins the compacted a and is bootstrapped from document snapshots; a
//    fresh DRU c joins the uncompacted copy and catches up from events. Time from start to
//    equal fingerprints and state digests, bytes received, peak RSS, for both.
// Writes section `bench:compact` of benchmarks/RESULTS.md.
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateKeys } from '@dru/sync'
import { forkChild } from './ipc-child.mjs'
import { machineLine, summarize, writeSection } from './results.mjs'

const argv = process.argv.slice(2)
const quick = argv.includes('--quick')
const arg = (name, dflt) => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? Number(argv[i + 1]) : dflt
}
const DOCS = arg('docs', quick ? 200 : 1000)
const i = argv.indexOf('--changes')
// Two history lengths by default: bootstrap cost follows documents, catch-up cost follows events.
const SIZES = i >= 0 ? argv[i + 1].split(',').map(Number) : quick ? [4000] : [40_000, 200_000]
const RUNS = arg('runs', quick ? 1 : 3)
const FIXTURE = fileURLToPath(new URL('./fixtures/compact-dru.mjs', import.meta.url))
const SECRET = 'bench-cluster-secret-0123456789'
const dir = mkdtempSync(join(tmpdir(), 'dru-bench-compact-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))

const ids = ['a', 'b', 'c']
const pairs = Object.fromEntries(ids.map((id) => [id, generateKeys()]))
const publicKeys = Object.fromEntries(ids.map((id) => [id, pairs[id].publicKey]))
const keys = (id) => ({ privateKey: pairs[id].privateKey, publicKeys })

function start(config) {
  return forkChild(
    FIXTURE,
    { DRU_CONFIG: JSON.stringify({ secret: SECRET, durability: 'process', ...config }) },
    config.id,
  )
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const mib = (b) => (b / 2 ** 20).toFixed(2)
const fmt = (n) => Math.round(n).toLocaleString('en-US')

/** A fresh DRU `id` joining `source`; resolves when its fingerprint and state digest equal the source's. */
async function join1(id, sourcePort, expected) {
  const t0 = performance.now()
  const d = start({
    id,
    path: join(dir, `${id}-${Math.random().toString(36).slice(2)}.db`),
    keys: keys(id),
    listen: { host: '127.0.0.1', port: 0 },
    peers: [{ id: 'a', url: `ws://127.0.0.1:${sourcePort}` }],
  })
  await d.ready
  for (;;) {
    const s = await d.call('state', { digest: false })
    if (JSON.stringify(s.fingerprint.vv) === JSON.stringify(expected.fingerprint.vv)) {
      const ms = performance.now() - t0
      // Converged means the same materialised state too, not just the same vector.
      const full = await d.call('state')
      if (full.digest.digest !== expected.digest.digest)
        throw new Error(`${id} has the source's vector but another state digest`)
      await d.stop()
      return { ms, ...full }
    }
    if (performance.now() - t0 > 300_000) throw new Error(`${id} did not converge in 300 s`)
    await sleep(20)
  }
}

async function measure(CHANGES) {
  const rows = []
  for (let run = 0; run < RUNS; run++) {
    const path = join(dir, `a-${run}.db`)
    const copy = join(dir, `a-${run}-copy.db`)
    // 1. write, stop cleanly, copy the file (an uncompacted twin for the baseline).
    let a = start({ id: 'a', path, keys: keys('a') })
    await a.ready
    await a.call('write', { docs: DOCS, changes: CHANGES })
    const before = await a.call('state')
    await a.stop()
    copyFileSync(path, copy)

    // 2. compact (standalone: the floor is its own vector).
    a = start({ id: 'a', path, keys: keys('a') })
    await a.ready
    const t0 = performance.now()
    const report = await a.call('compact')
    const compactMs = performance.now() - t0
    const after = await a.call('state')
    if (after.digest.digest !== before.digest.digest) throw new Error('compaction changed the documents')
    await a.stop()

    // 3. bootstrap from the compacted a vs catch-up from the uncompacted copy.
    a = start({ id: 'a', path, keys: keys('a'), listen: { host: '127.0.0.1', port: 0 } })
    const { port } = await a.ready
    const boot = await join1('b', port, after)
    await a.stop()
    const twin = start({ id: 'a', path: copy, keys: keys('a'), listen: { host: '127.0.0.1', port: 0 } })
    const { port: twinPort } = await twin.ready
    const catchUp = await join1('c', twinPort, before)
    await twin.stop()
    if (boot.snapshotDocsIn === 0) throw new Error('b was not bootstrapped from snapshots')
    rows.push({ before, report, compactMs, after, boot, catchUp })
    process.stdout.write(
      `run ${run + 1}: compact ${compactMs.toFixed(0)} ms (${fmt(report.eventsRemoved)} events, ${fmt(report.docsSnapshotted)} snapshots); ` +
        `bootstrap ${boot.ms.toFixed(0)} ms / ${mib(boot.bytesIn)} MiB vs events ${catchUp.ms.toFixed(0)} ms / ${mib(catchUp.bytesIn)} MiB\n`,
    )
  }

  return rows
}

const cell = (s, unit = '', digits = 0) =>
  `${s.median.toFixed(digits)}${unit} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`
const results = []
for (const n of SIZES) results.push({ n, rows: await measure(n) })
/** One table column per history length. */
const row = (label, f) =>
  `| ${label} | ${results.map(({ rows }) => f((g) => summarize(rows.map(g)), rows[0])).join(' | ')} |`
const md = `## Compaction and bootstrap below the floor (\`npm run bench:compact${quick ? ' -- --quick' : ''}\`)

${machineLine()}. Automerge changes over ${fmt(DOCS)} documents written on one DRU (two history lengths), ${RUNS} run(s) each, median (min–max). Each DRU is its own process; sync over 127.0.0.1.

| measure | ${results.map(({ n }) => `${fmt(n)} changes (${fmt(n / DOCS)} per document)`).join(' | ')} |
| --- | ${results.map(() => '---').join(' | ')} |
${row('compaction time', (med) =>
  cell(
    med((r) => r.compactMs),
    ' ms',
  ),
)}
${row('events in the log before → after', (med, r0) => `${fmt(r0.before.events)} → ${fmt(r0.after.events)}`)}
${row('documents scanned / snapshots written by compaction (the rest were already covered by snapshots written on eviction and clean close)', (med, r0) => `${fmt(r0.report.docsScanned)} / ${fmt(r0.report.docsSnapshotted)}`)}
${row('database pages in use before → after (4 KiB pages; the file keeps its size, no VACUUM)', (med, r0) => `${fmt(r0.before.pages - r0.before.freePages)} → ${fmt(r0.after.pages - r0.after.freePages)}`)}
${row(
  'fresh DRU bootstrapped from snapshots: process start to equal fingerprint (state digest then checked equal)',
  (med) =>
    cell(
      med((r) => r.boot.ms),
      ' ms',
    ),
)}
${row('fresh DRU catching up from events (uncompacted twin): same', (med) =>
  cell(
    med((r) => r.catchUp.ms),
    ' ms',
  ),
)}
${row('ratio bootstrap time / event catch-up time (median)', (med) => (med((r) => r.boot.ms).median / med((r) => r.catchUp.ms).median).toFixed(2))}
${row('bytes received: snapshots vs events', (med, r0) => `${mib(r0.boot.bytesIn)} MiB vs ${mib(r0.catchUp.bytesIn)} MiB`)}
${row('peak RSS of the joining DRU: snapshots vs events', (med, r0) => `${mib(r0.boot.peakRss)} MiB vs ${mib(r0.catchUp.peakRss)} MiB`)}

Both joiners end with the same fingerprint and the same canonical state digest as the source.
A bootstrap materialises every document (one Automerge load per document), so its cost follows
the number of documents; catching up from events stores them without materialising cold
documents, so its cost follows the number of events. Bootstrap bytes follow the compacted
state, event bytes the history.
`
writeSection('bench:compact', md)
process.stdout.write(`\n${md}`)
