// npm run bench:strangers [-- --repeat R]
//
// What strangers (no secret) cost a DRU: x syncs with an honest peer y that keeps writing,
// while the benchmark, as a stranger, sends 8 unauthenticated 30 MiB messages at once and
// holds 1,000 idle sockets (raw TCP and WebSocket upgrades that never say hello). Reported:
// x's RSS and its heap/external after GC before and during the attack, the connections the
// listener refused, and whether y's writes kept reaching x. test/hostile asserts the bound.
// Writes section `bench:strangers` of benchmarks/RESULTS.md.
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { generateKeys } from '@dru/sync'
import { forkChild } from './ipc-child.mjs'
import { machineLine, summarize, writeSection } from './results.mjs'

const argv = process.argv.slice(2)
const arg = (name, dflt) => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? argv[i + 1] : dflt
}
const REPEAT = Number(arg('repeat', 3))
const FIXTURE = fileURLToPath(new URL('../test/sync/fixtures/dru-child.mjs', import.meta.url))
const SECRET = 'bench-cluster-secret-0123456789'
const dir = mkdtempSync(join(tmpdir(), 'dru-bench-strangers-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
const MiB = 2 ** 20
const mib = (b) => (b / MiB).toFixed(1)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function keysFor(ids) {
  const pairs = Object.fromEntries(ids.map((id) => [id, generateKeys()]))
  const publicKeys = Object.fromEntries(ids.map((id) => [id, pairs[id].publicKey]))
  return (id) => ({ privateKey: pairs[id].privateKey, publicKeys })
}

/** Opens `n` sockets of each kind against `port`; resolves with them once all settled. */
async function idle(port, n) {
  const sockets = []
  let refused = 0
  const tcp = Array.from(
    { length: n / 2 },
    () =>
      new Promise((resolve) => {
        const s = net.connect(port, '127.0.0.1')
        s.on('error', () => resolve())
        s.once('connect', () => resolve())
        s.once('close', () => resolve())
        sockets.push(s)
      }),
  )
  const ws = Array.from(
    { length: n / 2 },
    () =>
      new Promise((resolve) => {
        const w = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false })
        w.on('error', () => resolve())
        w.once('open', () => resolve())
        w.once('unexpected-response', () => {
          refused++
          resolve()
        })
        sockets.push(w)
      }),
  )
  await Promise.all([...tcp, ...ws])
  return { sockets, refused }
}

/** Eight strangers send a 30 MiB message each, at once; resolves with the close codes. */
function floods(port) {
  return Promise.all(
    Array.from(
      { length: 8 },
      () =>
        new Promise((resolve) => {
          const w = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false })
          w.on('error', () => undefined)
          w.once('unexpected-response', () => resolve('refused (503)'))
          w.once('open', () => w.send(Buffer.alloc(30 * MiB, 7)))
          w.once('close', (code) => resolve(String(code)))
        }),
    ),
  )
}

async function run(r) {
  const keys = keysFor(['x', 'y'])
  const env = (config) => ({ DRU_CONFIG: JSON.stringify({ secret: SECRET, ...config }) })
  const x = forkChild(FIXTURE, env({ id: 'x', path: `${dir}/${r}-x.db`, keys: keys('x'), sampleMemoryMs: 20 }), 'x', [
    ...process.execArgv,
    '--expose-gc',
  ])
  const { port } = await x.ready
  const y = forkChild(
    FIXTURE,
    env({ id: 'y', path: `${dir}/${r}-y.db`, keys: keys('y'), peers: [{ id: 'x', url: `ws://127.0.0.1:${port}` }] }),
    'y',
  )
  await y.ready
  let writing = true
  let written = 0
  const writer = (async () => {
    while (writing) {
      await y.call('write', { n: 20, perCommit: 20, bytes: 200 })
      written += 20
      await sleep(50)
    }
  })()
  await sleep(1500)
  const before = await x.call('memory')
  const reachedBefore = (await x.call('fp')).count
  const t0 = performance.now()
  const codes = await floods(port)
  const held = await idle(port, 1000)
  await sleep(1000)
  const during = await x.call('memory', { gc: false })
  const peaks = await x.call('memoryPeaks')
  const reachedDuring = (await x.call('fp')).count
  const attackMs = performance.now() - t0
  const stats = await x.call('listener')
  for (const s of held.sockets) (s.terminate ?? s.destroy).call(s)
  writing = false
  await writer
  while ((await x.call('fp')).count < written) await sleep(50)
  x.kill()
  y.kill()
  return {
    before,
    during,
    peaks,
    codes,
    refusedWs: held.refused,
    stats,
    progressed: reachedDuring - reachedBefore,
    attackMs,
  }
}

const runs = []
for (let r = 0; r < REPEAT; r++) {
  const x = await run(r)
  console.log(
    `run ${r}: RSS ${mib(x.before.rss)} -> ${mib(x.during.rss)} MiB (peak ${mib(x.peaks.rss ?? x.during.maxRss)}), heap after GC ${mib(x.before.heapUsed)}, ` +
      `floods closed with ${[...new Set(x.codes)].join('/')}, WS upgrades refused ${x.refusedWs}, listener refused ${x.stats.refused}, ` +
      `honest events received during the attack ${x.progressed}`,
  )
  runs.push(x)
}
const med = (f) => {
  const s = summarize(runs.map(f))
  return s.min === s.max ? mib(s.median) : `${mib(s.median)} (${mib(s.min)}–${mib(s.max)})`
}
const count = (f) => {
  const s = summarize(runs.map(f))
  return s.min === s.max ? String(s.median) : `${s.median} (${s.min}–${s.max})`
}
const cmd = `npm run bench:strangers${argv.length ? ` -- ${argv.join(' ')}` : ''}`
writeSection(
  'bench:strangers',
  `## bench:strangers — what strangers cost a DRU

\`${cmd}\` (benchmarks/stranger-memory.mjs) · ${machineLine()} · median of ${REPEAT} run(s), range in brackets.

x (the sync test fixture) syncs with y, which writes 20 events every 50 ms. As a stranger, the
benchmark then sends 8 unauthenticated 30 MiB messages at once and opens 1,000 idle sockets
(500 raw TCP, 500 WebSocket upgrades that never send a hello), holding them 1 s.

| measure | value |
| --- | ---: |
| x RSS before (MiB) | ${med((x) => x.before.rss)} |
| x RSS during the attack (MiB) | ${med((x) => x.during.rss)} |
| x RSS increase (MiB) | **${med((x) => x.during.rss - x.before.rss)}** |
| x JS heap after GC before (MiB) | ${med((x) => x.before.heapUsed)} |
| WebSocket upgrades refused by the caps (503) | ${count((x) => x.refusedWs)} of 500 (the rest dropped at connect: the listener holds 288 sockets) |
| connections the listener refused in all | ${count((x) => x.stats.refused)} |
| y's events received by x during the attack | ${count((x) => x.progressed)} |

Each 30 MiB message is refused by \`ws\` from its frame header (close code ${[...new Set(runs.flatMap((x) => x.codes))].join(' or ')}),
before any of it is buffered, because the receive limit is ${'4 KiB'} until a session
authenticates. The listener holds at most 256 connections and 32 unfinished handshakes,
accepts 50 new ones a second (burst 100), and drops a client that sends nothing within 5 s.
`,
)
