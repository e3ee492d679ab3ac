import Database from 'better-sqlite3'
import { DruError, eventHashMatches, type DruEvent, type Origin, type PeerRecord, type VersionVector } from '@dru/core'
import { STORED_HLC, storedHlcSql } from './stored-form.js'

/**
 * The log's SQL in one place: its prepared statements, the shape of its rows, and the way
 * back from a row to an event (re-hashed, so a byte changed on disk is CORRUPTION, never
 * served or applied).
 *
 * @module
 */

/**
 * One event as read back from `log` (schema 4), with its origin and document resolved from
 * their dictionaries: null there means the row names an id no dictionary holds (damaged).
 * Read as an array (better-sqlite3's raw mode, columns in {@link EVENT_COLUMNS} order): an
 * object per row cost about a third of the read.
 */
export type EventRow = readonly [
  lsn: number,
  origin: string | null,
  seq: number,
  /** The encoded HLC, rebuilt from its stored integers by SQLite. */
  hlc: string,
  /** The document's id in `doc_ids`. */
  docRef: number,
  docId: string | null,
  /** Hex of the stored change (see EVENT_COLUMNS); {@link rowToEvent} makes it bytes. */
  change: string,
  /** Hex of the stored hash blob (64 characters when it is 32 bytes). */
  prev: string,
  hash: string,
  sig: Buffer | null,
]

/** Where each field sits in an {@link EventRow}. */
export const ROW = {
  lsn: 0,
  origin: 1,
  seq: 2,
  hlc: 3,
  docRef: 4,
  docId: 5,
  change: 6,
  prev: 7,
  hash: 8,
  sig: 9,
} as const

/** An origin's chain head (or compaction base): seq, hash and HLC of that event. */
export interface Head {
  seq: number
  hash: string
  hlc: string
}

/** Every read of whole events goes through this: the row plus its origin and document text. */
// Hashes, HLCs and even the change leave SQLite as text: hex() and printf() in C cost less than
// a Buffer per hash and string building per HLC in JS, and a blob column becomes a Buffer with
// its own backing store in better-sqlite3 (~1.3 us a row), where Buffer.from(hex) takes a slice
// of Node's pool (~0.4): a read of a row went 3.5 -> 2.6 us.
// The order is the one of EventRow.
const EVENT_COLUMNS = `l.lsn, o.origin, l.seq, ${storedHlcSql(STORED_HLC)} as hlc, l.doc as doc_ref, d.doc_id, hex(l.change),
    lower(hex(l.prev)) as prev, lower(hex(l.hash)) as hash, l.sig`
const NAMES = 'left join origin_ids o on o.id = l.origin_id left join doc_ids d on d.id = l.doc'
const EVENT_SELECT = `select ${EVENT_COLUMNS} from log l ${NAMES}`
/**
 * Rows a compaction has yet to delete (its base already raised): a seek per compacted origin.
 * CROSS JOIN keeps that order: left to itself, SQLite's planner walked the whole log first.
 */
export const BELOW_BASE_COUNT =
  'select count(*) from log_base b cross join origin_ids o on o.origin = b.origin cross join log l on l.origin_id = o.id and l.seq <= b.seq'

/** An origin's integer id, looked up once per statement run. */
const ORIGIN_ID = '(select id from origin_ids where origin = ?)'

/** The statements of the event log, prepared once per connection. */
export interface LogStatements {
  readonly topRows: Database.Statement
  readonly foldedAt: Database.Statement
  readonly anyFolded: Database.Statement
  readonly allBase: Database.Statement
  readonly upsertBase: Database.Statement
  readonly prefix: Database.Statement
  readonly deleteLsn: Database.Statement
  readonly anySigned: Database.Statement
  readonly lastSignedAtOrBelow: Database.Statement
  readonly getEvent: Database.Statement
  readonly storedHash: Database.Statement
  readonly range: Database.Statement
  readonly docRange: Database.Statement
  readonly byLsn: Database.Statement
  readonly docId: Database.Statement
  readonly lastLsn: Database.Statement
  readonly count: Database.Statement
  readonly belowBase: Database.Statement
  readonly getPeer: Database.Statement
  readonly allPeers: Database.Statement
  readonly upsertPeerAck: Database.Statement
  readonly upsertPeer: Database.Statement
}

