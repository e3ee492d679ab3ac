// npm run bench [-- --quick] [--only partition-heal,reconnect,local-writes,scale,ceilings]
//               [--docs D] [--ops N] [--sizes a,b,c] [--reconnect-docs a,b,c]
//               [--local-docs D] [--local-ops N] [--scale-docs N] [--runs R]
//               [--systems dru,automerge-repo,yjs,raw] [--budget S] [--seed K] [--out FILE]
//
// dru against automerge-repo (WebSocket network adapter, NodeFS storage) and Yjs
// (y-protocols sync over ws, one Y.Doc per document), and against raw ceilings measured
// in the same run, on one machine in one invocation. Every replica of every system runs in
// its own process; every link goes through a byte-counting proxy (proxy.mjs). Writes the
// `bench:compare` section of benchmarks/RESULTS.md (or of --out FILE) and the chart
// partition-heal.svg next to it.
import { fork } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { machineLine, summarize, writeSection } from '../results.mjs'
import { killAll, spawnReplica } from './child.mjs'
import { partitionHeal, DRU_PARTITION_SYNC } from './partition-heal.mjs'
import { reconnectCluster, CUT_MS, IDLE_MS, DRU_RECONNECT_SYNC } from './reconnect.mjs'
import { RETRY_MS } from './systems/automerge-repo.mjs'
import { rng } from './workload.mjs'
import { chartSvg } from './chart.mjs'

const started = performance.now()
const argv = process.argv.slice(2)
const KNOWN_FLAGS = [
  'quick',
  'only',
  'docs',
  'ops',
  'sizes',
  'reconnect-docs',
  'local-docs',
  'local-ops',
  'scale-docs',
  'runs',
  'systems',
  'budget',
  'seed',
  'out',
  'render',
  'chart-runs',
  'help',
]
// A full run takes over half an hour and rewrites RESULTS.md: never start one on a typo or --help.
if (argv.includes('--help') || argv.includes('-h')) {
  const lines = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n')
  const header = lines.slice(
    0,
    lines.findIndex((l) => !l.startsWith('//')),
  )
  process.stdout.write(`${header.map((l) => l.slice(3)).join('\n')}\n`)
  process.exit(0)
}
for (const a of argv) {
  if (a.startsWith('-') && !KNOWN_FLAGS.includes(a.replace(/^--?/, ''))) {
    process.stderr.write(`unknown option ${a} (known: ${KNOWN_FLAGS.map((f) => `--${f}`).join(' ')})\n`)
    process.exit(2)
  }
}
const quick = argv.includes('--quick')
const flag = (name) => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? argv[i + 1] : undefined
}
const num = (name, dflt) => (flag(name) === undefined ? dflt : Number(flag(name)))
const list = (name, dflt) =>
  flag(name) === undefined
    ? dflt
    : flag(name)
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean)

const WORKLOADS = ['partition-heal', 'reconnect', 'local-writes', 'scale', 'ceilings']
const only = list('only', WORKLOADS)
for (const w of only)
  if (!WORKLOADS.includes(w)) throw new Error(`--only: unknown workload ${w} (known: ${WORKLOADS.join(', ')})`)
const SYSTEMS = list('systems', ['dru', 'automerge-repo', 'yjs', 'raw'])
const NAMES = { dru: 'dru', 'automerge-repo': 'automerge-repo', yjs: 'Yjs', raw: 'raw ceiling' }

const RUNS = num('runs', 3)
const SEED = num('seed', 42)
const DOCS = num('docs', quick ? 20 : 1000)
const OPS = num('ops', quick ? 200 : 20_000)
const SIZES = [...new Set([...list('sizes', quick ? ['50'] : ['2000', '5000']).map(Number), OPS])].sort((a, b) => a - b)
const CHART_RUNS = num('chart-runs', 1)
const RECONNECT_DOCS = list('reconnect-docs', quick ? ['100'] : ['1000', '10000', '100000']).map(Number)
const LOCAL_DOCS = num('local-docs', quick ? 100 : 1000)
const LOCAL_OPS = num('local-ops', quick ? 500 : 10_000)
const SCALE_DOCS = num('scale-docs', quick ? 500 : 1_000_000)
const BUDGET = flag('budget') === undefined ? undefined : Number(flag('budget'))
// npm runs workspace scripts in benchmarks/; a relative --out is taken from where npm was started.
const OUT = flag('out')
  ? resolve(process.env.INIT_CWD ?? process.cwd(), flag('out'))
  : fileURLToPath(new URL('../RESULTS.md', import.meta.url))
const SVG = join(dirname(OUT), 'partition-heal.svg')

