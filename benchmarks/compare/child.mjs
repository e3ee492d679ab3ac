// Spawning and driving replica processes (replica.mjs) over IPC.
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { V8_WORKAROUND_FLAG, needsV8Workaround } from '@dru/node'

const REPLICA = fileURLToPath(new URL('./replica.mjs', import.meta.url))
const live = new Set()

/** Kills every child still running (harness exit, budget expiry). */
export function killAll() {
  for (const c of live) c.kill('SIGKILL')
  live.clear()
}
process.on('exit', killAll)

/** Forks one replica; resolves once it reported ready (with its listen port). */
export function spawnReplica(cfg) {
  const t0 = performance.now()
  const child = fork(REPLICA, [], {
    env: { ...process.env, BENCH_REPLICA: JSON.stringify(cfg) },
    serialization: 'advanced',
    execArgv: [
      '--max-old-space-size=8192',
      // Every system's replica alike: Node 20's V8 can crash in Automerge-heavy processes
      // without it (packages/node/src/v8-workaround.ts), and it costs nothing measurable.
      ...(needsV8Workaround(process.versions.v8, process.env) ? [V8_WORKAROUND_FLAG] : []),
      ...(process.env.BENCH_EXEC_ARGV ? process.env.BENCH_EXEC_ARGV.split(' ') : []),
    ],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  })
  live.add(child)
  let stderr = ''
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)))
  let next = 0
  let dead
  const pending = new Map()
  const failAll = (why) => {
    dead = why
    for (const p of pending.values()) p.reject(new Error(why))
    pending.clear()
  }
  let onProgress = () => undefined
  const ready = new Promise((resolve, reject) => {
    child.on('message', (m) => {
      if (m.ready) resolve({ port: m.port, ms: performance.now() - t0 })
      else if (m.fatal) {
        failAll(`${cfg.system} ${cfg.id} crashed: ${m.fatal.split('\n')[0]}`)
        reject(new Error(dead))
      } else if (m.progress !== undefined) onProgress(m.progress)
      else if (m.id !== undefined) {
        const p = pending.get(m.id)
        pending.delete(m.id)
        if (p) m.ok ? p.resolve(m.value) : p.reject(new Error(`${cfg.id} ${m.error}${m.stack ? `\n${m.stack}` : ''}`))
      }
    })
    child.once('exit', (code, signal) => {
      live.delete(child)
      const why = dead ?? `${cfg.system} ${cfg.id} exited (${signal ?? code})${stderr ? `: ${lastLine(stderr)}` : ''}`
      failAll(why)
      reject(new Error(why))
    })
  })
  ready.catch(() => undefined)
  const call = (cmd, args) =>
    new Promise((resolve, reject) => {
      if (dead) return reject(new Error(dead))
      const id = next++
      pending.set(id, { resolve, reject })
      child.send({ id, cmd, args })
    })
  return {
    cfg,
    child,
    ready,
    call,
    onProgress: (fn) => (onProgress = fn),
    async exit() {
      if (dead || child.exitCode !== null) return
      const gone = new Promise((r) => child.once('exit', r))
      call('exit').catch(() => undefined)
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))])
      child.kill('SIGKILL')
    },
    kill: () => child.kill('SIGKILL'),
    /** SIGKILL, resolved once the process is gone. */
    killed() {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
      const gone = new Promise((r) => child.once('exit', r))
      child.kill('SIGKILL')
      return gone
    },
  }
}

function lastLine(text) {
  const lines = text
    .trim()
    .split('\n')
    .filter((l) => /error|Error|at /.test(l) === false || /Error/.test(l))
  return (lines.find((l) => /Error/.test(l)) ?? lines[lines.length - 1] ?? '').slice(0, 300)
}
