// node benchmarks/unit-layouts.mjs [--machine] [--quick] [--merge-every N] [--cut N] — step 2 of the commit-granular record
// (docs/ARCHITECTURE.md, "Next") decided by numbers: how to store @dru/core's units. Same
// 100,000 events as bench:log (150-byte changes over 1,000 documents, commits of 1,000), each
// commit sealed by the product's `sealUnits` inside the timed loop, then stored two ways:
//
//   entry rows   a row per event keyed by its position only (its entry's bytes exactly as
//                hashed, its entry hash, document number, origin number and seq; no index on
//                them) and a row per unit (origin, first seq, count, prev, hash) under the
//                (origin, first seq) index: one B-tree insert per event, as a raw insert.
//   unit rows    a row per unit holding the unit's bytes and its entry hashes.
//
// and entry rows without origin and seq (a reader takes them from the unit's header), and entry
// rows without the document index (no reads: what the index costs the append).
//
// `--cut N` seals each commit as units of at most N events (the product cuts at 256): smaller
// units make a unit row cheaper to read for one of its events, and leave more rows.
//
// Both feed the per-document index (`doc_events`) in bulk every 32,768 events, as the store
// does. Against a raw insert of the same payloads. Then what reading a document costs in each:
// 200 documents' events read back by the document index and each checked (its entry's hash)
// and decoded; and what streaming the whole log in order costs (what a peer lacks): entry rows
// each checked and decoded, unit rows each opened (`openUnit`: every entry's hash, the unit's
// hash, decoded). Prints a table; writes nothing.
import { mkdtempSync, rmSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { GENESIS_HASH, decodeEntry, openUnit, sealUnits } from '@dru/core'

const quick = process.argv.includes('--quick')
const EVENTS = quick ? 20_000 : 100_000
const BATCH = 1_000
const PAYLOAD = 150
const DOCS = 1_000
const RUNS = quick ? 1 : 3
const READ_DOCS = 200
const mergeAt = process.argv.indexOf('--merge-every')
/** Events between merges of the document index (the store's default: 32,768). */
const MERGE_EVERY = mergeAt >= 0 ? Number(process.argv[mergeAt + 1]) : 32_768
const ORIGIN = 'bench/1'
const cutAt = process.argv.indexOf('--cut')
/** Most events per unit (the product's sealUnits cuts at 256 events or 64 KiB). */
const CUT = cutAt >= 0 ? Number(process.argv[cutAt + 1]) : 256
const sync = process.argv.includes('--machine') ? 'FULL' : 'NORMAL'

const payloads = Array.from({ length: EVENTS }, (_, i) => {
  const b = Buffer.alloc(PAYLOAD)
  for (let k = 0; k + 4 <= PAYLOAD; k += 4) b.writeUInt32LE((i * 2654435761 + k) >>> 0, k)
  return b
})
const docNames = Array.from({ length: DOCS }, (_, i) => `doc-${i}`)

function open(path) {
  const db = new Database(path)
  db.pragma('locking_mode = EXCLUSIVE')
  db.pragma('journal_mode = WAL')
  db.pragma(`synchronous = ${sync}`)
  return db
}

/** The entries of commit `from` as an application's writes would make them. */
function entriesOf(from) {
  const out = new Array(BATCH)
  for (let k = 0; k < BATCH; k++)
    out[k] = {
      wall: 1_765_000_000_000 + from + k,
      counter: k & 7,
      docId: docNames[(from + k) % DOCS],
      change: payloads[from + k],
    }
  return out
}

/** Commit `from` sealed after `prev` as units of at most {@link CUT} events (sealUnits per slice, chained). */
function sealCommit(from, prev) {
  const entries = entriesOf(from)
  const units = []
  for (let at = 0; at < entries.length; at += CUT) {
    for (const u of sealUnits(ORIGIN, from + 1 + at, prev, entries.slice(at, at + CUT))) {
      units.push(u)
      prev = u.hash
    }
  }
  return units
}

/** Statements inserting `rows` rows of `columns` values at once, by row count. */
function multiInsert(db, table, columns) {
  const byCount = new Map()
  return (values, rows) => {
    let s = byCount.get(rows)
    if (!s) {
      const one = `(${new Array(columns).fill('?').join(', ')})`
      s = db.prepare(`insert into ${table} values ${new Array(rows).fill(one).join(', ')}`)
      byCount.set(rows, s)
    }
    s.run(values)
  }
}

function raw(dir) {
  const db = open(join(dir, 'raw.db'))
  db.exec('create table raw (id integer primary key, payload blob not null)')
  const insert = db.prepare('insert into raw (payload) values (?)')
  const batch = db.transaction((from) => {
    for (let k = from; k < from + BATCH; k++) insert.run(payloads[k])
  })
  const t0 = performance.now()
  for (let i = 0; i < EVENTS; i += BATCH) batch.immediate(i)
  const rate = EVENTS / ((performance.now() - t0) / 1000)
  db.close()
  return { rate }
}

const DOC_INDEX = `create table doc_events (doc integer not null, lsn integer not null, primary key (doc, lsn)) without rowid;`

/**
 * Entry rows; `lean` leaves origin and seq out of the event's row (4 values bound instead of 6):
 * a reader finds them in the unit's header, by position.
 */
function entryRows(dir, { lean = false, docIndex = true } = {}) {
  const path = join(dir, 'entries.db')
  const db = open(path)
  const width = lean ? 4 : 6
  db.exec(`create table units (first_lsn integer primary key, origin_id integer not null, first_seq integer not null,
      count integer not null, prev blob not null, hash blob not null, sig blob);
    create unique index units_origin_seq on units(origin_id, first_seq);
    create table events (lsn integer primary key, doc integer not null, ${lean ? '' : 'origin_id integer not null, seq integer not null,'}
      entry blob not null, entry_hash blob not null);
    ${DOC_INDEX}`)
  const insertUnit = db.prepare('insert into units values (?, 1, ?, ?, ?, ?, null)')
  const insertEvents = multiInsert(db, 'events', width)
  const merge = db.prepare('insert into doc_events select doc, lsn from events where lsn > ? order by doc, lsn')
  const ids = new Map()
  const values = new Array(32 * width)
  let prev = GENESIS_HASH
  const commit = db.transaction((from) => {
    let lsn = from + 1
    for (const u of sealCommit(from, prev)) {
      insertUnit.run(lsn, u.seq, u.entries.length, Buffer.from(u.prev, 'hex'), Buffer.from(u.hash, 'hex'))
      let n = 0
      for (let i = 0; i < u.entries.length; i++) {
        const docId = u.entries[i].docId
        let doc = ids.get(docId)
        if (doc === undefined) ids.set(docId, (doc = ids.size + 1))
        values[n++] = lsn + i
        values[n++] = doc
        if (!lean) {
          values[n++] = 1
          values[n++] = u.seq + i
        }
        values[n++] = u.bytes.subarray(u.entryStarts[i], u.entryStarts[i + 1])
        values[n++] = u.entryHashes.subarray(32 * i, 32 * i + 32)
        if (n === values.length) {
          insertEvents(values, 32)
          n = 0
        }
      }
      if (n > 0) insertEvents(values.slice(0, n), n / width)
      lsn += u.entries.length
      prev = u.hash
    }
  })
  let merged = 0
  const t0 = performance.now()
  for (let i = 0; i < EVENTS; i += BATCH) {
    commit.immediate(i)
    if (docIndex && i + BATCH - merged >= MERGE_EVERY) {
      db.transaction(() => merge.run(merged)).immediate()
      merged = i + BATCH
    }
  }
  if (docIndex) db.transaction(() => merge.run(merged)).immediate()
  const rate = EVENTS / ((performance.now() - t0) / 1000)
  db.close()
  return {
    rate,
    read: docIndex ? readDocs(path, lean ? leanRowsReader : entryRowsReader) : undefined,
    stream:
      docIndex && !lean ? streamRead(path, 'select entry, entry_hash from events order by lsn', checkEntry) : undefined,
  }
}

/** One entry row checked (its hash) and decoded, as a reader of the log does. */
function checkEntry([entry, hash]) {
  if (!createHash('sha256').update(entry).digest().equals(hash)) throw new Error('entry hash differs')
  decodeEntry(ORIGIN, entry)
  return 1
}

/** One unit row opened as a receiver opens a unit: every entry's hash, the unit's hash, decoded. */
function openUnitRow([bytes, hash]) {
  const u = openUnit(bytes)
  if (u.hash !== hash.toString('hex')) throw new Error('unit hash differs')
  return u.entries.length
}

/** The whole log read in order through a fresh connection, each row checked by `check` (returns its events). */
function streamRead(path, sql, check) {
  const db = new Database(path, { readonly: true })
  const rows = db.prepare(sql).raw()
  const t0 = performance.now()
  let events = 0
  for (const row of rows.iterate()) events += check(row)
  const rate = events / ((performance.now() - t0) / 1000)
  db.close()
  if (events !== EVENTS) throw new Error(`streamed ${events} of ${EVENTS} events`)
  return { rate }
}

function entryRowsReader(db) {
  return checkRows(
    db
      .prepare(
        'select e.origin_id, e.seq, e.entry, e.entry_hash from doc_events x join events e on e.lsn = x.lsn where x.doc = ?',
      )
      .raw(),
  )
}

/** Origin and seq from the header of the unit holding the position. */
function leanRowsReader(db) {
  return checkRows(
    db
      .prepare(
        `select u.origin_id, u.first_seq + x.lsn - u.first_lsn, e.entry, e.entry_hash from doc_events x
         join events e on e.lsn = x.lsn
         join units u on u.first_lsn = (select max(first_lsn) from units where first_lsn <= x.lsn) where x.doc = ?`,
      )
      .raw(),
  )
}

/** Reads a document's rows, checking each entry's hash and decoding it. */
function checkRows(rows) {
  return (doc) => {
    let n = 0
    for (const [, , entry, hash] of rows.iterate(doc)) {
      if (!createHash('sha256').update(entry).digest().equals(hash)) throw new Error('entry hash differs')
      decodeEntry(ORIGIN, entry)
      n++
    }
    return n
  }
}

function unitRows(dir) {
  const path = join(dir, 'units.db')
  const db = open(path)
  db.exec(`create table units (first_lsn integer primary key, origin_id integer not null, first_seq integer not null,
      count integer not null, prev blob not null, hash blob not null, sig blob, bytes blob not null, entry_hashes blob not null);
    create unique index units_origin_seq on units(origin_id, first_seq);
    ${DOC_INDEX}`)
  const insertUnit = db.prepare('insert into units values (?, 1, ?, ?, ?, ?, null, ?, ?)')
  const addIndex = db.prepare('insert into doc_events values (?, ?)')
  const ids = new Map()
  const tail = []
  let prev = GENESIS_HASH
  const commit = db.transaction((from) => {
    let lsn = from + 1
    for (const u of sealCommit(from, prev)) {
      insertUnit.run(
        lsn,
        u.seq,
        u.entries.length,
        Buffer.from(u.prev, 'hex'),
        Buffer.from(u.hash, 'hex'),
        u.bytes,
        u.entryHashes,
      )
      for (let i = 0; i < u.entries.length; i++) {
        const docId = u.entries[i].docId
        let doc = ids.get(docId)
        if (doc === undefined) ids.set(docId, (doc = ids.size + 1))
        tail.push(doc, lsn + i)
      }
      lsn += u.entries.length
      prev = u.hash
    }
  })
  const merge = db.transaction(() => {
    const pairs = []
    for (let i = 0; i < tail.length; i += 2) pairs.push([tail[i], tail[i + 1]])
    pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1])
    for (const [doc, lsn] of pairs) addIndex.run(doc, lsn)
    tail.length = 0
  })
  const t0 = performance.now()
  for (let i = 0; i < EVENTS; i += BATCH) {
    commit.immediate(i)
    if (tail.length / 2 >= MERGE_EVERY) merge.immediate()
  }
  merge.immediate()
  const rate = EVENTS / ((performance.now() - t0) / 1000)
  db.close()
  return {
    rate,
    read: readDocs(path, unitRowsReader),
    stream: streamRead(path, 'select bytes, hash from units order by first_lsn', openUnitRow),
  }
}

