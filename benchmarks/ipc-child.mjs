// Shared by the benchmark scripts: a child process driven over IPC. The child announces
// `{ ready: true, … }` once up and answers `{ id, cmd, args }` with `{ id, ok, value }` or
// `{ id, ok: false, code?, message }`. Every child is SIGKILLed when the script exits.
import { fork } from 'node:child_process'
import { V8_WORKAROUND_FLAG, needsV8Workaround } from '@dru/node'

const children = new Set()
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL')
})

/**
 * The child's node flags: `execArgv`, plus --no-turbo-inline-js-wasm-calls where this V8
 * aborts on a lazy deopt inside an inlined Wasm call (packages/node/src/v8-workaround.ts).
 * The fixtures drive Automerge without importing @dru/node, which would set it itself.
 */
function childFlags(execArgv, env) {
  const needed = needsV8Workaround(process.versions.v8, env) && !execArgv.includes(V8_WORKAROUND_FLAG)
  return needed ? [...execArgv, V8_WORKAROUND_FLAG] : execArgv
}

/** Forks `fixture` with `env` added (and node flags `execArgv`, e.g. --expose-gc); `name` appears in errors. */
export function forkChild(fixture, env, name, execArgv = process.execArgv) {
  const childEnv = { ...process.env, ...env }
  const child = fork(fixture, [], { env: childEnv, execArgv: childFlags(execArgv, childEnv) })
  children.add(child)
  let next = 0
  const pending = new Map()
  child.on('message', (m) => {
    if (m.id === undefined) return
    const p = pending.get(m.id)
    pending.delete(m.id)
    m.ok ? p.resolve(m.value) : p.reject(new Error(m.code ? `${m.code}: ${m.message}` : m.message))
  })
  const ready = new Promise((resolve, reject) => {
    child.on('message', (m) => m.ready && resolve(m))
    child.once('exit', (code) => reject(new Error(`${name} exited ${code}`)))
  })
  // A child that dies (a crash, a kill) fails what was asked of it instead of hanging the script.
  child.once('exit', (code, signal) => {
    for (const p of pending.values()) p.reject(new Error(`${name} exited ${code ?? signal} before answering`))
    pending.clear()
  })
  const call = (cmd, args) =>
    new Promise((resolve, reject) => {
      const id = next++
      pending.set(id, { resolve, reject })
      child.send({ id, cmd, args })
    })
  const kill = () => {
    child.kill('SIGKILL')
    children.delete(child)
  }
  /** Asks the child to close (command `close`), then waits for it to exit. */
  const stop = async () => {
    await call('close').catch(() => undefined)
    await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)))
    children.delete(child)
  }
  return { child, ready, call, kill, stop }
}
