// automerge-repo replica: one Repo per process with the official WebSocket network
// adapters (a WebSocketServerAdapter on 127.0.0.1 for peers that dial us, one
// WebSocketClientAdapter per peer we dial, through the harness proxies) and NodeFS
// storage in the replica's temp folder. One Automerge document per benchmark document.
import { join } from 'node:path'
import { readFileSync, writeFileSync } from 'node:fs'
import * as A from '@automerge/automerge'
import { Repo } from '@automerge/automerge-repo'
import { WebSocketClientAdapter, WebSocketServerAdapter } from '@automerge/automerge-repo-network-websocket'
import { NodeFSStorageAdapter } from '@automerge/automerge-repo-storage-nodefs'
import { WebSocketServer } from 'ws'
import { canonical, ops, sha256, tick } from '../workload.mjs'

/** The client adapter's retry interval (default 5,000 ms), shortened like the other systems' redial. */
export const RETRY_MS = 500

/**
 * WebSocketClientAdapter (2.5.6) redials every RETRY_MS while a dial is still connecting,
 * abandoning the previous socket without closing it and after removing its 'error'
 * listener. When an abandoned socket's connection then drops before the WebSocket upgrade
 * completes (a link cut, a busy peer), ws emits an 'error' nobody listens to and the
 * process dies with "socket hang up". That is a real automerge-repo weakness under network
 * failures; here such errors are counted (stats.ignoredErrors, reported in RESULTS.md) and
 * the replica goes on, so that its sync can be measured at all.
 */
export function ignorable(err) {
  return /socket hang up|ECONNRESET|Unexpected server response/.test(String(err?.message ?? err))
}

/** find(), asked again while no connected peer has the document yet ("unavailable"). */
async function findRetrying(repo, id) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await repo.find(id)
    } catch (err) {
      if (attempt >= 50 || !/unavailable/.test(err.message)) throw err
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}

export async function open(cfg) {
  const networked = (cfg.peers?.length ?? 0) > 0
  const network = []
  let wss
  if (networked) {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await new Promise((r) => wss.once('listening', r))
    network.push(new WebSocketServerAdapter(wss))
    for (const p of cfg.peers) if (p.url) network.push(new WebSocketClientAdapter(p.url, RETRY_MS))
  }
  const repo = new Repo({
    network,
    storage: new NodeFSStorageAdapter(join(cfg.dir, 'am')),
    peerId: cfg.id,
    sharePolicy: async () => true,
  })
  /** Benchmark document index → DocHandle. */
  let handles = []
  const idsFile = join(cfg.dir, 'ids.json')
  const docOf = (i) => handles[i].doc()

  return {
    port: networked ? wss.address().port : 0,
    connected: () => repo.peers.length,
    /** Setup: documents created here; their ids and bytes go to the other replicas. */
    async createDocs({ from = 0, to }) {
      const ids = []
      for (let i = from; i < to; i++) {
        const h = repo.create({ init: i })
        handles[i] = h
        ids.push(h.documentId)
        if (i % 500 === 0) await tick()
      }
      await repo.flush()
      writeFileSync(idsFile, JSON.stringify(ids))
      return { ids, copyStorage: 'am' }
    },
    /**
     * Setup on the other replicas: the harness has copied replica a's NodeFS storage folder
     * into ours (as a restore from the same backup would), so find() loads each document
     * from local storage. (Repo.import under the same id is faster still, but in
     * automerge-repo 2.5.6 with Automerge 3 such handles later fail with "outdated
     * document"; find() over the network alone took ~20 s per 1,000 documents here.)
     */
    async importDocs({ ids }) {
      for (let i = 0; i < ids.length; i += 200) {
        const found = await Promise.all(ids.slice(i, i + 200).map((id) => findRetrying(repo, id)))
        found.forEach((h, k) => (handles[i + k] = h))
      }
      await repo.flush()
      writeFileSync(idsFile, JSON.stringify(ids))
      return true
    },
    async write({ seed, count, docs }) {
      let k = 0
      for (const op of ops({ seed, replica: cfg.index, count, docs })) {
        handles[op.doc].change((d) => {
          d[op.key] = op.value
        })
        if (++k % 100 === 0) await tick()
      }
      await repo.flush()
      return k
    },
    heads() {
      const h = sha256()
      for (let i = 0; i < handles.length; i++) h.update(`${i}:${A.getHeads(docOf(i)).sort().join(',')};`)
      return { digest: h.digest('hex'), documents: handles.length }
    },
    /** Flushed to storage, then the canonical content of every document. */
    async content() {
      await repo.flush()
      const h = sha256()
      for (let i = 0; i < handles.length; i++)
        h.update(`${i}:${A.getHeads(docOf(i)).sort().join(',')}:${canonical(A.toJS(docOf(i)))};`)
      return { digest: h.digest('hex'), documents: handles.length }
    },
    /** Restart check: find `sample` documents by id from storage and check their content. */
    async loadSample({ indexes }) {
      const ids = JSON.parse(readFileSync(idsFile, 'utf8'))
      for (const i of indexes) {
        const h = await repo.find(ids[i])
        const d = h.doc()
        if (d?.n !== i && d?.init !== i) throw new Error(`document ${i} read back wrong: ${JSON.stringify(d)}`)
      }
      return indexes.length
    },
    /** Scale build: `count` documents { n, title }, then flushed to storage. */
    async build({ count, progress }) {
      const ids = []
      for (let i = 0; i < count; i++) {
        const h = repo.create({ n: i, title: `document ${i}` })
        ids.push(h.documentId)
        if (i % 1000 === 999) {
          await tick()
          if (progress) process.send({ progress: i + 1 })
        }
      }
      await repo.flush()
      writeFileSync(idsFile, JSON.stringify(ids))
      return ids.length
    },
    async localWrites({ docs, count, seed }) {
      handles = []
      for (let i = 0; i < docs; i++) handles.push(repo.create({ init: i }))
      await repo.flush()
      const t0 = performance.now()
      let k = 0
      for (const op of ops({ seed, replica: 0, count, docs })) {
        handles[op.doc].change((d) => {
          d[op.key] = op.value
        })
        if (++k % 100 === 0) await tick()
      }
      await repo.flush()
      return { ms: performance.now() - t0, count }
    },
    async close() {
      await repo.shutdown().catch(() => undefined)
      wss?.close()
    },
  }
}
