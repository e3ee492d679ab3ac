// The V8 crash "Fatal error in , line 0 / unreachable code" in
// Deoptimizer::DoComputeBuiltinContinuation (SIGTRAP, exit 133) on Node 20 (V8 11.3): optimized
// code that inlined a call to a Wasm export returning externref is deoptimized lazily while that
// call runs, and this V8 cannot rebuild a reference result. Automerge's exports return externrefs.
// @dru/node sets --no-turbo-inline-js-wasm-calls on such V8s (packages/node/src/v8-workaround.ts).
// This script runs a workload --runs times as-is and with the workaround, alternating, and prints
// crash counts and the time of the clean runs.
//
//   node benchmarks/v8-crash-repro.mjs [--runs 10] [--workload wasm|automerge|dru]
//                                      [--parallel 3] [--docs 1000] [--ops 20000]
//
// Workloads (every run starts fresh processes):
//   wasm       packages/node/test/fixtures/wasm-lazy-deopt-child.mjs: a 40-byte Wasm module whose
//              import changes a field the optimized caller depends on; crashes every run as-is
//   automerge  --parallel processes at once, each plain Automerge (no dru) as bench:sync's
//              partition-heal writers do: --ops changes over --docs documents, one string and one
//              integer key each, getLastLocalChange; as-is crashes in some runs
//   dru        `await dru.change(...)` on --docs documents, --ops changes in all
// As-is sets DRU_NO_V8_WORKAROUND=1 (so @dru/node leaves V8 alone); the workaround comes from
// importing @dru/node (wasm, dru) or from passing the flag (automerge, which imports no dru).
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const FLAG = '--no-turbo-inline-js-wasm-calls'
const WASM_CHILD = fileURLToPath(new URL('../packages/node/test/fixtures/wasm-lazy-deopt-child.mjs', import.meta.url))
const args = process.argv.slice(2)
const arg = (name, fallback) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : fallback
}
const DOCS = Number(arg('docs', 1000))
const OPS = Number(arg('ops', 20_000))

if (args[0] === '--child') await child(args[1])
else await parent()

async function parent() {
  const runs = Number(arg('runs', 10))
  const workload = arg('workload', 'wasm')
  const parallel = workload === 'automerge' ? Number(arg('parallel', 3)) : 1
  const self = fileURLToPath(import.meta.url)
  const command =
    workload === 'wasm' ? [WASM_CHILD] : [self, '--child', workload, '--docs', String(DOCS), '--ops', String(OPS)]
  const variants = [
    { name: 'as-is', execArgv: [], env: { DRU_NO_V8_WORKAROUND: '1', IMPORT_DRU: '1' } },
    { name: 'workaround', execArgv: workload === 'automerge' ? [FLAG] : [], env: { IMPORT_DRU: '1' } },
  ]
  console.log(
    `node ${process.version} (V8 ${process.versions.v8}), workload ${workload}` +
      `${parallel > 1 ? ` (${parallel} processes per run)` : ''}, ${runs} runs per variant`,
  )
  const results = variants.map(() => ({ crashes: 0, other: 0, seconds: [] }))
  // Alternate the variants run by run, so load from other processes hits both alike.
  for (let r = 0; r < runs; r++)
    for (const [i, v] of variants.entries()) {
      const t0 = performance.now()
      const outs = await Promise.all(Array.from({ length: parallel }, () => run([...v.execArgv, ...command], v.env)))
      const seconds = (performance.now() - t0) / 1000
      if (outs.some((o) => o.crashed)) results[i].crashes++
      else if (outs.some((o) => o.code !== 0)) {
        results[i].other++
        const bad = outs.find((o) => o.code !== 0)
        process.stderr.write(`${v.name} run ${r + 1}: exit ${bad.code ?? bad.signal}\n${bad.stderr}\n`)
      } else results[i].seconds.push(seconds)
    }
  for (const [i, v] of variants.entries()) {
    const { crashes, other, seconds } = results[i]
    const s = [...seconds].sort((a, b) => a - b)
    const time = s.length
      ? `; clean runs ${s[Math.floor(s.length / 2)].toFixed(2)} s median (${s[0].toFixed(2)}–${s.at(-1).toFixed(2)})`
      : ''
    console.log(`${v.name.padEnd(10)} ${crashes}/${runs} crashed (V8 fatal error), ${other} other failures${time}`)
  }
}

/** One child process; `crashed` when it died of the V8 fatal error. */
function run(argv, env) {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    c.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)))
    c.on('exit', (code, signal) =>
      resolve({ code, signal, stderr, crashed: signal === 'SIGTRAP' || /unreachable code/.test(stderr) }),
    )
  })
}

async function child(workload) {
  if (workload === 'automerge') return automergeWriter()
  if (workload === 'dru') return druWriter()
  throw new Error(`unknown workload ${workload}`)
}

/** What test/sync/fixtures/dru-child.mjs's writeAutomerge does, without the store. */
async function automergeWriter() {
  const A = await import('@automerge/automerge')
  const docs = new Map()
  for (let op = 0; op < OPS; op++) {
    const id = `doc-${op % DOCS}`
    const doc = A.change(docs.get(id) ?? A.init(), (d) => {
      d[`f${op % 8}`] = `w-${op}`
      d.n = op
    })
    A.getLastLocalChange(doc)
    docs.set(id, doc)
  }
}

async function druWriter() {
  const { openDru } = await import('@dru/node')
  const dir = mkdtempSync(join(tmpdir(), 'dru-v8-crash-'))
  try {
    const dru = await openDru({
      id: 'v8',
      path: join(dir, 'v8.db'),
      durability: 'process',
      cache: { maxDocs: DOCS + 10 },
    })
    for (let op = 0; op < OPS; op++)
      await dru.change(`doc-${op % DOCS}`, (d) => {
        d[`f${op % 8}`] = `w-${op}`
        d.n = op
      })
    await dru.close()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