/** Seconds a cell may take before it is reported as "did not finish". */
const budgets = {
  partitionHeal: BUDGET ?? (quick ? 60 : 600),
  reconnect: (docs) => BUDGET ?? (quick ? 60 : docs <= 1000 ? 120 : docs <= 10_000 ? 240 : 300),
  local: BUDGET ?? (quick ? 60 : 300),
  scale: BUDGET ?? (quick ? 60 : 600),
  ceilings: BUDGET ?? (quick ? 60 : 300),
}

const log = (...a) => console.log(`[${((performance.now() - started) / 1000).toFixed(1)} s]`, ...a)

// ---- cells: budgets and failures --------------------------------------------------------

class Timeout extends Error {}

const dnfText = (c) =>
  'dnf' in c ? `did not finish in ${c.dnf} s` : 'skipped' in c ? `not run: ${c.skipped}` : `failed: ${c.failed}`

/**
 * Runs `fn` within `seconds`. Returns { value } or { dnf: seconds } or { failed: reason };
 * `cleanup` kills whatever the cell started when it does not finish.
 */
async function cell(label, seconds, fn) {
  const owned = []
  const own = (x) => owned.push(x)
  let timer
  const t0 = performance.now()
  try {
    const value = await Promise.race([
      fn(own),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Timeout()), seconds * 1000))),
    ])
    log(`${label}: ok in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
    return { value }
  } catch (err) {
    for (const x of owned) {
      try {
        x.kill()
      } catch {}
    }
    if (err instanceof Timeout) {
      log(`${label}: did not finish in ${seconds} s`)
      return { dnf: seconds }
    }
    const reason = String(err?.message ?? err)
      .split('\n')[0]
      .replace(/\|/g, '/')
      .slice(0, 160)
    log(`${label}: FAILED: ${reason}`)
    return { failed: reason }
  } finally {
    clearTimeout(timer)
  }
}

/** Several runs of one cell; the cell fails as a whole if any run fails. */
async function repeat(label, runs, seconds, fn) {
  const values = []
  for (let r = 0; r < runs; r++) {
    const out = await cell(`${label} run ${r + 1}/${runs}`, seconds, (own) => fn(r, own))
    if (!('value' in out)) return out
    values.push(out.value)
  }
  return { values }
}

// ---- 1. partition-heal ------------------------------------------------------------------

const results = { partitionHeal: {}, chart: {}, reconnect: {}, local: {}, scale: {}, ceilings: undefined }
let druEvents

async function runPartitionHeal() {
  for (const ops of SIZES) {
    const runs = ops === OPS ? RUNS : CHART_RUNS
    const perSystem = Object.fromEntries(SYSTEMS.map((s) => [s, { values: [] }]))
    // Systems take turns within each run, in a rotating order, so drift hits all alike.
    for (let r = 0; r < runs; r++) {
      const order = SYSTEMS.map((_, i) => SYSTEMS[(i + r) % SYSTEMS.length])
      for (const system of order) {
        const acc = perSystem[system]
        if (!('values' in acc)) continue
        const want = system === 'dru' && ops === OPS && !druEvents
        const out = await cell(
          `partition-heal ${system} ops=${ops} run ${r + 1}/${runs}`,
          budgets.partitionHeal,
          (own) => partitionHeal({ system, docs: DOCS, ops, seed: SEED + r, onCluster: own, exportEvents: want }),
        )
        if ('value' in out) {
          if (out.value.events) druEvents = out.value.events
          delete out.value.events
          acc.values.push(out.value)
        } else perSystem[system] = out
      }
    }
    results.chart[ops] = perSystem
    if (ops === OPS) results.partitionHeal = perSystem
  }
}

// ---- 2. reconnect -----------------------------------------------------------------------

async function runReconnect() {
  for (const docs of RECONNECT_DOCS) {
    results.reconnect[docs] = {}
    for (const system of SYSTEMS) {
      // A system that did not finish a smaller size is not run at a larger one.
      const smaller = RECONNECT_DOCS.filter((d) => d < docs)
        .map((d) => results.reconnect[d][system])
        .find((c) => c && !('values' in c))
      if (smaller) {
        results.reconnect[docs][system] = { skipped: `${dnfText(smaller)} at a smaller size` }
        log(`reconnect ${system} docs=${docs}: skipped (${dnfText(smaller)} at a smaller size)`)
        continue
      }
      let setup
      const out = await cell(
        `reconnect ${system} docs=${docs} (setup + ${RUNS} reconnects)`,
        budgets.reconnect(docs),
        async (own) => {
          setup = await reconnectCluster({ system, docs, onCluster: own })
          const values = []
          for (let r = 0; r < RUNS; r++) values.push(await setup.measure())
          await setup.cluster.stop()
          return values
        },
      )
      results.reconnect[docs][system] = 'value' in out ? { values: out.value } : out
    }
  }
}

// ---- 3. local writes --------------------------------------------------------------------

/** One replica process without network, for the local and scale workloads. */
function solo(system, dir, extra = {}) {
  mkdirSync(dir, { recursive: true })
  return spawnReplica({ system, id: 'solo', index: 0, dir, peers: [], ...extra })
}

async function runLocal() {
  const systems = SYSTEMS
  const acc = Object.fromEntries(systems.map((s) => [s, { values: [] }]))
  for (let r = 0; r < RUNS; r++) {
    const order = systems.map((_, i) => systems[(i + r) % systems.length])
    for (const system of order) {
      if (!('values' in acc[system])) continue
      const out = await cell(`local-writes ${system} run ${r + 1}/${RUNS}`, budgets.local, async (own) => {
        const dir = mkdtempSync(join(tmpdir(), `dru-bench-local-${system}-`))
        own({ kill: () => rmSync(dir, { recursive: true, force: true }) })
        const p = solo(system, dir)
        own(p)
        await p.ready
        const v = await p.call('localWrites', { docs: LOCAL_DOCS, count: LOCAL_OPS, seed: SEED + r })
        await p.exit()
        rmSync(dir, { recursive: true, force: true })
        return v
      })
      if ('value' in out) acc[system].values.push(out.value)
      else acc[system] = out
    }
  }
  results.local = acc
}

// ---- 4. scale ---------------------------------------------------------------------------

async function runScale() {
  const sample = (() => {
    const r = rng(SEED)
    return Array.from({ length: 100 }, () => Math.floor(r() * SCALE_DOCS))
  })()
  for (const system of SYSTEMS) {
    const dir = mkdtempSync(join(tmpdir(), `dru-bench-scale-${system}-`))
    let progress = 0
    const build = await cell(`scale ${system} build ${SCALE_DOCS} docs`, budgets.scale, async (own) => {
      const p = solo(system, dir, { cacheDocs: 1_000 })
      own(p)
      p.onProgress((n) => (progress = n))
      await p.ready
      const t0 = performance.now()
      await p.call('build', { count: SCALE_DOCS, progress: true })
      const ms = performance.now() - t0
      const stats = await p.call('stats')
      await p.exit()
      return { ms, peakRss: stats.maxRss }
    })
    const entry = { build }
    if ('value' in build && system !== 'yjs') {
      entry.restart = await repeat(`scale ${system} restart`, RUNS, budgets.scale, async (_, own) => {
        const t0 = performance.now()
        const p = solo(system, dir, { cacheDocs: 1_000 })
        own(p)
        await p.ready
        await p.call('loadSample', { indexes: sample })
        const ms = performance.now() - t0
        const stats = await p.call('stats')
        await p.exit()
        return { ms, rss: stats.rss }
      })
    } else if (!('value' in build)) {
      entry.progress = progress
    }
    results.scale[system] = entry
    rmSync(dir, { recursive: true, force: true })
  }
}

// ---- 5. raw ceilings on dru's logged bytes ------------------------------------------------

async function runCeilings() {
  if (!druEvents) {
    results.ceilings = { failed: 'no dru partition-heal run finished, so there are no logged bytes to measure' }
    return
  }
  const out = await cell('ceilings', budgets.ceilings, async (own) => {
    const child = fork(fileURLToPath(new URL('./ceilings-child.mjs', import.meta.url)), [], {
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    own(child)
    const reply = new Promise((resolve, reject) => {
      child.once('message', (m) => (m.ok ? resolve(m.value) : reject(new Error(m.error))))
      child.once('exit', (code) => reject(new Error(`ceilings child exited ${code}`)))
    })
    child.send({ events: druEvents, runs: RUNS })
    return reply
  })
  results.ceilings = out
}

// ---- run --------------------------------------------------------------------------------

process.on('SIGINT', () => {
  killAll()
  process.exit(130)
})
log(
  `bench: ${quick ? 'quick' : 'full'} run; workloads ${only.join(', ')}; systems ${SYSTEMS.join(', ')}; output ${OUT}`,
)
const loadBefore = loadavg()
// The measurements are also kept as JSON next to the markdown, in compare-results.json
// (`--render FILE.json` re-renders them without running anything, e.g. after a change to
// the text or the chart).
const JSON_OUT = join(dirname(OUT), 'compare-results.json')
let totalSec
let loadAfterSaved
if (flag('render')) {
  const saved = JSON.parse(readFileSync(flag('render'), 'utf8'))
  Object.assign(results, saved.results)
  totalSec = saved.totalSec
  loadBefore.splice(0, 3, ...saved.loadBefore)
  loadAfterSaved = saved.loadAfter
} else {
  mkdirSync(dirname(OUT), { recursive: true })
  const save = () =>
    writeFileSync(
      JSON_OUT,
      JSON.stringify(
        { argv, results, totalSec: (performance.now() - started) / 1000, loadBefore, loadAfter: loadavg() },
        null,
        1,
      ),
    )
  if (only.includes('partition-heal') || only.includes('ceilings')) await runPartitionHeal()
  save()
  if (only.includes('reconnect')) await runReconnect()
  save()
  if (only.includes('local-writes')) await runLocal()
  save()
  if (only.includes('scale')) await runScale()
  save()
  if (only.includes('ceilings')) await runCeilings()
  totalSec = (performance.now() - started) / 1000
  save()
}
const loadAfter = loadAfterSaved ?? loadavg()

// ---- render -----------------------------------------------------------------------------

const mib = (b) => {
  const m = b / 2 ** 20
  return m >= 10 ? m.toFixed(1) : m >= 1 ? m.toFixed(2) : m.toFixed(3)
}
const int = (n) => Math.round(n).toLocaleString('en-US')
const sec = (ms) => {
  const s = ms / 1000
  return s >= 10 ? s.toFixed(1) : s >= 0.1 ? s.toFixed(2) : s >= 0.01 ? s.toFixed(3) : s.toFixed(4)
}
/** "median (min–max)" of `pick` over a cell's runs, or the cell's DNF/failure text. */
function stat(c, pick, fmt) {
  if (!c || !('values' in c)) return c ? dnfText(c) : 'not run'
  const s = summarize(c.values.map(pick))
  return c.values.length > 1 ? `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})` : fmt(s.median)
}
const median = (c, pick) => (c && 'values' in c ? summarize(c.values.map(pick)).median : undefined)
/** dru's median divided by the system's median, or "–". */
function ratio(druCell, c, pick) {
  const d = median(druCell, pick)
  const x = median(c, pick)
  if (d === undefined || x === undefined || x === 0) return '–'
  const r = d / x
  return r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r >= 0.01 ? r.toFixed(2) : r.toPrecision(2)
}

const sections = []
const cmdArgs = flag('render') ? JSON.parse(readFileSync(flag('render'), 'utf8')).argv : argv
const cmd = `npm run bench${cmdArgs.length ? ` -- ${cmdArgs.join(' ')}` : ''}`
const svgLink = relative(dirname(OUT), SVG)

if (only.includes('partition-heal') || only.includes('ceilings')) {
  const P = results.partitionHeal
  const rows = SYSTEMS.map((s) => {
    const c = P[s]
    return `| ${NAMES[s]} | ${stat(c, (v) => v.ms, sec)} | ${stat(c, (v) => v.headsMs, sec)} | ${stat(c, (v) => v.bytes, mib)} | ${stat(c, (v) => v.messages, int)} | ${stat(c, (v) => v.peakRss, mib)} | ${stat(
      c,
      (v) => v.cpuSec,
      (x) => x.toFixed(1),
    )} | ${ratio(P.dru, c, (v) => v.ms)} | ${ratio(P.dru, c, (v) => v.bytes)} | ${ratio(P.dru, c, (v) => v.peakRss)} | ${ratio(P.dru, c, (v) => v.cpuSec)} |`
  })
  const chartRows = SIZES.map(
    (ops) => `| ${int(ops)} | ${SYSTEMS.map((s) => stat(results.chart[ops]?.[s], (v) => v.ms, sec)).join(' | ')} |`,
  )
  sections.push(`### 1. partition-heal

