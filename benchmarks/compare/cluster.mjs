// Replicas of one system, each in its own process, linked by a topology — by default three
// in a full mesh (a→b, a→c, b→c; the first dials the second) — every link through its own
// CountingLink.
import { cpSync, mkdtempSync, mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeys } from '@dru/sync'
import { spawnReplica } from './child.mjs'
import { CountingLink, totals } from './proxy.mjs'

export const IDS = ['a', 'b', 'c']
const MESH3 = {
  ids: IDS,
  links: [
    ['a', 'b'],
    ['a', 'c'],
    ['b', 'c'],
  ],
}

/** A full mesh of `n` replicas named r0, r1, … */
export function meshTopology(n) {
  const ids = Array.from({ length: n }, (_, i) => `r${i}`)
  const links = []
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) links.push([ids[i], ids[j]])
  return { name: `full mesh of ${n}`, ids, links }
}

/** `regions` regions of `per` replicas, meshed inside; the first of each region is its hub, the hubs meshed. */
export function regionsTopology(regions, per) {
  const ids = Array.from({ length: regions * per }, (_, i) => `r${i}`)
  const links = []
  for (let r = 0; r < regions; r++)
    for (let i = 0; i < per; i++) for (let j = i + 1; j < per; j++) links.push([ids[r * per + i], ids[r * per + j]])
  for (let r = 0; r < regions; r++) for (let q = r + 1; q < regions; q++) links.push([ids[r * per], ids[q * per]])
  return { name: `${regions} regions of ${per} (hub per region, hubs meshed)`, ids, links }
}
const SECRET = 'bench-cluster-secret-0123456789'
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

export class Cluster {
  /** @param {{ system: string, extra?: object, topology?: { ids: string[], links: string[][] } }} options */
  constructor({ system, extra = {}, topology = MESH3 }) {
    this.system = system
    this.extra = extra
    this.ids = topology.ids
    this.links = topology.links
    this.dir = mkdtempSync(join(tmpdir(), `dru-bench-${system}-`))
    this.proxies = new Map(this.links.map(([from, to]) => [`${from}→${to}`, new CountingLink(`${from}→${to}`)]))
    this.replicas = []
  }

  async start() {
    for (const p of this.proxies.values()) await p.listen()
    let keys
    if (this.system === 'dru') {
      const pairs = Object.fromEntries(this.ids.map((id) => [id, generateKeys()]))
      const publicKeys = Object.fromEntries(this.ids.map((id) => [id, pairs[id].publicKey]))
      keys = (id) => ({ privateKey: pairs[id].privateKey, publicKeys })
    }
    this.replicas = this.ids.map((id, index) => {
      const dir = join(this.dir, id)
      mkdirSync(dir)
      const peers = []
      for (const [from, to] of this.links) {
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
    for (const [from, to] of this.links) this.proxies.get(`${from}→${to}`).setTarget(ready[this.ids.indexOf(to)].port)
  }

  /**
   * Setup: documents created on the first replica, the same documents on the others (each
   * system's own way: dru over its sync, automerge-repo from a copy of the first's storage,
   * Yjs and raw from its bytes sent over IPC).
   */
  async setupDocs(docs) {
    const [a, ...others] = this.replicas
    const payload = await a.call('createDocs', { to: docs })
    if (!payload) return
    if (payload.copyStorage) {
      for (const r of others)
        cpSync(join(this.dir, this.ids[0], payload.copyStorage), join(this.dir, r.cfg.id, payload.copyStorage), {
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

  /** Waits until every replica has a session with each of its neighbours. */
  async connected() {
    const degree = this.ids.map((id) => this.links.filter((l) => l.includes(id)).length)
    for (;;) {
      const n = await this.call('connected')
      if (n.every((k, i) => k === degree[i])) return
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
