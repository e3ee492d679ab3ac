import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateKeys } from '@dru/sync'

export const FIXTURE = fileURLToPath(new URL('./fixtures/dru-child.mjs', import.meta.url))
export const SECRET = 'test-cluster-secret-0123456789'

/** A key pair per DRU id, and the shared public-key map every member is configured with. */
export function cluster(ids: string[]): {
  keys: (id: string) => { privateKey: string; publicKeys: Record<string, string> }
} {
  const pairs = Object.fromEntries(ids.map((id) => [id, generateKeys()]))
  const publicKeys = Object.fromEntries(ids.map((id) => [id, pairs[id]!.publicKey]))
  return { keys: (id) => ({ privateKey: pairs[id]!.privateKey, publicKeys }) }
}

export interface DruConfig {
  id: string
  path: string
  keys: { privateKey: string; publicKeys: Record<string, string> }
  secret?: string
  peers?: Array<{ id: string; url: string }>
  port?: number
  listen?: boolean
  heartbeatMs?: number
  heartbeatTimeoutMs?: number
  maxBatchBytes?: number
  maxUnackedBytes?: number
  maxFrameBytes?: number
  durability?: 'machine' | 'process'
  tls?: { cert?: string; key?: string; ca?: string }
  verbose?: boolean
  /** Start the child with --expose-gc, so its `memory` command measures after a full GC. */
  exposeGc?: boolean
  /** SQLite page cache bound of the child's store (KiB). */
  cacheKiB?: number
}

/** A DRU child process driven over IPC. */
export class DruProcess {
  readonly child: ChildProcess
  port = 0
  origin = ''
  #next = 0
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  readonly exited: Promise<number | null>

  private constructor(child: ChildProcess) {
    this.child = child
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)))
    child.on('message', (msg: { id?: number; ok?: boolean; value?: unknown; code?: string; message?: string }) => {
      if (msg.id === undefined) return
      const p = this.#pending.get(msg.id)
      if (!p) return
      this.#pending.delete(msg.id)
      if (msg.ok) p.resolve(msg.value)
      else p.reject(Object.assign(new Error(`${msg.code}: ${msg.message}`), { code: msg.code }))
    })
    child.once('exit', () => {
      for (const p of this.#pending.values()) p.reject(new Error('child exited'))
      this.#pending.clear()
    })
  }

  static async start(config: DruConfig): Promise<DruProcess> {
    const child = fork(FIXTURE, [], {
      execArgv: config.exposeGc ? [...process.execArgv, '--expose-gc'] : process.execArgv,
      env: { ...process.env, DRU_CONFIG: JSON.stringify({ secret: SECRET, ...config }) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    live.add(child)
    const d = new DruProcess(child)
    const ready = await new Promise<{ port: number; origin: string }>((resolve, reject) => {
      child.on('message', (m: { ready?: boolean; port: number; origin: string }) => m.ready && resolve(m))
      child.once('exit', (code) => reject(new Error(`DRU ${config.id} exited with ${code} before ready`)))
    })
    d.port = ready.port
    d.origin = ready.origin
    return d
  }

  call<T = unknown>(cmd: string, args?: unknown): Promise<T> {
    const id = this.#next++
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.child.send({ id, cmd, args })
    })
  }

  fp(): Promise<{ fp: { vv: Record<string, number>; heads: Record<string, string> }; count: number }> {
    return this.call('fp')
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal)
    await this.exited
    live.delete(this.child)
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    await Promise.race([this.call('close').catch(() => undefined), new Promise((r) => setTimeout(r, 3000))])
    await Promise.race([this.exited, new Promise((r) => setTimeout(r, 2000))])
    await this.kill()
  }
}

const live = new Set<ChildProcess>()

/** Kills every child still running (call in afterEach). */
export async function killAll(): Promise<void> {
  const children = [...live]
  live.clear()
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve()
          c.once('exit', () => resolve())
          c.kill('SIGKILL')
        }),
    ),
  )
}

export function tempDir(prefix = 'dru-sync-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/** Polls `check` until it returns a truthy value or the time runs out (then throws with `what`). */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T> | T,
  timeoutMs = 30_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await check()
      if (v) return v
      last = v
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${String(last)})`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

export const sameFp = (a: { fp: unknown }, b: { fp: unknown }) => JSON.stringify(a.fp) === JSON.stringify(b.fp)