3 replicas × ${int(DOCS)} documents; every link cut; each replica writes ${int(OPS)} ops (one change each:
a seeded key \`k0\`–\`k7\` of a seeded document set to a new integer); links healed. From the heal until all three hold identical
state; median of ${RUNS} runs (range in brackets). "Identical" = equal cheap digests on all three (dru: log fingerprint;
automerge-repo / raw: every document's heads; Yjs: every document's state vector), then every replica materialises
and hashes the content of every document (automerge-repo first flushes to storage) and the three content digests
must be equal — both steps are inside the time. Bytes and messages: all three links, both directions.
Peak RSS: the largest replica, sampled every 20 ms during the heal. CPU: user + system seconds of the three replica
processes during the heal. Ratio columns: dru's median ÷ the row's median (below 1: dru used less).

| system | heal → identical state, s | of which: digests equal, s | bytes on the wire, MiB | data messages | peak RSS, MiB | CPU, s | dru ÷ this: time | bytes | peak RSS | CPU |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.join('\n')}

Time to converge against ops written per replica during the partition (${int(DOCS)} documents; median of ${CHART_RUNS} run(s) per point,
${RUNS} at ${int(OPS)}): [chart](${svgLink})

![time to converge against ops written during the partition](${svgLink})

| ops per replica | ${SYSTEMS.map((s) => NAMES[s]).join(' | ')} |
| ---: | ${SYSTEMS.map(() => '---:').join(' | ')} |
${chartRows.join('\n')}`)
}

