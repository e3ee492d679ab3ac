// Yjs replica: one Y.Doc per benchmark document, kept in memory (no persistence
// provider), synced with the y-protocols sync messages (step 1 = state vector, step 2 =
// the missing update, then live updates) over ws, one WebSocket per peer pair.
//
// Framing (ours): every WebSocket message is one y-protocols sync message for one
// document, prefixed by the document's name:
//   varString(docName) · varUint(messageType: 0 step1 | 1 step2 | 2 update) · varUint8Array(payload)
// On every new connection each side sends step 1 for each of its documents (as
// y-websocket does per document); step 1 is answered with step 2; local updates are
// broadcast as they happen.
import * as Y from 'yjs'
import * as syncProtocol from 'y-protocols/sync'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import WebSocket, { WebSocketServer } from 'ws'
import { canonical, ops, sha256, tick } from '../workload.mjs'

const REDIAL_MS = 100

export async function open(cfg) {
  const networked = (cfg.peers?.length ?? 0) > 0
  /** name → Y.Doc */
  const docs = new Map()
  const conns = new Set()
  const name = (i) => `doc-${i}`

  const send = (ws, docName, write) => {
    const e = encoding.createEncoder()
    encoding.writeVarString(e, docName)
    write(e)
    if (ws.readyState === WebSocket.OPEN) ws.send(encoding.toUint8Array(e))
  }

  const getDoc = (docName) => {
    let doc = docs.get(docName)
    if (!doc) {
      doc = new Y.Doc()
      docs.set(docName, doc)
      // Live updates go to every open connection except the one they came from.
      doc.on('update', (update, origin) => {
        for (const ws of conns) if (ws !== origin) send(ws, docName, (e) => syncProtocol.writeUpdate(e, update))
      })
    }
    return doc
  }

  const attach = (ws) => {
    ws.binaryType = 'nodebuffer'
    const start = () => {
      conns.add(ws)
      for (const [docName, doc] of docs) send(ws, docName, (e) => syncProtocol.writeSyncStep1(e, doc))
    }
    ws.on('message', (data) => {
      const d = decoding.createDecoder(new Uint8Array(data))
      const docName = decoding.readVarString(d)
      const reply = encoding.createEncoder()
      encoding.writeVarString(reply, docName)
      const before = encoding.length(reply)
      syncProtocol.readSyncMessage(d, reply, getDoc(docName), ws)
      if (encoding.length(reply) > before && ws.readyState === WebSocket.OPEN) ws.send(encoding.toUint8Array(reply))
    })
    ws.on('close', () => conns.delete(ws))
    ws.on('error', () => undefined)
    if (ws.readyState === WebSocket.OPEN) start()
    else ws.once('open', start)
  }

  let wss
  let closing = false
  if (networked) {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await new Promise((r) => wss.once('listening', r))
    wss.on('connection', (ws) => attach(ws))
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
    const names = [...docs.keys()].sort()
    for (const n of names) {
      const doc = docs.get(n)
      h.update(`${n}:${Buffer.from(Y.encodeStateVector(doc)).toString('base64')}`)
      if (withContent) h.update(`:${canonical(doc.getMap('m').toJSON())}`)
      h.update(';')
    }
    return { digest: h.digest('hex'), documents: names.length }
  }

  return {
    port: networked ? wss.address().port : 0,
    connected: () => conns.size,
    async createDocs({ from = 0, to }) {
      const updates = []
      for (let i = from; i < to; i++) {
        const doc = getDoc(name(i))
        doc.getMap('m').set('init', i)
        updates.push(Y.encodeStateAsUpdate(doc))
        if (i % 1000 === 0) await tick()
      }
      return { updates }
    },
    async importDocs({ updates }) {
      for (let i = 0; i < updates.length; i++) {
        Y.applyUpdate(getDoc(name(i)), updates[i])
        if (i % 1000 === 0) await tick()
      }
      return true
    },
    async write({ seed, count, docs: n }) {
      let k = 0
      for (const op of ops({ seed, replica: cfg.index, count, docs: n })) {
        const doc = getDoc(name(op.doc))
        doc.transact(() => doc.getMap('m').set(op.key, op.value))
        if (++k % 100 === 0) await tick()
      }
      return k
    },
    heads: () => digestOf(false),
    content: () => digestOf(true),
    /** Scale build: `count` Y.Docs { n, title } in memory. */
    async build({ count, progress }) {
      for (let i = 0; i < count; i++) {
        const m = getDoc(name(i)).getMap('m')
        m.set('n', i)
        m.set('title', `document ${i}`)
        if (i % 1000 === 999) {
          await tick()
          if (progress) process.send({ progress: i + 1 })
        }
      }
      return docs.size
    },
    async localWrites({ docs: n, count, seed }) {
      for (let i = 0; i < n; i++) getDoc(name(i)).getMap('m').set('init', i)
      // What a provider would persist or send: the update of every transaction.
      let updateBytes = 0
      for (const doc of docs.values()) doc.on('update', (u) => (updateBytes += u.length))
      const t0 = performance.now()
      let k = 0
      for (const op of ops({ seed, replica: 0, count, docs: n })) {
        const doc = docs.get(name(op.doc))
        doc.transact(() => doc.getMap('m').set(op.key, op.value))
        if (++k % 100 === 0) await tick()
      }
      return { ms: performance.now() - t0, count, updateBytes }
    },
    close() {
      closing = true
      for (const ws of conns) ws.terminate()
      wss?.close()
    },
  }
}
