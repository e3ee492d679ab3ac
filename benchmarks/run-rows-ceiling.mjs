// node benchmarks/run-rows-ceiling.mjs [--machine] — a spike's ceiling, no product code: how
// fast the log could append if each run of consecutive events (one commit, one origin's part
// of an ingested batch) were one row with its events packed in a blob, against one row per
// event (schema 4) and a raw insert of the same payloads. Events are sealed beforehand; the
// seal is measured apart, twice: today's (msgpack envelope + sha256 + HLC text, per event) and
// one hash per commit (each event's fields packed once into the run's blob, one sha256 over
// the previous commit's hash and the blob). Durability 'process' (synchronous NORMAL, WAL).
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { GENESIS_HASH, encodeHlc, sealEvent } from '@dru/core'

const EVENTS = 100_000
const BATCH = 1_000
const PAYLOAD = 150
const RUNS = 3
const sync = process.argv.includes('--machine') ? 'FULL' : 'NORMAL'

const payloads = Array.from({ length: EVENTS }, (_, i) => {
  const b = Buffer.alloc(PAYLOAD)
  for (let k = 0; k + 4 <= PAYLOAD; k += 4) b.writeUInt32LE((i * 2654435761 + k) >>> 0, k)
  return b
})

function open(dir, name) {
  const db = new Database(join(dir, name))
  db.pragma('locking_mode = EXCLUSIVE')
  db.pragma('journal_mode = WAL')
  db.pragma(`synchronous = ${sync}`)
  return db
}

function timed(fn) {
  const dir = mkdtempSync(join(tmpdir(), 'dru-ceiling-'))
  try {
    const t0 = performance.now()
    fn(dir)
    return EVENTS / ((performance.now() - t0) / 1000)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function seal() {
  const out = []
  let prev = GENESIS_HASH
  for (let k = 0; k < EVENTS; k++) {
    const e = sealEvent({
      origin: 'bench/1',
      seq: k + 1,
      hlc: encodeHlc({ wall: 1_765_000_000_000 + k, counter: k & 7, node: 'bench/1' }),
      docId: `doc-${k % 1000}`,
      change: payloads[k],
      prev,
    })
    prev = e.hash
    out.push(e)
  }
  return out
}

const raw = () =>
  timed((dir) => {
    const db = open(dir, 'raw.db')
    db.exec('create table raw (id integer primary key, payload blob not null)')
    const insert = db.prepare('insert into raw (payload) values (?)')
    const batch = db.transaction((from) => {
      for (let k = from; k < from + BATCH; k++) insert.run(payloads[k])
    })
    for (let i = 0; i < EVENTS; i += BATCH) batch.immediate(i)
    db.close()
  })

/** Schema 4: a row per event, unique (origin_id, seq), doc_events merged in bulk every 32,768. */
const perEvent = (sealed) =>
  timed((dir) => {
    const db = open(dir, 'rows.db')
    db.exec(`create table log (lsn integer primary key, origin_id integer not null, seq integer not null, doc integer not null,
      hlc_wall integer not null, hlc_counter integer not null, hlc_node text, change blob not null, prev blob not null,
      hash blob not null, sig blob, received_at integer not null, applied_at integer);
      create unique index log_origin_seq on log(origin_id, seq);
      create table doc_events (doc integer not null, lsn integer not null, origin_id integer not null, primary key (doc, lsn)) without rowid;`)
    const insert = db.prepare('insert into log values (?, 1, ?, ?, ?, ?, null, ?, ?, ?, null, 0, 0)')
    const merge = db.prepare(
      'insert into doc_events select doc, lsn, origin_id from log where lsn > ? order by doc, lsn',
    )
    const batch = db.transaction((from) => {
      for (let k = from; k < from + BATCH; k++) {
        const e = sealed[k]
        const wall = Number(e.hlc.slice(0, 15))
        const counter = Number(e.hlc.slice(16, 26))
        insert.run(
          k + 1,
          e.seq,
          (k % 1000) + 1,
          wall,
          counter,
          e.change,
          Buffer.from(e.prev, 'hex'),
          Buffer.from(e.hash, 'hex'),
        )
      }
    })
    let merged = 0
    for (let i = 0; i < EVENTS; i += BATCH) {
      batch.immediate(i)
      if (i + BATCH - merged >= 32_768) {
        db.transaction(() => merge.run(merged)).immediate()
        merged = i + BATCH
      }
    }
    db.close()
  })

/** One event packed: flags, HLC wall and counter (f64), doc id (u32), change (u32 length + bytes), hash. */
function pack(events, from, to) {
  let size = 0
  for (let k = from; k < to; k++) size += 1 + 8 + 8 + 4 + 4 + events[k].change.byteLength + 32
  const buf = Buffer.allocUnsafe(size)
  let at = 0
  for (let k = from; k < to; k++) {
    const e = events[k]
    buf[at] = 0
    buf.writeDoubleLE(Number(e.hlc.slice(0, 15)), at + 1)
    buf.writeDoubleLE(Number(e.hlc.slice(16, 26)), at + 9)
    buf.writeUInt32LE((k % 1000) + 1, at + 17)
    buf.writeUInt32LE(e.change.byteLength, at + 21)
    buf.set(e.change, at + 25)
    at += 25 + e.change.byteLength
    buf.write(e.hash, at, 'hex')
    at += 32
  }
  return buf
}

/**
 * A row per run of `BATCH` events; doc_events fed from memory (the store indexes its tail
 * there), merged every 32,768. `blobOf(from)` gives the run's packed events: packed here from
 * sealed events, or the commit seal's blob (packed while sealing).
 */
const perRun = (blobOf, prevOf) =>
  timed((dir) => {
    const db = open(dir, 'runs.db')
    db.exec(`create table runs (first_lsn integer primary key, origin_id integer not null, first_seq integer not null,
      last_seq integer not null, prev blob not null, events blob not null, sigs blob, received_at integer not null, applied_at integer);
      create unique index runs_origin_seq on runs(origin_id, first_seq);
      create table doc_events (doc integer not null, lsn integer not null, origin_id integer not null, primary key (doc, lsn)) without rowid;`)
    const insert = db.prepare('insert into runs values (?, 1, ?, ?, ?, ?, null, 0, 0)')
    const addIndex = db.prepare('insert into doc_events values (?, ?, 1)')
    const tail = []
    const batch = db.transaction((from) => {
      insert.run(from + 1, from + 1, from + BATCH, prevOf(from), blobOf(from))
      for (let k = from; k < from + BATCH; k++) tail.push((k % 1000) + 1, k + 1)
    })
    const merge = db.transaction(() => {
      const pairs = []
      for (let i = 0; i < tail.length; i += 2) pairs.push([tail[i], tail[i + 1]])
      pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1])
      for (const [doc, lsn] of pairs) addIndex.run(doc, lsn)
      tail.length = 0
    })
    for (let i = 0; i < EVENTS; i += BATCH) {
      batch.immediate(i)
      if (tail.length / 2 >= 32_768) merge.immediate()
    }
    db.close()
  })