if (only.includes('reconnect')) {
  const rows = []
  for (const docs of RECONNECT_DOCS) {
    const R = results.reconnect[docs]
    for (const s of SYSTEMS) {
      const c = R[s]
      rows.push(
        `| ${NAMES[s]} | ${int(docs)} | ${stat(c, (v) => v.bytes, int)} | ${stat(c, (v) => v.messages, int)} | ${stat(c, (v) => v.roundTrips, int)} | ${stat(c, (v) => v.ms, int)} | ${ratio(R.dru, c, (v) => v.bytes)} | ${ratio(R.dru, c, (v) => v.messages)} |`,
      )
    }
  }
  sections.push(`### 2. in-sync reconnect

The three replicas already hold the same documents (set up and synced, then idle); every link is cut for ${CUT_MS / 1000} s,
then healed. Counted from the heal until no data message crossed any link for ${IDLE_MS / 1000} s: bytes (all links, both
directions, including the HTTP upgrade and WebSocket framing), data messages (WebSocket text/binary messages),
round trips (see definitions; the largest over the three links, which run in parallel) and the time from the heal
to the last data message. ${RUNS} reconnects per cluster; median (range). The raw ceiling is a bare WebSocket reconnect
carrying one hello message per side and nothing else. A cell's time budget covers its set-up (creating the documents,
bringing them to the other replicas and their first sync) as well as the reconnects; a system that did not finish a
size is not run at the next.

| system | documents | bytes until idle | data messages | round trips | heal → last message, ms | dru ÷ this: bytes | messages |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.join('\n')}`)
}

