import type { ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { EventStore } from '@dru/store-sqlite'
import { generateKeys } from '@dru/sync'
import { DruProcess, LinkProxy } from '@dru/testkit'
import type { StatusJson } from '@dru/node/admin-api'

/** The application plugin every unit's {@link DruProcess} loads. */
export const APP = fileURLToPath(new URL('./fixtures/dru-app.mjs', import.meta.url))
export const CLI = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url))
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Heartbeats small enough that a whole procedure runs in seconds. */
export const SYNC = { heartbeatMs: 100, heartbeatTimeoutMs: 600, startupGraceMs: 700 }

/** `/status` as the admin API's wire contract declares it (one definition for the CLI and tests). */
export type Status = StatusJson

export interface Transition {
  from: string
  to: string
  at: number
}

/** One DRU of a test cluster: its config, its process (when running) and what it logged. */
export interface Unit {
  readonly id: string
  readonly configPath: string
  readonly dbPath: string
  /** Ports of the current process (all chosen by the OS: port 0, read back from the child). */
  listenPort: number
  appPort: number
  adminUrl: string
  config: Record<string, unknown>
  process?: DruProcess
  child?: ChildProcess
  exited?: Promise<number | string | null>
  lines: Array<Record<string, unknown>>
  transitions: Transition[]
}

/**
 * N DRUs on 127.0.0.1, each its own {@link DruProcess} with the {@link APP} plugin, every directed link
 * through a {@link LinkProxy} so a region can be cut off (reset or silently) and healed.
 */
export class Cluster {
  readonly dir: string
  readonly units = new Map<string, Unit>()
  readonly links: Array<{ from: string; to: string; proxy: LinkProxy }> = []

  private constructor(dir: string) {
    this.dir = dir
  }

  /** The cluster credential every unit is configured with. */
  readonly secret = 'procedure-test-secret-0123456789'
  /** Every member's key pair: the units', and those of `members` no process runs (for raw peers). */
  keys: Record<string, { privateKey: string; publicKey: string }> = {}

  /**
   * `ids` run as processes; `options.members` are further members (keys configured
   * everywhere) that no process runs, for a test to speak as one.
   */
  static async create(
    ids: string[],
    extra: Record<string, unknown> = {},
    options: { members?: string[] } = {},
  ): Promise<Cluster> {
    const c = new Cluster(mkdtempSync(join(tmpdir(), 'dru-proc-')))
    const secret = c.secret
    const all = [...ids, ...(options.members ?? [])]
    const pairs = Object.fromEntries(all.map((id) => [id, generateKeys()]))
    c.keys = pairs
    const publicKeys = Object.fromEntries(all.map((id) => [id, pairs[id]!.publicKey]))
    for (const id of ids) {
      c.units.set(id, {
        id,
        configPath: join(c.dir, `${id}.json`),
        dbPath: join(c.dir, `${id}.db`),
        listenPort: 0,
        appPort: 0,
        adminUrl: '',
        config: {},
        lines: [],
        transitions: [],
      })
    }
    for (const from of ids)
      for (const to of ids) if (from !== to) c.links.push({ from, to, proxy: await LinkProxy.start() })
    for (const u of c.units.values()) {
      u.config = {
        id: u.id,
        path: u.dbPath,
        durability: 'process',
        listen: { host: '127.0.0.1', port: 0 },
        admin: { host: '127.0.0.1', port: 0 },
        peers: c.links.filter((l) => l.from === u.id).map((l) => ({ id: l.to, url: `ws://127.0.0.1:${l.proxy.port}` })),
        secret,
        keys: { privateKey: pairs[u.id]!.privateKey, publicKeys },
        sync: SYNC,
        log: 'json',
        ...extra,
      }
      c.writeConfig(u.id)
    }
    return c
  }

  unit(id: string): Unit {
    const u = this.units.get(id)
    if (!u) throw new Error(`no unit ${id}`)
    return u
  }

  writeConfig(id: string, patch: Record<string, unknown> = {}): void {
    const u = this.unit(id)
    u.config = { ...u.config, ...patch }
    for (const [k, v] of Object.entries(patch)) if (v === undefined) delete u.config[k]
    writeFileSync(u.configPath, JSON.stringify(u.config, null, 2))
  }

  /** Starts the unit's process and resolves once it is ready and its "dru open" log line is in. */
  async start(id: string): Promise<void> {
    const u = this.unit(id)
    // The DRU's log is written asynchronously and may come after the ready line.
    let opened = () => {}
    const openLogged = new Promise<void>((resolve) => (opened = resolve))
    const dru = await DruProcess.start({
      configPath: u.configPath,
      plugin: APP,
      onLine: (line) => this.#logLine(u, line, opened),
    }).catch((err: Error) => {
      throw new Error(`${id} ${err.message}`)
    })
    Object.assign(u, {
      process: dru,
      child: dru.child,
      exited: dru.exited,
      appPort: dru.ports.control,
      listenPort: dru.ports.sync,
      adminUrl: dru.ports.admin,
    })
    // Ports are picked by the OS (no reuse races between parallel test files); the proxies
    // in front of this DRU now lead to its new sync port.
    for (const l of this.links) if (l.to === id) l.proxy.target = u.listenPort
    if (u.config.log === 'json') await openLogged
  }

