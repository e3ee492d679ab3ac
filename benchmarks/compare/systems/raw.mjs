// Raw ceiling replica: the least work a replicating Automerge store must do, with no
// protocol. Local ops are Automerge changes logged into a plain better-sqlite3 table
// (same WAL / synchronous=NORMAL / exclusive-lock settings as dru's 'process' durability)
// and queued per peer; on every (re)connection each side sends one hello naming itself,
// then pushes everything queued for that peer in messages of up to 1 MiB; the receiver
// inserts the changes into its table (one transaction per message) and applies them with
// one Automerge.applyChanges per document. No acknowledgements, hashes, signatures,
// version vectors, retransmission or forwarding: an upper bound, not a usable system.
import { join } from 'node:path'
import Database from 'better-sqlite3'
import * as A from '@automerge/automerge'
import WebSocket, { WebSocketServer } from 'ws'
import { canonical, ops, sha256, tick } from '../workload.mjs'

const REDIAL_MS = 100
const MAX_MESSAGE = 1 << 20

export function openLog(path) {
  const db = new Database(path)
  db.pragma('locking_mode = EXCLUSIVE')
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = NORMAL')
  db.exec('create table if not exists log (id integer primary key, doc integer not null, change blob not null)')
  const insert = db.prepare('insert into log (doc, change) values (?, ?)')
  const insertMany = db.transaction((rows) => {
    for (const [doc, change] of rows) insert.run(doc, change)
  })
  return { db, insert, insertMany }
}

/** [u32 doc][u32 length][bytes]… */
function encodeBatch(rows) {
  let size = 0
  for (const [, c] of rows) size += 8 + c.length
  const buf = Buffer.allocUnsafe(size)
  let at = 0
  for (const [doc, c] of rows) {
    buf.writeUInt32LE(doc, at)
    buf.writeUInt32LE(c.length, at + 4)
    buf.set(c, at + 8)
    at += 8 + c.length
  }
  return buf
}

function decodeBatch(buf) {
  const rows = []
  for (let at = 0; at < buf.length;) {
    const doc = buf.readUInt32LE(at)
    const len = buf.readUInt32LE(at + 4)
    rows.push([doc, new Uint8Array(buf.subarray(at + 8, at + 8 + len))])
    at += 8 + len
  }
  return rows
}