if (only.includes('local-writes')) {
  const L = results.local
  const rate = (pickMs) => (v) => (v.count / pickMs(v)) * 1000
  const rowsSpec = []
  for (const s of SYSTEMS) {
    if (s === 'dru')
      rowsSpec.push([
        'dru',
        'dru.change(): Automerge change + event (HLC, hash chain, signature) + its own SQLite commit',
        L.dru,
        rate((v) => v.ms),
      ])
    if (s === 'automerge-repo')
      rowsSpec.push([
        'automerge-repo',
        'DocHandle.change(), then repo.flush() to NodeFS at the end (inside the time)',
        L['automerge-repo'],
        rate((v) => v.ms),
      ])
    if (s === 'yjs')
      rowsSpec.push(['Yjs', 'Y.Doc transact(map.set), update event; in memory', L.yjs, rate((v) => v.ms)])
    if (s === 'raw') {
      rowsSpec.push([
        'raw ceiling: Automerge.change',
        'Automerge.change + getLastLocalChange only',
        L.raw,
        rate((v) => v.automergeMs),
      ])
      rowsSpec.push([
        'raw ceiling: better-sqlite3 insert',
        'the same change bytes inserted, one commit each (WAL, synchronous=NORMAL)',
        L.raw,
        rate((v) => v.sqliteMs),
      ])
      // Results saved before this row existed have no committedMs.
      if (!('values' in (L.raw ?? {})) || L.raw.values.every((v) => v.committedMs !== undefined))
        rowsSpec.push([
          'raw ceiling: both, a commit per change',
          'Automerge.change, then its bytes inserted in their own commit, interleaved (fresh documents)',
          L.raw,
          rate((v) => v.committedMs),
        ])
    }
  }
  const druRate =
    L.dru && 'values' in L.dru ? { values: L.dru.values.map((v) => ({ r: (v.count / v.ms) * 1000 })) } : L.dru
  const rows = rowsSpec.map(([name, what, c, pick]) => {
    const asRate = c && 'values' in c ? { values: c.values.map((v) => ({ r: pick(v) })) } : c
    return `| ${name} | ${what} | ${stat(asRate, (v) => v.r, int)} | ${ratio(druRate, asRate, (v) => v.r)} |`
  })
  sections.push(`### 3. local writes

${int(LOCAL_OPS)} ops on ${int(LOCAL_DOCS)} small documents (created untimed), one change per op, in one process per system and
run (no network); ${RUNS} runs, median (range). Ratio: dru's rate ÷ the row's rate (below 1: dru is slower).

| system | what one op does | changes/s | dru ÷ this |
| --- | --- | ---: | ---: |
${rows.join('\n')}`)
}