  #logLine(u: Unit, line: string, opened: () => void): void {
    try {
      const rec = JSON.parse(line) as Record<string, unknown>
      u.lines.push(rec)
      if (rec.msg === 'dru open') opened()
      const m = /^lifecycle (\S+) -> (\S+)$/.exec(String(rec.msg ?? ''))
      if (m) u.transitions.push({ from: m[1]!, to: m[2]!, at: Date.now() })
    } catch {
      // not a log line
    }
  }

  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.unit(id).process?.kill(signal)
  }

  /**
   * Cuts every link to and from `id`: `reset` refuses and resets connections (noticed at
   * once), `silent` drops every byte on open connections (noticed by heartbeat timeout).
   */
  cut(id: string, how: 'reset' | 'silent' = 'reset'): void {
    for (const l of this.links) if (l.from === id || l.to === id) l.proxy.set(how === 'reset' ? 'cut' : 'drop')
  }

  heal(id: string): void {
    for (const l of this.links) if (l.from === id || l.to === id) l.proxy.set('pass')
  }

  async status(id: string): Promise<Status> {
    const res = await fetch(`${this.unit(id).adminUrl}/status`)
    return (await res.json()) as Status
  }

  async readyz(id: string): Promise<number> {
    return (await fetch(`${this.unit(id).adminUrl}/readyz`)).status
  }

  /** POST a patch to a document; returns the HTTP status and body. */
  async write(
    id: string,
    doc: string,
    patch: Record<string, unknown>,
    query = '',
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    return this.#app(id).request<Record<string, unknown>>('POST', `/docs/${doc}${query}`, { body: patch })
  }

  async read(id: string, doc: string): Promise<unknown> {
    return (await this.#app(id).request('GET', `/docs/${doc}`)).body
  }

  async backup(id: string, to: string): Promise<void> {
    const res = await this.#app(id).request('POST', `/backup?to=${encodeURIComponent(to)}`)
    if (res.status !== 200) throw new Error(`backup failed: ${JSON.stringify(res.body)}`)
  }

  #app(id: string): DruProcess {
    const p = this.unit(id).process
    if (!p) throw new Error(`${id} was never started`)
    return p
  }

  async waitFor(what: string, cond: () => Promise<boolean> | boolean, ms = 10_000, every = 25): Promise<void> {
    const end = Date.now() + ms
    for (;;) {
      try {
        if (await cond()) return
      } catch {
        // not up yet
      }
      if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
      await sleep(every)
    }
  }

  /** Every running unit active with the same fingerprint digest. */
  async waitConverged(ids: string[], ms = 15_000): Promise<Status[]> {
    let last: Status[] = []
    await this.waitFor(
      `${ids.join(', ')} active with equal fingerprints`,
      async () => {
        last = await Promise.all(ids.map((id) => this.status(id)))
        return last.every((s) => s.state === 'active') && new Set(last.map((s) => s.fingerprint.digest)).size === 1
      },
      ms,
    )
    return last
  }

  async dispose(): Promise<void> {
    await Promise.all([...this.units.keys()].map((id) => this.kill(id, 'SIGKILL')))
    await Promise.all(this.links.map((l) => l.proxy.close()))
    rmSync(this.dir, { recursive: true, force: true })
  }

  /** Removes the unit's database files (a lost disk). */
  wipe(id: string): void {
    const u = this.unit(id)
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${u.dbPath}${suffix}`, { force: true })
  }
}

/**
 * Reads every (origin, seq) → hash from stopped DRUs' database files and returns the
 * pairs held with two different hashes anywhere (a fork), plus each file's events.
 * Each file's log is also re-verified (hashes and chains, `verifyLog`), which throws on damage.
 */
export function scanForForks(paths: string[]): { forks: string[]; events: Map<string, Map<string, string>> } {
  const seen = new Map<string, string>()
  const forks: string[] = []
  const events = new Map<string, Map<string, string>>()
  for (const path of paths) {
    if (!existsSync(path)) continue
    const druId = (() => {
      const meta = new Database(path, { fileMustExist: true })
      try {
        return String((meta.prepare("select value from meta where key = 'dru_id'").get() as { value: string }).value)
      } finally {
        meta.close()
      }
    })()
    // Inspection: scanning must not leave a trace (no incarnation taken, clean-close marker kept).
    const store = EventStore.open({ path, druId, inspect: true })
    try {
      store.verifyLog()
    } finally {
      store.close()
    }
    const db = new Database(path, { fileMustExist: true })
    try {
      const mine = new Map<string, string>()
      for (const row of db.prepare('select origin, seq, hash from events').all() as Array<{
        origin: string
        seq: number
        hash: string
      }>) {
        const key = `${row.origin}#${row.seq}`
        mine.set(key, row.hash)
        const held = seen.get(key)
        if (held === undefined) seen.set(key, row.hash)
        else if (held !== row.hash) forks.push(key)
      }
      events.set(path, mine)
    } finally {
      db.close()
    }
  }
  return { forks, events }
}