/** What deriving the chain heads at open reads (chain-heads.ts; also the 4 → 5 migration's check). */
export type HeadStatements = Pick<LogStatements, 'topRows' | 'allBase' | 'foldedAt' | 'anyFolded'>

export function prepareHeadStatements(db: Database.Database): HeadStatements {
  return {
    // Each origin's last stored event: its chain head unless compacted away. The origins are
    // walked in the (origin_id, seq) index itself, not in origin_ids, so rows whose dictionary
    // entry is gone are found too (a new origin would otherwise take their id); two seeks per origin.
    topRows: db
      .prepare(
        `with recursive ids(id) as (select min(origin_id) from log
           union all select (select min(origin_id) from log where origin_id > ids.id) from ids where ids.id is not null)
         ${EVENT_SELECT} where l.lsn in (select (select lsn from log where origin_id = ids.id order by seq desc limit 1) from ids)`,
      )
      .raw(),
    allBase: db.prepare('select origin, seq, hash, hlc from log_base'),
    foldedAt: db.prepare('select 1 from folded where origin = ? and seq = ?').pluck(),
    anyFolded: db.prepare('select 1 from folded where origin = ? limit 1').pluck(),
  }
}

export function prepareLogStatements(db: Database.Database): LogStatements {
  return {
    ...prepareHeadStatements(db),
    upsertBase: db.prepare(
      'insert into log_base (origin, seq, hash, hlc) values (?, ?, ?, ?) on conflict(origin) do update set seq = excluded.seq, hash = excluded.hash, hlc = excluded.hlc',
    ),
    prefix: db.prepare(`${EVENT_SELECT} where l.origin_id = ${ORIGIN_ID} and l.seq <= ? order by l.seq limit ?`).raw(),
    deleteLsn: db.prepare('delete from log where lsn = ?'),
    anySigned: db.prepare(`select 1 from log where origin_id = ${ORIGIN_ID} and sig is not null limit 1`).pluck(),
    lastSignedAtOrBelow: db
      .prepare(`select max(seq) from log where origin_id = ${ORIGIN_ID} and seq <= ? and seq > ? and sig is not null`)
      .pluck(),
    getEvent: db.prepare(`${EVENT_SELECT} where l.origin_id = ${ORIGIN_ID} and l.seq = ?`).raw(),
    storedHash: db.prepare(`select hash from log where origin_id = ${ORIGIN_ID} and seq = ?`).pluck(),
    range: db
      .prepare(`${EVENT_SELECT} where l.origin_id = ${ORIGIN_ID} and l.seq >= ? and l.seq <= ? order by l.seq limit ?`)
      .raw(),
    // The indexed part of a document's events (see doc-index.ts); the in-memory tail reads byLsn.
    docRange: db
      .prepare(
        `select ${EVENT_COLUMNS} from doc_events x join log l on l.lsn = x.lsn ${NAMES} where x.doc = ? and x.lsn > ? order by x.lsn limit ?`,
      )
      .raw(),
    byLsn: db.prepare(`${EVENT_SELECT} where l.lsn = ?`).raw(),
    docId: db.prepare('select id from doc_ids where doc_id = ?').pluck(),
    lastLsn: db.prepare('select max(lsn) as lsn from log'),
    count: db.prepare('select count(*) from log').pluck(),
    belowBase: db.prepare(BELOW_BASE_COUNT).pluck(),
    getPeer: db.prepare('select peer_id, url, acked_vv, last_seen, state from peers where peer_id = ?'),
    allPeers: db.prepare('select peer_id, url, acked_vv, last_seen, state from peers order by peer_id'),
    upsertPeerAck: db.prepare(
      'insert into peers (peer_id, acked_vv, last_seen) values (?, ?, ?) on conflict(peer_id) do update set acked_vv = excluded.acked_vv, last_seen = excluded.last_seen',
    ),
    upsertPeer: db.prepare(
      `insert into peers (peer_id, url, state, last_seen) values (?, ?, ?, ?) on conflict(peer_id) do update set
         url = coalesce(excluded.url, url), state = coalesce(excluded.state, state), last_seen = coalesce(excluded.last_seen, last_seen)`,
    ),
  }
}