export async function open(cfg) {
  const networked = (cfg.peers?.length ?? 0) > 0
  const log = openLog(join(cfg.dir, 'raw.db'))
  const docs = []
  /** peer id → rows not yet pushed */
  const outbox = new Map((cfg.peers ?? []).map((p) => [p.id, []]))
  /** peer id → open socket */
  const open = new Map()
  const actor = Buffer.from(cfg.id).toString('hex')

  const push = (peer) => {
    const ws = open.get(peer)
    const rows = outbox.get(peer)
    if (!ws || ws.readyState !== WebSocket.OPEN || rows.length === 0) return
    outbox.set(peer, [])
    let batch = []
    let bytes = 0
    for (const r of rows) {
      batch.push(r)
      bytes += 8 + r[1].length
      if (bytes >= MAX_MESSAGE) {
        ws.send(encodeBatch(batch))
        batch = []
        bytes = 0
      }
    }
    if (batch.length) ws.send(encodeBatch(batch))
  }

  const receive = (rows) => {
    log.insertMany(rows)
    const byDoc = new Map()
    for (const [doc, c] of rows) {
      let l = byDoc.get(doc)
      if (!l) byDoc.set(doc, (l = []))
      l.push(c)
    }
    for (const [doc, changes] of byDoc) docs[doc] = A.applyChanges(docs[doc] ?? A.init(), changes)[0]
  }

  const attach = (ws) => {
    ws.binaryType = 'nodebuffer'
    let peer
    ws.on('message', (data) => {
      if (peer === undefined) {
        peer = data.toString()
        open.set(peer, ws)
        ws.once('close', () => open.get(peer) === ws && open.delete(peer))
        push(peer)
        return
      }
      receive(decodeBatch(data))
    })
    ws.on('error', () => undefined)
    const hello = () => ws.send(cfg.id)
    if (ws.readyState === WebSocket.OPEN) hello()
    else ws.once('open', hello)
  }

  let wss
  let closing = false
  if (networked) {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await new Promise((r) => wss.once('listening', r))
    wss.on('connection', attach)
    const dial = (url) => {
      if (closing) return
      const ws = new WebSocket(url)
      attach(ws)
      ws.on('close', () => setTimeout(() => dial(url), REDIAL_MS))
    }
    for (const p of cfg.peers) if (p.url) dial(p.url)
  }

  const digestOf = (withContent) => {
    const h = sha256()
    for (let i = 0; i < docs.length; i++) {
      if (!docs[i]) continue
      h.update(`${i}:${A.getHeads(docs[i]).sort().join(',')}`)
      if (withContent) h.update(`:${canonical(A.toJS(docs[i]))}`)
      h.update(';')
    }
    return { digest: h.digest('hex'), documents: docs.filter(Boolean).length }
  }

  return {
    port: networked ? wss.address().port : 0,
    connected: () => open.size,
    async createDocs({ from = 0, to }) {
      const bins = []
      for (let i = from; i < to; i++) {
        docs[i] = A.change(A.init({ actor }), (d) => (d.init = i))
        log.insert.run(i, A.getLastLocalChange(docs[i]))
        bins.push(A.save(docs[i]))
      }
      return { bins }
    },
    async importDocs({ bins }) {
      for (let i = 0; i < bins.length; i++) {
        docs[i] = A.load(bins[i])
        for (const c of A.getAllChanges(docs[i])) log.insert.run(i, c)
      }
      return true
    },
    async write({ seed, count, docs: n, perCommit = 100 }) {
      const it = ops({ seed, replica: cfg.index, count, docs: n })
      for (let done = 0; done < count; done += perCommit) {
        const rows = []
        for (let k = 0; k < Math.min(perCommit, count - done); k++) {
          const op = it.next().value
          docs[op.doc] = A.change(docs[op.doc] ?? A.init({ actor }), (d) => (d[op.key] = op.value))
          rows.push([op.doc, A.getLastLocalChange(docs[op.doc])])
        }
        log.insertMany(rows)
        for (const q of outbox.values()) q.push(...rows)
        await tick()
      }
      for (const peer of outbox.keys()) push(peer)
      return count
    },
    heads: () => digestOf(false),
    content: () => digestOf(true),
    /** Scale ceiling: `count` documents saved (Automerge.save) as rows of a plain table. */
    async build({ count, progress }) {
      log.db.exec('create table if not exists docs (id integer primary key, bin blob not null)')
      const put = log.db.prepare('insert into docs (id, bin) values (?, ?)')
      const many = log.db.transaction((rows) => {
        for (const [i, b] of rows) put.run(i, b)
      })
      for (let i = 0; i < count; i += 1000) {
        const rows = []
        for (let j = i; j < Math.min(count, i + 1000); j++) {
          const doc = A.from({ n: j, title: `document ${j}` }, { actor })
          rows.push([j, A.save(doc)])
          A.free(doc)
        }
        many(rows)
        if (progress && (i / 1000) % 10 === 9) process.send({ progress: i + 1000 })
        await tick()
      }
      return count
    },
    loadSample({ indexes }) {
      const get = log.db.prepare('select bin from docs where id = ?')
      for (const i of indexes) {
        const d = A.load(get.get(i).bin)
        if (d.n !== i) throw new Error(`document ${i} read back wrong`)
        A.free(d)
      }
      return indexes.length
    },
    /**
     * Local-write ceilings for the same ops: Automerge.change + getLastLocalChange alone,
     * then better-sqlite3 inserting those change bytes, one commit per change, and then both
     * interleaved (each change inserted in its own commit as it is made, on fresh documents):
     * the least a store that commits every change can do.
     */
    async localWrites({ docs: n, count, seed }) {
      for (let i = 0; i < n; i++) docs[i] = A.change(A.init({ actor }), (d) => (d.init = i))
      const changes = []
      const t0 = performance.now()
      for (const op of ops({ seed, replica: 0, count, docs: n })) {
        docs[op.doc] = A.change(docs[op.doc], (d) => (d[op.key] = op.value))
        changes.push([op.doc, A.getLastLocalChange(docs[op.doc])])
      }
      const automergeMs = performance.now() - t0
      const t1 = performance.now()
      for (const [doc, c] of changes) log.insert.run(doc, c)
      const sqliteMs = performance.now() - t1
      const bytes = changes.reduce((k, [, c]) => k + c.length, 0)
      for (let i = 0; i < n; i++) {
        A.free(docs[i])
        docs[i] = A.change(A.init({ actor }), (d) => (d.init = i))
      }
      const t2 = performance.now()
      for (const op of ops({ seed, replica: 0, count, docs: n })) {
        docs[op.doc] = A.change(docs[op.doc], (d) => (d[op.key] = op.value))
        log.insert.run(op.doc, A.getLastLocalChange(docs[op.doc]))
      }
      const committedMs = performance.now() - t2
      return { automergeMs, sqliteMs, committedMs, count, bytes }
    },
    close() {
      closing = true
      for (const ws of open.values()) ws.terminate()
      wss?.close()
      log.db.close()
    },
  }
}
