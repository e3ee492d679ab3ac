// dru replica: openDru() from the built dist, durability 'process', its SQLite log in the
// replica's temp folder, listening on 127.0.0.1, peers dialed through the harness proxies.
import { join } from 'node:path'
import { fingerprintDigest } from '@dru/core'
import { openDru, runtimeOf } from '@dru/node'
import { ops, tick } from '../workload.mjs'

export async function open(cfg) {
  const networked = (cfg.peers?.length ?? 0) > 0
  const dru = await openDru({
    id: cfg.id,
    path: join(cfg.dir, 'dru.db'),
    durability: 'process',
    cache: { maxDocs: cfg.cacheDocs ?? 10_000 },
    ...(networked
      ? {
          listen: { host: '127.0.0.1', port: 0 },
          // Dial only the peers with a url (the harness proxies); the others dial us.
          peers: cfg.peers.map((p) => (p.url ? { id: p.id, url: p.url } : { id: p.id })),
          secret: cfg.secret,
          keys: cfg.keys,
          sync: cfg.drusync ?? {},
        }
      : {}),
  })
  const port = networked ? runtimeOf(dru).network.sync.port : 0
  const docId = (i) => `doc-${i}`
  /** Events (and duplicates) received from each peer over every session since start. */
  const receivedTotal = () => {
    const peers = networked ? runtimeOf(dru).network.sync.peerStatus() : []
    return {
      events: peers.reduce((n, p) => n + p.eventsInTotal, 0),
      duplicates: peers.reduce((n, p) => n + p.duplicatesInTotal, 0),
      byPeer: Object.fromEntries(peers.map((p) => [p.id, [p.eventsInTotal, p.duplicatesInTotal]])),
    }
  }
  let receivedAtMark = { events: 0, duplicates: 0, byPeer: {} }

  return {
    port,
    state: () => dru.state(),
    connected: () =>
      networked
        ? runtimeOf(dru)
            .network.sync.peerStatus()
            .filter((p) => p.connected).length
        : 0,
    /** Setup: documents created here, replicated to the others by dru's own sync. */
    async createDocs({ from = 0, to, batch = 1000 }) {
      for (let i = from; i < to; i += batch) {
        dru.transact((tx) => {
          for (let j = i; j < Math.min(to, i + batch); j++) tx.change(docId(j), (d) => (d.init = j))
        })
        await tick()
      }
      return null
    },
    async importDocs() {
      return true // dru replicas receive the setup documents over sync
    },
    /** The partition workload: one Automerge change per op, 100 changes per SQLite commit. */
    async write({ seed, count, docs, perCommit = 100 }) {
      const it = ops({ seed, replica: cfg.index, count, docs })
      for (let done = 0; done < count; done += perCommit) {
        dru.transact((tx) => {
          for (let k = 0; k < Math.min(perCommit, count - done); k++) {
            const op = it.next().value
            tx.change(docId(op.doc), (d) => (d[op.key] = op.value))
          }
        })
        await tick()
      }
      return dru.store.count()
    },
    /** The bench's mark (before the heal): events received from here on are the heal's. */
    mark: () => {
      receivedAtMark = receivedTotal()
      return true
    },
    /**
     * Events received since the mark over every session, closed ones included (a session that
     * lost a race and closed took its duplicates with it when only open sessions were counted),
     * and how many were held already.
     */
    received: () => {
      const now = receivedTotal()
      const since = (id) => now.byPeer[id].map((n, k) => n - (receivedAtMark.byPeer[id]?.[k] ?? 0))
      return {
        events: now.events - receivedAtMark.events,
        duplicates: now.duplicates - receivedAtMark.duplicates,
        // Per peer: [events, duplicates] (diagnostics: which path brought them twice).
        byPeer: Object.fromEntries(Object.keys(now.byPeer).map((id) => [id, since(id)])),
      }
    },
    /** Cheap convergence probe: the log fingerprint (vector + chain heads) and event count. */
    heads: () => ({ digest: fingerprintDigest(dru.fingerprint()), events: dru.store.count() }),
    /** The materialised state: every document applied, canonical digest (sorted heads + JSON). */
    content: () => {
      const d = dru.digest()
      return { digest: d.digest, documents: d.documents }
    },
    /** Raw-ceiling input: every logged event's docId and Automerge change bytes, in log order. */
    exportEvents() {
      const out = []
      for (const batch of dru.store.eventsMissing({}))
        for (const e of batch) out.push({ origin: e.origin, docId: e.docId, change: e.change, bytes: e.change.length })
      return out
    },
    /** Scale build: `count` documents { n, title }, 1,000 per SQLite commit. */
    async build({ count, progress }) {
      for (let i = 0; i < count; i += 1000) {
        dru.transact((tx) => {
          for (let j = i; j < Math.min(count, i + 1000); j++) {
            tx.change(docId(j), (d) => {
              d.n = j
              d.title = `document ${j}`
            })
          }
        })
        if (progress && (i / 1000) % 10 === 9) process.send({ progress: i + 1000 })
        await tick()
      }
      return dru.store.count()
    },
    /** Restart check: read documents back (cold loads from the log) and check them. */
    loadSample({ indexes }) {
      for (const i of indexes) {
        const d = dru.get(docId(i))
        if (d?.n !== i) throw new Error(`document ${i} read back wrong: ${JSON.stringify(d)}`)
      }
      return indexes.length
    },
    /** Local writes: `count` ops, each its own dru.change() = its own SQLite commit. */
    async localWrites({ docs, count, seed }) {
      await this.createDocs({ to: docs })
      const t0 = performance.now()
      for (const op of ops({ seed, replica: 0, count, docs }))
        await dru.change(docId(op.doc), (d) => (d[op.key] = op.value))
      return { ms: performance.now() - t0, count }
    },
    close: () => dru.close(),
  }
}
