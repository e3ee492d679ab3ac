import Database from 'better-sqlite3'
import { DruError, eventHashMatches, type DruEvent, type Origin, type PeerRecord, type VersionVector } from '@dru/core'

/**
 * The log's SQL in one place: its prepared statements, the shape of its rows, and the way
 * back from a row to an event (re-hashed, so a byte changed on disk is CORRUPTION, never
 * served or applied).
 *
 * @module
 */

/** One row of `events`. */
export interface EventRow {
  lsn: number
  origin: string
  seq: number
  hlc: string
  doc_id: string
  change: Buffer
  prev: string
  hash: string
  sig: Buffer | null
}

/** An origin's chain head (or compaction base): seq, hash and HLC of that event. */
export interface Head {
  seq: number
  hash: string
  hlc: string
}

export const EVENT_COLUMNS = 'lsn, origin, seq, hlc, doc_id, change, prev, hash, sig'

/** The statements of the event log, prepared once per connection. */
export interface LogStatements {
  readonly insert: Database.Statement
  readonly upsertHead: Database.Statement
  readonly allHeads: Database.Statement
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
  readonly lastLsn: Database.Statement
  readonly count: Database.Statement
  readonly getPeer: Database.Statement
  readonly allPeers: Database.Statement
  readonly upsertPeerAck: Database.Statement
  readonly upsertPeer: Database.Statement
}

export function prepareLogStatements(db: Database.Database): LogStatements {
  return {
    insert: db.prepare(
      'insert into events (lsn, origin, seq, hlc, doc_id, change, prev, hash, sig, received_at, applied_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    upsertHead: db.prepare(
      'insert into origins (origin, seq, hash, hlc) values (?, ?, ?, ?) on conflict(origin) do update set seq = excluded.seq, hash = excluded.hash, hlc = excluded.hlc',
    ),
    allHeads: db.prepare('select origin, seq, hash, hlc from origins'),
    allBase: db.prepare('select origin, seq, hash, hlc from log_base'),
    upsertBase: db.prepare(
      'insert into log_base (origin, seq, hash, hlc) values (?, ?, ?, ?) on conflict(origin) do update set seq = excluded.seq, hash = excluded.hash, hlc = excluded.hlc',
    ),
    prefix: db.prepare(`select ${EVENT_COLUMNS} from events where origin = ? and seq <= ? order by seq limit ?`),
    deleteLsn: db.prepare('delete from events where lsn = ?'),
    anySigned: db.prepare('select 1 from events where origin = ? and sig is not null limit 1').pluck(),
    lastSignedAtOrBelow: db
      .prepare('select max(seq) from events where origin = ? and seq <= ? and seq > ? and sig is not null')
      .pluck(),
    getEvent: db.prepare(`select ${EVENT_COLUMNS} from events where origin = ? and seq = ?`),
    storedHash: db.prepare('select hash from events where origin = ? and seq = ?').pluck(),
    range: db.prepare(
      `select ${EVENT_COLUMNS} from events where origin = ? and seq >= ? and seq <= ? order by seq limit ?`,
    ),
    docRange: db.prepare(`select ${EVENT_COLUMNS} from events where doc_id = ? and lsn > ? order by lsn limit ?`),
    lastLsn: db.prepare('select max(lsn) as lsn from events'),
    count: db.prepare('select count(*) as n from events'),
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
  readonly docIds: Database.Statement
  readonly docsAfter: Database.Statement
  readonly docSeqs: Database.Statement
  readonly countStored: Database.Statement
  readonly countFolded: Database.Statement
  readonly uncountable: Database.Statement
}

export function prepareDerivedReads(db: Database.Database): DerivedReads {
  return {
    docIds: db.prepare('select distinct doc_id from events where doc_id > ? order by doc_id limit ?').pluck(),
    docsAfter: db.prepare('select lsn, doc_id from events where lsn > ? and lsn <= ? order by lsn limit ?'),
    docSeqs: db.prepare('select origin, seq from events where doc_id = ? and lsn > ?'),
    countStored: db.prepare('select count(*) from events where doc_id = ? and origin = ?').pluck(),
    countFolded: db.prepare('select count(*) from folded where doc_id = ? and origin = ?').pluck(),
    // Compacted by a release that kept no envelopes: the folded events cannot be counted.
    uncountable: db
      .prepare(
        'select 1 from log_base b where b.origin = ? and b.seq > (select count(*) from folded f where f.origin = b.origin)',
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
  const e: DruEvent = {
    origin: row.origin as Origin,
    seq: row.seq,
    hlc: row.hlc,
    docId: row.doc_id,
    change: row.change,
    prev: row.prev,
    hash: row.hash,
    ...(row.sig ? { sig: row.sig } : {}),
  }
  let ok = false
  try {
    ok = eventHashMatches(e)
  } catch {
    ok = false
  }
  if (!ok) {
    throw new DruError(
      'CORRUPTION',
      `stored event ${row.origin}#${row.seq} does not match its hash: the database file was altered`,
      {
        details: { origin: row.origin, seq: row.seq },
      },
    )
  }
  return e
}
