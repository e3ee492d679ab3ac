// node benchmarks/catchup-ceiling.mjs [--events N] [--cut K] [--runs R] — a spike's ceiling, no
// product code: how fast a catch-up could run if the log were stored and sent as @dru/core's
// units (ARCHITECTURE, "Next": identity per unit, an entry hash per event), against raw ws
// moving the same bytes in the same frames and window, in the same run.
//
// The backlog: N events of 200 random bytes over 10,000 documents, one origin, commits of
// 1,000, sealed by `sealUnits` into units of at most K events (untimed), stored on the sender
// as unit rows (the unit's bytes and its entry hashes). Timed, two processes over 127.0.0.1:
//   sender    reads the rows in order, checks each unit as a read of the log must (`openUnit`:
//             every entry's hash over its bytes, then the unit's; its link to the one before),
//             packs the unit bytes into ~1 MiB frames, sends them inside an 8 MiB window.
//   receiver  checks each unit the same way (`openUnit`, the chain), stores the unit's bytes
//             as they came with its entry hashes (a row per unit, a transaction per frame),
//             numbers each document through a dictionary table and indexes each event by
//             document in memory, written to `doc_events` every 262,144 events as the store
//             does; acks each frame once committed.
// What it leaves out, so a product could only be slower: the inbox and its handlers, the
// signature per run, compaction bases, the frame's seal and compression, peers' vectors.
import { fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import WebSocket, { WebSocketServer } from 'ws'
import { GENESIS_HASH, openUnit, sealUnits } from '@dru/core'
import { rawWs } from './raw-ws.mjs'
import { summarize } from './results.mjs'

const argv = process.argv.slice(2)
const arg = (name, dflt) => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? Number(argv[i + 1]) : dflt
}
const EVENTS = arg('events', 1_000_000)
const CUT = arg('cut', 16)
const RUNS = arg('runs', 3)
const ORIGIN = 'a/1'
const DOCS = 10_000
const FRAME_BYTES = 1 << 20
const WINDOW = 8 << 20
const MERGE_EVERY = 262_144
const SELF = fileURLToPath(import.meta.url)

/** The product's pragmas for durability 'process' (open-store.ts). */
function open(path) {
  const db = new Database(path)
  db.pragma('locking_mode = EXCLUSIVE')
  db.pragma('journal_mode = WAL')
  db.exec('begin exclusive; commit')
  db.pragma('synchronous = NORMAL')
  db.pragma(`cache_size = -${16 << 10}`)
  db.pragma('mmap_size = 0')
  db.exec(
    'create table if not exists units (seq integer primary key, n integer not null, bytes blob not null, hashes blob not null)',
  )
  return db
}

/** Checks one unit's bytes and its link to the hash before it; returns the opened unit. */
function check(bytes, prev, seq) {
  const u = openUnit(bytes)
  if (u.prev !== prev || u.seq !== seq || u.origin !== ORIGIN) throw new Error(`unit at #${seq} breaks the chain`)
  return u
}

// ---- the receiver (a child process) -------------------------------------------------