function unitRowsReader(db) {
  const lsns = db.prepare('select lsn from doc_events where doc = ?').pluck()
  const unitAt = db
    .prepare('select first_lsn, bytes, entry_hashes from units where first_lsn <= ? order by first_lsn desc limit 1')
    .raw()
  return (doc) => {
    let n = 0
    for (const lsn of lsns.all(doc)) {
      const [first, bytes, hashes] = unitAt.get(lsn)
      const i = lsn - first
      // The entry's bytes lie somewhere in the unit: found by walking the entries before it.
      const entry = entryBytesOf(bytes, i)
      if (
        !createHash('sha256')
          .update(entry)
          .digest()
          .equals(hashes.subarray(32 * i, 32 * i + 32))
      )
        throw new Error('entry hash differs')
      decodeEntry(ORIGIN, entry)
      n++
    }
    return n
  }
}

/** Entry i's bytes inside a unit's bytes, found by walking the unit's varints (what a reader must do). */
function entryBytesOf(bytes, i) {
  let at = 1 + 32
  const uint = () => {
    let v = 0
    let scale = 1
    for (;;) {
      const b = bytes[at++]
      v += (b & 0x7f) * scale
      if (b < 0x80) return v
      scale *= 0x80
    }
  }
  // (a length is read before it is added: \`at += uint()\` would add it to the old position)
  const skip = () => {
    const n = uint()
    at += n
  }
  skip() // origin
  uint() // seq
  const count = uint()
  for (let k = 0; k < count; k++) {
    const start = at
    at++ // tag
    uint() // wall
    uint() // counter
    skip() // node
    skip() // docId
    skip() // change
    if (k === i) return bytes.subarray(start, at)
  }
  throw new Error('entry past the unit')
}

