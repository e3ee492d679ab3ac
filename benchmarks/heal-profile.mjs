// Where partition-heal's time goes, per phase: runs the dru partition-heal of the compare
// harness with a CPU profiler in each replica from the heal to the materialised state
// (heal-profile-hook.mjs), then sums the samples of all replicas by phase.
//
//   node benchmarks/heal-profile.mjs [--ops 5000] [--docs 1000]     (after npx tsc -b)
//   HEAL_PROFILE_KEEP=1 … keeps the .cpuprofile files (open them in Chrome DevTools)
//
// A sample belongs to the phase of the innermost dru frame on its stack (so Automerge under
// the materializer counts as materialise, SHA-256 under event hashing as verify), SQLite
// work to the dru code that asked for it: see phaseOfStack. Each replica's busy samples are
// scaled to the CPU its main thread used over the same span (heal-profile-hook.mjs reads it
// from /proc): three replicas share two cores, and a sample counts while the thread waits
// for a core too. Not a timing benchmark: the profiler slows everything a little.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : dflt
}
const ops = arg('ops', '5000')
const docs = arg('docs', '1000')

/** Phase of a dru stack frame by the file its code lives in (first match wins). */
const PHASES = [
  [
    'verify',
    /core\/dist\/event\.js|documents\/dist\/change-(validation|header)\.js|sync\/dist\/(signatures|frame-seal)\.js/,
  ],
  [
    'materialise',
    /documents\/dist\/(materializer|conflict-[a-z]+|automerge-workarounds|tolerant-apply|snapshot-store|doc-cache|lru)\.js/,
  ],
  ['digest', /documents\/dist\/(digest|canonical|digest-index)\.js/],
  ['receive/send (sync, frames)', /sync\/dist\/|core\/dist\/codec\.js/],
]
const DRU = /packages\/[a-z-]+\/dist\//
const STORE = /store-sqlite\/dist\//

/**
 * A sample's phase: that of the innermost dru frame on its stack, except that SQLite work
 * (store-sqlite, better-sqlite3) counts for the dru code that asked for it: reading a
 * document's events for the materializer is materialise; for the sync sender, `read log to
 * send`; under ingest, `store`.
 */
function phaseOfStack(frames) {
  const dru = frames.filter((f) => DRU.test(f.url))
  if (dru.length === 0) return 'other (Node, Automerge, sockets outside dru code)'
  const first = dru[0]
  if (STORE.test(first.url)) {
    const caller = dru.find((f) => !STORE.test(f.url))
    const callerPhase = caller && PHASES.find(([, re]) => re.test(caller.url))?.[0]
    if (callerPhase === 'materialise' || callerPhase === 'verify' || callerPhase === 'digest') return callerPhase
    return /log-reader\.js/.test(first.url) ? 'read log to send' : 'store (ingest: insert, inbox, commit)'
  }
  return PHASES.find(([, re]) => re.test(first.url))?.[0] ?? 'other dru'
}

const dir = mkdtempSync(join(tmpdir(), 'dru-heal-profile-'))
const hook = fileURLToPath(new URL('./heal-profile-hook.mjs', import.meta.url))
const root = fileURLToPath(new URL('..', import.meta.url))
execFileSync(
  'node',
  [
    'benchmarks/compare/main.mjs',
    '--only',
    'partition-heal',
    '--systems',
    'dru',
    '--runs',
    '1',
    '--sizes',
    ops,
    '--ops',
    ops,
    '--docs',
    docs,
    '--out',
    join(dir, 'out.json'),
  ],
  { cwd: root, stdio: 'inherit', env: { ...process.env, BENCH_EXEC_ARGV: `--import ${hook}`, HEAL_PROFILE_DIR: dir } },
)