if (only.includes('scale')) {
  const S = results.scale
  const rows = SYSTEMS.map((s) => {
    const e = S[s]
    if (!e) return `| ${NAMES[s]} | not run | not run | not run | not run | – | – |`
    const b = e.build
    if (!('value' in b)) {
      const t = `${dnfText(b)}${e.progress ? ` (${int(e.progress)} documents built)` : ''}`
      return `| ${NAMES[s]} | ${t} | ${t} | ${t} | ${t} | – | – |`
    }
    const restart = s === 'yjs' ? 'n/a: in memory, nothing to restart from' : stat(e.restart, (v) => v.ms, sec)
    const rss = s === 'yjs' ? 'n/a: in memory' : stat(e.restart, (v) => v.rss, mib)
    const druB = S.dru && 'value' in S.dru.build ? S.dru.build.value : undefined
    const rb = druB ? (druB.peakRss / b.value.peakRss).toFixed(2) : '–'
    return `| ${NAMES[s]} | ${sec(b.value.ms)} | ${mib(b.value.peakRss)} | ${restart} | ${rss} | ${rb} | ${s === 'yjs' ? '–' : ratio(S.dru?.restart, e.restart, (v) => v.ms)} |`
  })
  sections.push(`### 4. scale — ${int(SCALE_DOCS)} documents

One process per system builds ${int(SCALE_DOCS)} documents \`{ n, title }\` (dru: 1,000 per \`transact\`, \`cache: { maxDocs: 1000 }\` — see notes;
automerge-repo: \`repo.create\` each, NodeFS storage, flushed; Yjs: one Y.Doc each, in memory; raw ceiling: \`Automerge.save\`
of each document as a row of a plain better-sqlite3 table), once per system (peak RSS = the process's maximum resident set).
Then ${RUNS} restarts: a new process on the same storage, timed from spawn until it has read 100 seeded random documents
and checked their content; RSS at that point.

| system | build, s | peak RSS building, MiB | restart → ready (100 reads), s | RSS when ready, MiB | dru ÷ this: peak RSS | restart |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.join('\n')}`)
}

if (only.includes('ceilings')) {
  const C = results.ceilings
  const P = results.partitionHeal.dru
  let body
  if (!C || !('value' in C)) body = `| raw ceiling: all | ${C ? dnfText(C) : 'not run'} | – | – |`
  else {
    const v = C.value
    const part = (name, xs, unit) => {
      const s = summarize(xs)
      return { name, s, unit }
    }
    const parts = [
      part('raw ceiling: better-sqlite3 insert of the same rows', v.sqlite, `${int(v.events)} rows`),
      part('raw ceiling: ws transfer of the same bytes', v.ws, `${mib(v.bytes)} MiB`),
      part('raw ceiling: Automerge applyChanges of the same changes', v.apply, `${int(v.events)} changes`),
    ]
    const sum = parts.reduce((n, p) => n + p.s.median, 0)
    const druMs = median(P, (x) => x.ms)
    const rows = parts.map(
      (p) =>
        `| ${p.name} | ${sec(p.s.median)} (${sec(p.s.min)}–${sec(p.s.max)}) | ${p.unit} | ${druMs ? (druMs / p.s.median).toFixed(1) : '–'} |`,
    )
    rows.push(
      `| raw ceiling: sum of the three | ${sec(sum)} | one replica's share | ${druMs ? (druMs / sum).toFixed(1) : '–'} |`,
    )
    rows.push(
      `| dru: partition-heal, heal → identical state (table 1) | ${stat(P, (x) => x.ms, sec)} | all three replicas, in parallel | 1.00 |`,
    )
    body = rows.join('\n')
  }
  sections.push(`### 5. raw ceilings on the bytes dru logged

From the first dru partition-heal run at ${int(OPS)} ops: the events replica \`a\` lacked at the heal (those written by
\`b\` and \`c\`), each ceiling timed alone in one process, ${RUNS} runs, median (range): better-sqlite3 inserting their
\`(document, change)\` rows into a plain table (1,000 per transaction; WAL, synchronous=NORMAL, exclusive lock — dru's
\`process\` durability), one loopback WebSocket carrying their change bytes to another process in 1 MiB messages, and
\`Automerge.applyChanges\` of those changes (one call per document) onto the documents as \`a\` held them. dru ÷ this:
dru's heal time ÷ the ceiling (dru's three replicas each do this work at the same time on ${'2'} cores, plus forwarding).

| ceiling | time, s | of what | dru heal ÷ this |
| --- | ---: | --- | ---: |
${body}`)
}