/** Reads READ_DOCS documents' events through a fresh connection (SQLite's cache cold). */
function readDocs(path, readerOf) {
  const db = new Database(path, { readonly: true })
  const read = readerOf(db)
  const t0 = performance.now()
  let events = 0
  for (let d = 1; d <= READ_DOCS; d++) events += read(d * Math.floor(DOCS / READ_DOCS))
  const rate = events / ((performance.now() - t0) / 1000)
  db.close()
  return { rate, events }
}

function inDir(fn) {
  const dir = mkdtempSync(join(tmpdir(), 'dru-unit-layouts-'))
  try {
    return fn(dir)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const results = {
  raw: [],
  entryRows: [],
  bare: [],
  leanRows: [],
  unitRows: [],
  entryRead: [],
  leanRead: [],
  unitRead: [],
  entryStream: [],
  unitStream: [],
}
for (let r = 0; r < RUNS; r++) {
  results.raw.push(inDir(raw).rate)
  const e = inDir(entryRows)
  results.entryRows.push(e.rate)
  results.entryRead.push(e.read.rate)
  results.entryStream.push(e.stream.rate)
  results.bare.push(inDir((dir) => entryRows(dir, { docIndex: false })).rate)
  const l = inDir((dir) => entryRows(dir, { lean: true }))
  results.leanRows.push(l.rate)
  results.leanRead.push(l.read.rate)
  const u = inDir(unitRows)
  results.unitRows.push(u.rate)
  results.unitRead.push(u.read.rate)
  results.unitStream.push(u.stream.rate)
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const fmt = (n) => Math.round(n).toLocaleString('en-US')
const cell = (xs) => `${fmt(median(xs))} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})`
const m = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v)]))
console.log(
  `synchronous ${sync}, ${fmt(EVENTS)} events of ${PAYLOAD} B over ${DOCS} documents, commits of ${BATCH} cut into units of at most ${CUT} events, document index merged every ${fmt(MERGE_EVERY)}, median of ${RUNS} (range)\n`,
)
console.log(
  '| layout | append (seal + insert), ev/s | of raw insert | a document read and checked, events/s | the log streamed in order and checked, events/s |',
)
console.log('| --- | ---: | ---: | ---: | ---: |')
console.log(`| raw insert | ${cell(results.raw)} | 1.00 | — | — |`)
console.log(
  `| entry rows + unit headers | ${cell(results.entryRows)} | ${(m.entryRows / m.raw).toFixed(2)} | ${cell(results.entryRead)} | ${cell(results.entryStream)} |`,
)
console.log(
  `| entry rows + unit headers, no document index (what the index costs) | ${cell(results.bare)} | ${(m.bare / m.raw).toFixed(2)} | — | — |`,
)
console.log(
  `| entry rows without origin and seq + unit headers | ${cell(results.leanRows)} | ${(m.leanRows / m.raw).toFixed(2)} | ${cell(results.leanRead)} | — |`,
)
console.log(
  `| unit rows | ${cell(results.unitRows)} | ${(m.unitRows / m.raw).toFixed(2)} | ${cell(results.unitRead)} | ${cell(results.unitStream)} |`,
)
