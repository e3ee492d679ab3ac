// Three replicas of one system, each in its own process, in a full mesh of three links
// (a→b, a→c, b→c; the first dials the second), every link through its own CountingLink.
import { cpSync, mkdtempSync, mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeys } from '@dru/sync'
import { spawnReplica } from './child.mjs'
import { CountingLink, totals } from './proxy.mjs'

export const IDS = ['a', 'b', 'c']
const LINKS = [
  ['a', 'b'],
  ['a', 'c'],
  ['b', 'c'],
]
const SECRET = 'bench-cluster-secret-0123456789'
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

export class Cluster {
  /** @param {{ system: string, extra?: object }} options */
  constructor({ system, extra = {} }) {
    this.system = system
    this.extra = extra
    this.dir = mkdtempSync(join(tmpdir(), `dru-bench-${system}-`))
    this.proxies = new Map(LINKS.map(([from, to]) => [`${from}→${to}`, new CountingLink(`${from}→${to}`)]))
    this.replicas = []
  }

  async start() {
    for (const p of this.proxies.values()) await p.listen()
    let keys
    if (this.system === 'dru') {
      const pairs = Object.fromEntries(IDS.map((id) => [id, generateKeys()]))
      const publicKeys = Object.fromEntries(IDS.map((id) => [id, pairs[id].publicKey]))
      keys = (id) => ({ privateKey: pairs[id].privateKey, publicKeys })
    }
    this.replicas = IDS.map((id, index) => {
      const dir = join(this.dir, id)
      mkdirSync(dir)
      const peers = []
      for (const [from, to] of LINKS) {
        if (from === id) peers.push({ id: to, url: this.proxies.get(`${from}→${to}`).url })
        if (to === id) peers.push({ id: from })
      }
      return spawnReplica({
        system: this.system,
        id,
        index,
        dir,
        peers,
        secret: SECRET,
        keys: keys?.(id),
        ...this.extra,
      })
    })
    const ready = await Promise.all(this.replicas.map((r) => r.ready))
    for (const [from, to] of LINKS) this.proxies.get(`${from}→${to}`).setTarget(ready[IDS.indexOf(to)].port)
  }

  /**
   * Setup: documents created on a, the same documents on b and c (each system's own way:
   * dru over its sync, automerge-repo from a copy of a's storage, Yjs and raw from a's
   * bytes sent over IPC).
   */
  async setupDocs(docs) {
    const [a, ...others] = this.replicas
    const payload = await a.call('createDocs', { to: docs })
    if (!payload) return
    if (payload.copyStorage) {
      for (const r of others)
        cpSync(join(this.dir, 'a', payload.copyStorage), join(this.dir, r.cfg.id, payload.copyStorage), {
          recursive: true,
        })
    }
    await Promise.all(others.map((r) => r.call('importDocs', payload)))
  }

  call(cmd, args) {
    return Promise.all(this.replicas.map((r) => r.call(cmd, args)))
  }

  cut() {
    for (const p of this.proxies.values()) p.cut()
  }

  heal() {
    for (const p of this.proxies.values()) p.heal()
  }

  resetCounters() {
    this.resetAt = performance.now()
    for (const p of this.proxies.values()) p.resetCounters()
  }

  wire() {
    const links = [...this.proxies.values()].map((p) => p.snapshot())
    return { ...totals(links), links }
  }

  /** Polls `heads` until every replica reports the same digest (and `accept` agrees). */
  async converge({ everyMs = 25, accept = () => true } = {}) {
    for (;;) {
      const h = await this.call('heads')
      if (h.every((x) => x.digest === h[0].digest) && accept(h)) return h
      await sleep(everyMs)
    }
  }

  /** Waits until every replica has a session with both others. */
  async connected() {
    for (;;) {
      const n = await this.call('connected')
      if (n.every((k) => k === IDS.length - 1)) return
      await sleep(50)
    }
  }

  /** Waits until no data message crossed any link for `idleMs` (and every link carried one since the counters were reset). */
  async idle({ idleMs, everyLink = true }) {
    for (;;) {
      await sleep(50)
      const snaps = [...this.proxies.values()].map((p) => p.snapshot())
      if (everyLink && snaps.some((s) => s.firstDataAt === 0)) continue
      const last = Math.max(this.resetAt ?? 0, ...snaps.map((s) => s.lastDataAt))
      if (performance.now() - last >= idleMs) return last
    }
  }

  /** Ends the replicas (SIGKILL: nothing after the measurement matters) and the proxies. */
  async stop() {
    await Promise.all(this.replicas.map((r) => r.killed()))
    for (const p of this.proxies.values()) await p.close()
    rmSync(this.dir, { recursive: true, force: true })
  }

  kill() {
    for (const r of this.replicas) r.kill()
    for (const p of this.proxies.values()) p.close()
    rmSync(this.dir, { recursive: true, force: true })
  }
}