// ---- where dru is slower / faster: sentences from the numbers above -----------------------

function verdicts() {
  const out = []
  const cmp = (what, druC, c, pick, lowerIsBetter, peer) => {
    const d = median(druC, pick)
    const x = median(c, pick)
    if (d === undefined) return
    if (x === undefined) {
      if (c) out.push(`${what}: ${peer} ${dnfText(c)}.`)
      return
    }
    const r = d / x
    const better = lowerIsBetter ? r < 1 : r > 1
    const factor = r >= 1 ? r : 1 / r
    const how =
      Math.abs(r - 1) < 0.1
        ? 'about the same as'
        : `${factor.toFixed(factor >= 10 ? 0 : 1)}× ${better ? 'better than' : 'worse than'}`
    out.push(`${what}: dru ${how} ${peer}.`)
  }
  for (const s of SYSTEMS.filter((s) => s !== 'dru')) {
    const peer = NAMES[s]
    const P = results.partitionHeal
    if (P.dru) {
      cmp('partition-heal time', P.dru, P[s], (v) => v.ms, true, peer)
      cmp('partition-heal bytes', P.dru, P[s], (v) => v.bytes, true, peer)
      cmp('partition-heal peak RSS', P.dru, P[s], (v) => v.peakRss, true, peer)
      cmp('partition-heal CPU', P.dru, P[s], (v) => v.cpuSec, true, peer)
    }
    for (const docs of only.includes('reconnect') ? RECONNECT_DOCS : []) {
      const R = results.reconnect[docs]
      cmp(`reconnect bytes at ${int(docs)} docs`, R.dru, R[s], (v) => v.bytes, true, peer)
    }
    const L = results.local
    if (L.dru && s !== 'raw') cmp('local write rate', L.dru, L[s], (v) => v.count / v.ms, false, peer)
    const S = results.scale
    if (S.dru && S[s]) {
      const asCell = (e) => ('value' in e.build ? { values: [e.build.value] } : e.build)
      cmp(`scale build time (${int(SCALE_DOCS)} documents)`, asCell(S.dru), asCell(S[s]), (v) => v.ms, true, peer)
      cmp(`scale peak RSS while building`, asCell(S.dru), asCell(S[s]), (v) => v.peakRss, true, peer)
      if (s !== 'yjs' && S.dru.restart && S[s].restart)
        cmp('scale restart to ready', S.dru.restart, S[s].restart, (v) => v.ms, true, peer)
    }
  }
  return out
}

const persistence = `- **dru**: \`openDru()\` from \`@dru/node\`'s built dist, \`durability: 'process'\` (SQLite WAL, synchronous=NORMAL: survives a
  process crash, not power loss), one SQLite file per replica, Ed25519-signed hash-chained events, listening on
  127.0.0.1:0 with \`peers\` pointing at the proxies; partition-heal uses \`sync: ${JSON.stringify(DRU_PARTITION_SYNC)}\` (the
  timeout also bounds a dial's WebSocket handshake, so the dial the proxy holds during the partition is kept; heartbeats stay at 1 s),
  reconnect uses \`sync: ${JSON.stringify(DRU_RECONNECT_SYNC)}\` so that the 1 s ping/pong does not keep links from being idle.
- **automerge-repo** ${'2.5.6'}: one \`Repo\` per process with \`WebSocketServerAdapter\` (ws on 127.0.0.1) and one
  \`WebSocketClientAdapter\` per dialed peer (retry interval ${RETRY_MS} ms instead of the default 5,000 ms),
  \`NodeFSStorageAdapter\` in a temp folder (files written, not fsynced), \`sharePolicy\` share-all; documents reach the other replicas by \`repo.find()\` over the
  network during setup. Same Automerge (3.x) as dru. cbor-x runs without its optional native \`cbor-extract\` (its
  install script is not allow-listed here).
- **Yjs**: one \`Y.Doc\` per document, **in memory only** (no persistence provider); y-protocols sync step 1 / step 2 /
  update messages over one ws connection per replica pair, multiplexed by document name in our own framing
  (\`benchmarks/compare/systems/yjs.mjs\`); as y-websocket's server does, an update received from one peer is relayed to the
  other connected peers. Setup documents are copied to the other replicas as Yjs updates over IPC.
- **raw ceiling**: Automerge changes logged into a plain better-sqlite3 table (same pragmas as dru) and pushed once over ws,
  applied with \`applyChanges\` — no acks, hashes, signatures, version vectors or retransmission: an upper bound, not a system.
- Workload: the same seeded ops for every system; 3 replicas in a full mesh (a dials b and c, b dials c), each link through
  its own byte-counting TCP proxy on 127.0.0.1; every replica in its own process.`

