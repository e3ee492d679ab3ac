// Workload 5: raw ceilings on the bytes dru logged in a partition-heal run, from replica
// a's point of view: the events it lacked at the heal (written by b and c).
//  - SQLite: better-sqlite3 inserting those (docId, change) rows into a plain table,
//    1,000 rows per transaction, WAL + synchronous=NORMAL + exclusive lock (dru 'process').
//  - ws: the same change bytes sent over one loopback WebSocket to another process, in
//    messages of up to 1 MiB, until the receiver has counted them all.
//  - applyChanges: Automerge.applyChanges of those changes, one call per document, onto
//    the documents as a held them (setup + its own changes, built untimed).
import { fork } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as A from '@automerge/automerge'
import WebSocket from 'ws'
import { openLog } from './systems/raw.mjs'

const SINK = fileURLToPath(new URL('./ws-sink.mjs', import.meta.url))

function sqlite(rows) {
  const dir = mkdtempSync(join(tmpdir(), 'dru-bench-ceiling-'))
  try {
    const log = openLog(join(dir, 'c.db'))
    const t0 = performance.now()
    for (let i = 0; i < rows.length; i += 1000) log.insertMany(rows.slice(i, i + 1000))
    const ms = performance.now() - t0
    log.db.close()
    return ms
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

async function ws(changes) {
  const sink = fork(SINK, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  try {
    const port = await new Promise((r) => sink.once('message', (m) => r(m.port)))
    const total = changes.reduce((n, c) => n + c.length, 0)
    const socket = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false })
    await new Promise((r) => socket.once('open', r))
    const armed = new Promise((r) => sink.once('message', r))
    sink.send({ expect: total })
    await armed
    const done = new Promise((r) => sink.once('message', r))
    const t0 = performance.now()
    let batch = []
    let bytes = 0
    for (const c of changes) {
      batch.push(c)
      bytes += c.length
      if (bytes >= 1 << 20) {
        socket.send(Buffer.concat(batch))
        batch = []
        bytes = 0
      }
    }
    if (batch.length) socket.send(Buffer.concat(batch))
    await done
    const ms = performance.now() - t0
    socket.close()
    return { ms, bytes: total }
  } finally {
    sink.kill('SIGKILL')
  }
}

function applyChanges(own, lacking) {
  const group = (events) => {
    const m = new Map()
    for (const e of events) {
      let l = m.get(e.docId)
      if (!l) m.set(e.docId, (l = []))
      l.push(e.change)
    }
    return m
  }
  const docs = new Map()
  for (const [docId, changes] of group(own)) docs.set(docId, A.applyChanges(A.init(), changes)[0])
  const t0 = performance.now()
  for (const [docId, changes] of group(lacking))
    docs.set(docId, A.applyChanges(docs.get(docId) ?? A.init(), changes)[0])
  return performance.now() - t0
}

process.once('message', async ({ events, runs }) => {
  try {
    const lacking = events.filter((e) => !e.origin.startsWith('a/'))
    const own = events.filter((e) => e.origin.startsWith('a/'))
    const rows = lacking.map((e) => [Number(e.docId.slice(4)), e.change])
    const out = {
      events: lacking.length,
      bytes: lacking.reduce((n, e) => n + e.change.length, 0),
      sqlite: [],
      ws: [],
      apply: [],
    }
    for (let r = 0; r < runs; r++) {
      out.sqlite.push(sqlite(rows))
      out.ws.push((await ws(lacking.map((e) => e.change))).ms)
      out.apply.push(applyChanges(own, lacking))
    }
    process.send({ ok: true, value: out })
  } catch (err) {
    process.send({ ok: false, error: String(err?.stack ?? err) })
  }
  setTimeout(() => process.exit(0), 50)
})