function receiver() {
  // A sender killed mid-run leaves no receiver behind.
  process.on('disconnect', () => process.exit(0))
  const dir = process.env.CEILING_DIR
  const db = open(join(dir, 'receiver.db'))
  db.exec(`create table doc_ids (id integer primary key, doc_id text not null unique);
           create table doc_events (doc integer not null, lsn integer not null, primary key (doc, lsn)) without rowid`)
  const insertUnit = db.prepare('insert into units (seq, n, bytes, hashes) values (?, ?, ?, ?)')
  const insertDoc = db.prepare('insert into doc_ids (doc_id) values (?)')
  const insertIndex = db.prepare('insert into doc_events (doc, lsn) values (?, ?)')
  const docIds = new Map()
  let tail = new Map()
  let tailSize = 0
  let prev = GENESIS_HASH
  let next = 1
  const merge = () => {
    const docs = [...tail.keys()].sort((a, b) => a - b)
    for (const doc of docs) for (const lsn of tail.get(doc)) insertIndex.run(doc, lsn)
    tail = new Map()
    tailSize = 0
  }
  const store = db.transaction((frame) => {
    for (let at = 0; at < frame.byteLength;) {
      const len = frame.readUInt32LE(at)
      // A view into ws's buffer: SQLite copies it when bound, nothing keeps it past the frame.
      const bytes = frame.subarray(at + 4, at + 4 + len)
      at += 4 + len
      const u = check(bytes, prev, next)
      insertUnit.run(u.seq, u.entries.length, bytes, u.entryHashes)
      for (let i = 0; i < u.entries.length; i++) {
        const text = u.entries[i].docId
        let doc = docIds.get(text)
        if (doc === undefined) docIds.set(text, (doc = Number(insertDoc.run(text).lastInsertRowid)))
        const list = tail.get(doc)
        if (list) list.push(u.seq + i)
        else tail.set(doc, [u.seq + i])
      }
      tailSize += u.entries.length
      prev = u.hash
      next = u.seq + u.entries.length
    }
    if (tailSize >= MERGE_EVERY) merge()
  })
  // The receiver dials, as a DRU catching up does: the sender's frames go server to client, unmasked.
  const ws = new WebSocket(`ws://127.0.0.1:${process.env.CEILING_PORT}`, {
    perMessageDeflate: false,
    maxPayload: 64 << 20,
  })
  ws.on('message', (frame) => {
    store.immediate(frame)
    ws.send(Buffer.alloc(8))
    if (next > EVENTS) {
      db.transaction(merge).immediate()
      db.close()
      const cpu = process.cpuUsage()
      process.send({ done: next - 1, cpuMs: (cpu.user + cpu.system) / 1000 }, () => process.exit(0))
    }
  })
}

// ---- the sender (this process) ------------------------------------------------------

/** The backlog, sealed into units and stored as rows on the sender (untimed). */
function writeBacklog(db) {
  const changes = randomBytes(EVENTS * 200)
  const insert = db.prepare('insert into units (seq, n, bytes, hashes) values (?, ?, ?, ?)')
  let prev = GENESIS_HASH
  let bytes = 0
  let rows = 0
  db.transaction(() => {
    for (let first = 1; first <= EVENTS; first += CUT) {
      const n = Math.min(CUT, EVENTS - first + 1)
      const entries = []
      for (let k = 0; k < n; k++) {
        const i = first - 1 + k
        entries.push({
          wall: 1_700_000_000_000 + Math.floor(i / 1000),
          counter: i % 1000,
          docId: `doc-${i % DOCS}`,
          change: changes.subarray(i * 200, i * 200 + 200),
        })
      }
      for (const u of sealUnits(ORIGIN, first, prev, entries)) {
        insert.run(u.seq, u.entries.length, u.bytes, u.entryHashes)
        prev = u.hash
        bytes += u.bytes.byteLength + 4
        rows++
      }
    }
  })()
  return { bytes, rows }
}

async function catchUp(db, ws) {
  const rows = db.prepare('select bytes from units order by seq').raw().iterate()
  let prev = GENESIS_HASH
  let next = 1
  let inflight = 0
  let sent = 0
  let wake = () => undefined
  ws.on('message', () => {
    inflight -= 1
    wake()
  })
  const parts = []
  let size = 0
  const flush = async () => {
    while (inflight * FRAME_BYTES >= WINDOW) await new Promise((r) => (wake = r))
    ws.send(Buffer.concat(parts, size))
    sent += size
    inflight += 1
    parts.length = 0
    size = 0
  }
  for (const [bytes] of rows) {
    const u = check(bytes, prev, next)
    prev = u.hash
    next = u.seq + u.entries.length
    const len = Buffer.allocUnsafe(4)
    len.writeUInt32LE(bytes.byteLength)
    parts.push(len, bytes)
    size += 4 + bytes.byteLength
    if (size >= FRAME_BYTES) await flush()
  }
  if (size > 0) await flush()
  return sent
}

/**
 * The receiver's floor: the same unit rows inserted into a fresh database with the product's
 * pragmas, a transaction per ~1 MiB frame, nothing checked or indexed (read into memory first).
 */