/**
 * One hash per commit: each event's fields (HLC as integers, document number, change) packed
 * once into the commit's blob as the run row would hold them, then one sha256 over the
 * previous commit's hash and the blob. A single event is checked by re-hashing its run.
 */
function commitSeal() {
  const out = []
  let prev = Buffer.alloc(32)
  for (let from = 0; from < EVENTS; from += BATCH) {
    let size = 0
    for (let k = from; k < from + BATCH; k++) size += 1 + 8 + 8 + 4 + 4 + payloads[k].byteLength
    const blob = Buffer.allocUnsafe(size)
    let at = 0
    for (let k = from; k < from + BATCH; k++) {
      blob[at] = 0
      blob.writeDoubleLE(1_765_000_000_000 + k, at + 1)
      blob.writeDoubleLE(k & 7, at + 9)
      blob.writeUInt32LE((k % 1000) + 1, at + 17)
      blob.writeUInt32LE(payloads[k].byteLength, at + 21)
      blob.set(payloads[k], at + 25)
      at += 25 + payloads[k].byteLength
    }
    prev = createHash('sha256').update(prev).update(blob).digest()
    out.push({ blob, hash: prev })
  }
  return out
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const fmt = (n) => Math.round(n).toLocaleString('en-US')
const results = { seal: [], commitSeal: [], raw: [], perEvent: [], perRun: [], pack: [], runInsert: [] }
for (let r = 0; r < RUNS; r++) {
  let t0 = performance.now()
  const sealed = seal()
  results.seal.push(EVENTS / ((performance.now() - t0) / 1000))
  t0 = performance.now()
  const commits = commitSeal()
  results.commitSeal.push(EVENTS / ((performance.now() - t0) / 1000))
  t0 = performance.now()
  for (let i = 0; i < EVENTS; i += BATCH) pack(sealed, i, i + BATCH)
  results.pack.push(EVENTS / ((performance.now() - t0) / 1000))
  results.raw.push(raw())
  results.perEvent.push(perEvent(sealed))
  results.perRun.push(
    perRun(
      (from) => pack(sealed, from, from + BATCH),
      (from) => Buffer.from(sealed[from].prev, 'hex'),
    ),
  )
  results.runInsert.push(
    perRun(
      (from) => commits[from / BATCH].blob,
      (from) => (from === 0 ? Buffer.alloc(32) : commits[from / BATCH - 1].hash),
    ),
  )
}
const m = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v)]))
console.log(`synchronous ${sync}, ${EVENTS} events of ${PAYLOAD} B, commits of ${BATCH}, medians of ${RUNS} (min–max)`)
for (const [k, v] of Object.entries(results))
  console.log(`${k.padEnd(9)} ${fmt(m[k])} ev/s  (${fmt(Math.min(...v))}–${fmt(Math.max(...v))})`)
console.log(
  `per-event rows / raw: ${(m.perEvent / m.raw).toFixed(2)}; run rows / raw: ${(m.perRun / m.raw).toFixed(2)}`,
)
const withSeal = (rate, seal = m.seal) => 1 / (1 / rate + 1 / seal)
console.log(
  `with today's seal: per-event rows ${fmt(withSeal(m.perEvent))} ev/s (${(withSeal(m.perEvent) / m.raw).toFixed(2)} of raw); run rows ${fmt(withSeal(m.perRun))} ev/s (${(withSeal(m.perRun) / m.raw).toFixed(2)} of raw)`,
)
// The commit seal packs the run's blob as it hashes: only the insert of that blob is added.
console.log(
  `with one hash per commit: run rows ${fmt(withSeal(m.runInsert, m.commitSeal))} ev/s (${(withSeal(m.runInsert, m.commitSeal) / m.raw).toFixed(2)} of raw)`,
)