/** Reads for state derived from the log (documents), prepared on first use. */
export interface DerivedReads {
  readonly docsAfter: Database.Statement
  readonly docSeqs: Database.Statement
  readonly seqAt: Database.Statement
  readonly originId: Database.Statement
  readonly countFolded: Database.Statement
  readonly uncountable: Database.Statement
}

export function prepareDerivedReads(db: Database.Database): DerivedReads {
  return {
    docsAfter: db.prepare(
      'select l.lsn, d.doc_id from log l left join doc_ids d on d.id = l.doc where l.lsn > ? and l.lsn <= ? order by l.lsn limit ?',
    ),
    // The indexed part of a document's events (see doc-index.ts); the tail reads seqAt.
    docSeqs: db.prepare(
      'select o.origin, l.seq from doc_events x join log l on l.lsn = x.lsn left join origin_ids o on o.id = l.origin_id where x.doc = ? and x.lsn > ?',
    ),
    seqAt: db.prepare('select o.origin, l.seq from log l left join origin_ids o on o.id = l.origin_id where l.lsn = ?'),
    originId: db.prepare('select id from origin_ids where origin = ?').pluck(),
    countFolded: db.prepare('select count(*) from folded where doc_id = ? and origin = ?').pluck(),
    // Compacted by a release that kept no envelopes: the folded events cannot be counted.
    // While a compaction runs, the rows below its raised base not yet deleted count as held.
    uncountable: db
      .prepare(
        `select 1 from log_base b where b.origin = ? and b.seq > (select count(*) from folded f where f.origin = b.origin)
           + (select count(*) from log l where l.origin_id = (select id from origin_ids where origin = b.origin) and l.seq <= b.seq)`,
      )
      .pluck(),
  }
}

export interface RawPeer {
  peer_id: string
  url: string | null
  acked_vv: string
  last_seen: number | null
  state: string | null
}

export function toPeer(row: RawPeer): PeerRecord {
  return {
    peerId: row.peer_id,
    url: row.url,
    ackedVv: JSON.parse(row.acked_vv) as VersionVector,
    lastSeen: row.last_seen,
    state: row.state,
  }
}

/** Rebuilds an event from its row, re-hashing it: CORRUPTION if anything changed on disk. */
export function rowToEvent(row: EventRow): DruEvent {
  const [lsn, origin, seq, hlc, , docId, changeHex, prevHex, hashHex, sig] = row
  let e: DruEvent | undefined
  // hex() gives text for a change of any type, so a non-blob change fails its hash below.
  if (origin !== null && docId !== null && hashHex.length === 64 && prevHex.length === 64) {
    const change = Buffer.from(changeHex, 'hex')
    // Two literal shapes rather than a spread: this runs for every event read.
    e = sig
      ? { origin: origin as Origin, seq, hlc, docId, change, prev: prevHex, hash: hashHex, sig }
      : { origin: origin as Origin, seq, hlc, docId, change, prev: prevHex, hash: hashHex }
  }
  let ok = false
  try {
    ok = e !== undefined && eventHashMatches(e)
  } catch {
    ok = false
  }
  if (!ok || e === undefined) {
    throw new DruError(
      'CORRUPTION',
      `stored event ${origin ?? 'an unknown origin'}#${seq} (position ${lsn}) does not match its hash: the database file was altered`,
      {
        details: { origin, seq, lsn },
      },
    )
  }
  return e
}