const notes = `- **dru's time includes materialising.** Its second column is the moment the three logs are equal; the rest is
  every replica applying the changes it received to its Automerge documents and, because the three replicas wrote the
  same keys concurrently, recording each conflict in its journal (\`@dru/documents\`). Where the CPU goes, per phase:
  \`node benchmarks/heal-profile.mjs\` (RESULTS.md, "Where partition-heal's time goes").
- **dru's bytes** (protocol 6's events frames, unchanged in 7) carry, per change, its HLC as numbers and dictionary indices for its origin and document,
  one chain link per run of an origin and one Ed25519 signature per origin per frame, brotli-compressed per frame; the
  raw ceiling sends each change once, uncompressed, with an 8-byte header. automerge-repo and Yjs send one sync exchange
  per document.
- **dru's document cache** (not measured in this run): building 30,000 documents in one process, 1,000 per
  \`transact\`, ran at about 3,200 documents/s with \`cache: { maxDocs: 1000 }\` and about 1,100/s with the default
  10,000, so the scale and reconnect set-ups use 1,000 (partition-heal keeps the default).
- **automerge-repo's client adapter** redials every ${RETRY_MS} ms while a dial is still connecting and abandons the
  previous socket without an error listener; if that socket's connection drops before the upgrade, the process dies
  with "socket hang up". The harness counts and ignores that one error so the sync can be measured; a production
  deployment would need the same guard.
- **Yjs keeps everything in memory** here: no persistence provider, so its rows pay no disk cost and it has no restart
  to measure, while dru (SQLite) and automerge-repo (NodeFS) write every change to disk.
- Each replica process also runs the harness's IPC and a 20 ms RSS sampler; the convergence probes (every 20 ms during
  a heal) cost every system alike.`

const definitions = `- **Bytes on the wire**: every TCP payload byte the link proxies forwarded, both directions (HTTP upgrade, WebSocket
  headers and masks, payloads, control frames).
- **Data messages**: complete WebSocket text/binary messages, parsed from the byte stream by the proxy; ping/pong/close
  control frames are not counted as messages (but their bytes are).
- **Round trips**: per link, consecutive data messages in the same direction form one *turn*; a round trip is a request
  turn plus a response turn, so round trips = ⌈turns ÷ 2⌉; the table gives the largest over the three links.
- **Partition / heal**: cutting a link closes its established connections (FIN) and holds any new connection unanswered;
  healing connects the held connections to their target. Each system's own reconnect therefore starts at the heal
  instant; back-off policies (dru's redial is capped at 1 s, automerge-repo's client retries every few seconds) are not in
  the measured times.
- A cell shows "did not finish in N s" when it ran out of its time budget (its processes are killed), and "failed: …"
  when it raised an error; nothing is estimated.`

const md = `## bench — dru against automerge-repo, Yjs and raw ceilings

Command: \`${cmd}\` (benchmarks/compare/main.mjs) · ${machineLine()} · whole run ${sec(totalSec * 1000)} s ·
load average (1 min) ${loadBefore[0].toFixed(1)} at the start, ${loadAfter[0].toFixed(1)} at the end: the 2 cores are shared with other work, so absolute times move between runs; each system's runs alternate with the others' so the drift hits all of them.
${quick ? '\n**Quick run** (small sizes, for CI): the numbers show the harness works, not how the systems compare at size.\n' : ''}
What ran:

${persistence}

${sections.join('\n\n')}

### Where dru is slower or faster

${verdicts()
  .map((v) => `- ${v}`)
  .join('\n')}

### Notes

${notes}

### Definitions

${definitions}
`

mkdirSync(dirname(OUT), { recursive: true })
if (only.includes('partition-heal')) {
  const series = SYSTEMS.map((s) => ({
    name: NAMES[s],
    points: SIZES.map((ops) => {
      const c = results.chart[ops]?.[s]
      if (!c || !('values' in c)) return { x: ops, failed: c ? dnfText(c) : 'not run' }
      const st = summarize(c.values.map((v) => v.ms / 1000))
      return { x: ops, y: st.median, min: st.min, max: st.max }
    }),
  }))
  writeFileSync(
    SVG,
    chartSvg({
      series,
      title: `partition-heal: 3 replicas × ${int(DOCS)} documents`,
      xLabel: 'ops written per replica during the partition',
      yLabel: 'heal → identical state (s)',
    }),
  )
  log(`wrote ${SVG}`)
}
writeSection('bench:compare', md, OUT)
log(`wrote section bench:compare of ${OUT} in ${totalSec.toFixed(1)} s`)
killAll()
process.exit(0)