function rawInsert(dir, sender) {
  const rows = sender.prepare('select seq, n, bytes, hashes from units order by seq').raw().all()
  const db = open(join(dir, 'raw.db'))
  const insert = db.prepare('insert into units (seq, n, bytes, hashes) values (?, ?, ?, ?)')
  const frame = db.transaction((from, to) => {
    for (let i = from; i < to; i++) insert.run(...rows[i])
  })
  const t0 = performance.now()
  for (let i = 0; i < rows.length;) {
    let size = 0
    let j = i
    while (j < rows.length && size < FRAME_BYTES) size += rows[j++][2].byteLength + 4
    frame.immediate(i, j)
    i = j
  }
  const ms = performance.now() - t0
  db.close()
  return ms
}

async function main() {
  const results = []
  for (let run = 0; run < RUNS; run++) {
    const dir = mkdtempSync(join(tmpdir(), 'dru-catchup-ceiling-'))
    try {
      const db = open(join(dir, 'sender.db'))
      const backlog = writeBacklog(db)
      const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
      await new Promise((r) => server.once('listening', r))
      const env = { ...process.env, CEILING_DIR: dir, CEILING_PORT: String(server.address().port) }
      const child = fork(SELF, ['--receiver', ...argv], { env })
      const ws = await new Promise((r) => server.once('connection', r))
      const cpu0 = process.cpuUsage()
      const t0 = performance.now()
      // A receiver that dies (a unit it refuses throws) fails the run instead of hanging it.
      const done = new Promise((resolve, reject) => {
        child.on('message', (m) => m.done && resolve(m))
        child.once('exit', (code, signal) => {
          // It exits 0 right after reporting; anything else is a failure.
          if (code !== 0 || signal)
            reject(new Error(`the receiver died (${signal ?? code}) before storing the backlog`))
        })
      })
      await catchUp(db, ws)
      const end = await done
      const ms = performance.now() - t0
      const cpu = process.cpuUsage(cpu0)
      ws.close()
      server.close()
      // It exits once it has reported (a profiler started with it writes its profile then).
      const exited = new Promise((r) => child.once('exit', r))
      if ((await Promise.race([exited, new Promise((r) => setTimeout(() => r('late'), 5000))])) === 'late')
        child.kill('SIGKILL')
      if (end.done !== EVENTS) throw new Error(`receiver stored ${end.done} of ${EVENTS}`)
      const frames = Math.ceil(backlog.bytes / FRAME_BYTES)
      const raw = await rawWs(backlog.bytes, Math.round(backlog.bytes / frames), 'server')
      const masked = await rawWs(backlog.bytes, Math.round(backlog.bytes / frames), 'client')
      const insertMs = rawInsert(dir, db)
      db.close()
      results.push({ ms, raw, masked, insertMs, senderCpuMs: (cpu.user + cpu.system) / 1000 })
      console.log(
        `run ${run + 1}: ${EVENTS.toLocaleString('en')} events in ${backlog.rows.toLocaleString('en')} units of ≤ ${CUT}, ${(backlog.bytes / 2 ** 20).toFixed(1)} MiB:`,
        `units ${(ms / 1000).toFixed(2)} s, raw ws ${(raw / 1000).toFixed(2)} s, ratio ${((raw / ms) * 100).toFixed(1)} %`,
        `(raw ws from the client side, masked, ${(masked / 1000).toFixed(2)} s: ${((masked / ms) * 100).toFixed(1)} %);`,
        `raw insert of the rows ${(insertMs / 1000).toFixed(2)} s (${((raw / insertMs) * 100).toFixed(1)} % of raw ws's speed);`,
        `CPU sender ${(results.at(-1).senderCpuMs / 1000).toFixed(2)} s, receiver ${(end.cpuMs / 1000).toFixed(2)} s (its whole life)`,
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
  const t = summarize(results.map((r) => r.ms / 1000))
  const r = summarize(results.map((x) => x.raw / 1000))
  const q = summarize(results.map((x) => (x.raw / x.ms) * 100))
  const i = summarize(results.map((x) => x.insertMs / 1000))
  const m = summarize(results.map((x) => x.masked / 1000))
  const f = (m, d = 2) => `${m.median.toFixed(d)} (${m.min.toFixed(d)}–${m.max.toFixed(d)})`
  console.log(
    `median of ${RUNS}: units ${f(t)} s, raw ws ${f(r)} s, ratio ${f(q, 1)} %; raw ws masked ${f(m)} s; raw insert of the same rows ${f(i)} s`,
  )
}

if (argv.includes('--receiver')) receiver()
else await main()