const totals = new Map()
/** Per phase, inclusive time per dru function on the stack (the first dru frame out from the leaf). */
const byFunction = new Map()
let all = 0
/** Over all replicas: sampled busy µs, and the CPU µs their main threads and processes used. */
const cpu = { sampledBusy: 0, main: 0, process: 0, scaled: true }
const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))
for (const f of files) {
  const p = JSON.parse(readFileSync(join(dir, f), 'utf8'))
  const scale = cpuScale(p, join(dir, f.replace(/\.cpuprofile$/, '.cpu.json')))
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const parent = new Map()
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const phaseOfNode = new Map()
  const phaseOf = (id) => {
    let phase = phaseOfNode.get(id)
    if (phase !== undefined) return phase
    const fn = byId.get(id).callFrame.functionName
    if (fn === '(garbage collector)') phase = 'garbage collector'
    else if (fn === '(idle)' || fn === '(program)') phase = 'idle / waiting'
    else {
      const frames = []
      for (let x = id; x !== undefined; x = parent.get(x)) frames.push(byId.get(x).callFrame)
      phase = phaseOfStack(frames)
    }
    phaseOfNode.set(id, phase)
    return phase
  }
  for (let i = 0; i < p.samples.length; i++) {
    const phase = phaseOf(p.samples[i])
    const us = (p.timeDeltas[i] ?? 0) * (phase === 'idle / waiting' ? 1 : scale)
    totals.set(phase, (totals.get(phase) ?? 0) + us)
    let id = p.samples[i]
    while (id !== undefined && !DRU.test(byId.get(id).callFrame.url)) id = parent.get(id)
    if (id !== undefined) {
      const cf = byId.get(id).callFrame
      const fn = `${cf.functionName || '(anonymous)'} (${cf.url.replace(/.*packages\//, '')}:${cf.lineNumber + 1})`
      const m = byFunction.get(phase) ?? new Map()
      byFunction.set(phase, m.set(fn, (m.get(fn) ?? 0) + us))
    }
    all += us
  }
}
/**
 * The factor that turns one replica's sampled busy time into the CPU its main thread used:
 * the sampler counts wall time while the thread is runnable, so on a shared machine (three
 * replicas on two cores) a sampled second is more than a CPU second. 1 when not measured.
 */
function cpuScale(profile, cpuFile) {
  const names = new Map(profile.nodes.map((n) => [n.id, n.callFrame.functionName]))
  let busy = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const fn = names.get(profile.samples[i])
    if (fn !== '(idle)' && fn !== '(program)') busy += profile.timeDeltas[i] ?? 0
  }
  let measured
  try {
    measured = JSON.parse(readFileSync(cpuFile, 'utf8'))
  } catch {
    measured = undefined
  }
  cpu.sampledBusy += busy
  if (measured?.mainUs === undefined || busy === 0) {
    cpu.scaled = false
    return 1
  }
  cpu.main += measured.mainUs
  cpu.process += measured.processUs
  return measured.mainUs / busy
}

if (process.env.HEAL_PROFILE_KEEP) console.log(`profiles kept in ${dir}`)
else rmSync(dir, { recursive: true, force: true })
if (files.length === 0) throw new Error('no profiles were written')
const busy = all - (totals.get('idle / waiting') ?? 0)
console.log(`\n${files.length} replica profiles, heal to materialised state, ops=${ops} docs=${docs}`)
console.log(
  cpu.scaled
    ? `sampled busy ${(cpu.sampledBusy / 1e6).toFixed(2)} s; main threads used ${(cpu.main / 1e6).toFixed(2)} CPU-s ` +
        `(each replica's samples scaled to its main thread's CPU), whole processes ${(cpu.process / 1e6).toFixed(2)} CPU-s ` +
        `(the rest: V8's GC helper and compiler threads, I/O and the profiler's own sampling)`
    : 'CPU not measured (no /proc): seconds below are sampled busy time, more than CPU on a shared machine',
)
console.log(
  '| phase | CPU s (sum over replicas) | share of busy time | innermost dru function, CPU s (top 3) |\n| --- | ---: | ---: | --- |',
)
for (const [phase, us] of [...totals].sort((a, b) => b[1] - a[1])) {
  const share = phase === 'idle / waiting' ? '—' : `${((us / busy) * 100).toFixed(0)} %`
  const top = [...(byFunction.get(phase) ?? [])].sort((a, b) => b[1] - a[1]).slice(0, 3)
  const where = top.map(([fn, t]) => `${fn} ${(t / 1e6).toFixed(2)}`).join('; ')
  console.log(`| ${phase} | ${(us / 1e6).toFixed(2)} | ${share} | ${where} |`)
}
