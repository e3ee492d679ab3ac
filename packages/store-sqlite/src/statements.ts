import Database from 'better-sqlite3'
import { DruError, eventHashMatches, type DruEvent, type Origin, type PeerRecord, type VersionVector } from '@dru/core'
import { decodeRunBody, decodeRunEvent, type StoredEvent } from './run-body.js'

/**
 * The log's SQL in one place: its prepared statements, the shape of its rows, and the way
 * back from a stored run to its events (re-hashed, so a byte changed on disk is CORRUPTION,
 * never served or applied).
 *
 * @module
 */

/**
 * One run of `runs` (schema 6, see run-body.ts) with its origin resolved from its dictionary
 * (null: the row names an id no dictionary holds, a damaged row). Read as an array
 * (better-sqlite3's raw mode, columns in {@link RUN_COLUMNS} order): an object per row cost
 * about a third of the read.
 */
export type RunRow = readonly [
  lsn: number,
  origin: string | null,
  seq: number,
  n: number,
  /** Hex of the first event's prev (64 characters when it is 32 bytes). */
  prev: string,
  body: Buffer,
  originId: number,
  /** Hex of the run's hashes, 64 characters an event. */
  hashes: string,
  receivedAt: number,
]

/** Where each field sits in a {@link RunRow}. */
export const RUN = { lsn: 0, origin: 1, seq: 2, n: 3, prev: 4, body: 5, originId: 6, hashes: 7, receivedAt: 8 } as const

/** An origin's chain head (or compaction base): seq, hash and HLC of that event. */
export interface Head {
  seq: number
  hash: string
  hlc: string
}

/** Each origin's last stored event, as deriving the chain heads at open reads it. */
export interface LastEvent {
  readonly lsn: number
  /** null: the row names an origin id no dictionary holds. */
  readonly origin: string | null
  readonly seq: number
  readonly hash: string
  readonly hlc: string
}

// The prev leaves SQLite as hex text (hex() in C costs less than a Buffer per hash in JS).
const RUN_COLUMNS =
  'r.lsn, o.origin, r.seq, r.n, lower(hex(r.prev)), r.body, r.origin_id, lower(hex(r.hashes)), r.received_at'
const RUN_SELECT = `select ${RUN_COLUMNS} from runs r left join origin_ids o on o.id = r.origin_id`
/** An origin's integer id, looked up once per statement run. */
const ORIGIN_ID = '(select id from origin_ids where origin = ?)'
/**
 * Events a compaction has yet to delete (its base already raised): a seek per compacted
 * origin, the part of each run at or below the base. CROSS JOIN keeps that order: left to
 * itself, SQLite's planner walked the whole log first.
 */
export const BELOW_BASE_COUNT = `select coalesce(sum(min(r.n, b.seq - r.seq + 1)), 0) from log_base b
  cross join origin_ids o on o.origin = b.origin cross join runs r on r.origin_id = o.id and r.seq <= b.seq`

/** The statements of the event log, prepared once per connection. */
export interface LogStatements extends HeadStatements {
  readonly upsertBase: Database.Statement
  readonly prefix: Database.Statement
  readonly deleteRun: Database.Statement
  readonly insertRun: Database.Statement
  readonly deleteSigsTo: Database.Statement
  readonly anySigned: Database.Statement
  readonly lastSignedAtOrBelow: Database.Statement
  readonly sigAt: Database.Statement
  readonly sigsIn: Database.Statement
  readonly putSig: Database.Statement
  readonly runAtSeq: Database.Statement
  readonly runsFrom: Database.Statement
  readonly docRange: Database.Statement
  readonly runAtLsn: Database.Statement
  readonly docId: Database.Statement
  readonly lastLsn: Database.Statement
  readonly count: Database.Statement
  readonly belowBase: Database.Statement
  readonly getPeer: Database.Statement
  readonly allPeers: Database.Statement
  readonly upsertPeerAck: Database.Statement
  readonly upsertPeer: Database.Statement
}

/** What deriving the chain heads at open reads (chain-heads.ts). */
export interface HeadStatements {
  /** Each origin's last stored event. */
  lastEvents(): LastEvent[]
  readonly allBase: Database.Statement
  readonly foldedAt: Database.Statement
  readonly anyFolded: Database.Statement
}

export function prepareHeadStatements(db: Database.Database): HeadStatements {
  // Each origin's last run. The origins are walked in the (origin_id, seq) index itself, not
  // in origin_ids, so runs whose dictionary entry is gone are found too (a new origin would
  // otherwise take their id); two seeks per origin.
  const lastRuns = db
    .prepare(
      `with recursive ids(id) as (select min(origin_id) from runs
         union all select (select min(origin_id) from runs where origin_id > ids.id) from ids where ids.id is not null)
       ${RUN_SELECT} where r.lsn in (select (select lsn from runs where origin_id = ids.id order by seq desc limit 1) from ids)`,
    )
    .raw()
  return {
    lastEvents: () => (lastRuns.all() as RunRow[]).map(lastEventOf),
    allBase: db.prepare('select origin, seq, hash, hlc from log_base'),
    foldedAt: db.prepare('select 1 from folded where origin = ? and seq = ?').pluck(),
    anyFolded: db.prepare('select 1 from folded where origin = ? limit 1').pluck(),
  }
}

/** The last event of a run as a head candidate; a body that does not decode gives a hash no head can have. */
function lastEventOf(run: RunRow): LastEvent {
  const lsn = run[RUN.lsn] + run[RUN.n] - 1
  const seq = run[RUN.seq] + run[RUN.n] - 1
  // A seq or count that is not a whole number (a hand edit) is no head: the open refuses it.
  if (![run[RUN.seq], run[RUN.n], run[RUN.lsn]].every((v) => Number.isSafeInteger(v) && v >= 1))
    return { lsn, origin: run[RUN.origin], seq, hash: '', hlc: '' }
  try {
    const events = eventsOfRun(run)
    const last = events[events.length - 1]!
    return { lsn, origin: run[RUN.origin], seq, hash: last.damaged ? '' : last.hash, hlc: last.hlc }
  } catch {
    return { lsn, origin: run[RUN.origin], seq, hash: '', hlc: '' }
  }
}

export function prepareLogStatements(db: Database.Database): LogStatements {
  return {
    ...prepareHeadStatements(db),
    upsertBase: db.prepare(
      'insert into log_base (origin, seq, hash, hlc) values (?, ?, ?, ?) on conflict(origin) do update set seq = excluded.seq, hash = excluded.hash, hlc = excluded.hlc',
    ),
    // Runs holding events of an origin at or below a seq, oldest first.
    prefix: db.prepare(`${RUN_SELECT} where r.origin_id = ${ORIGIN_ID} and r.seq <= ? order by r.seq limit ?`).raw(),
    deleteRun: db.prepare('delete from runs where lsn = ?'),
    insertRun: db.prepare(
      'insert into runs (lsn, origin_id, seq, n, prev, body, hashes, received_at) values (?, ?, ?, ?, unhex(?), ?, ?, ?)',
    ),
    deleteSigsTo: db.prepare('delete from sigs where origin_id = ? and seq <= ?'),
    anySigned: db.prepare(`select 1 from sigs where origin_id = ${ORIGIN_ID} limit 1`).pluck(),
    lastSignedAtOrBelow: db
      .prepare(`select max(seq) from sigs where origin_id = ${ORIGIN_ID} and seq <= ? and seq > ?`)
      .pluck(),
    sigAt: db.prepare('select sig from sigs where origin_id = ? and seq = ?').pluck(),
    sigsIn: db.prepare('select seq, sig from sigs where origin_id = ? and seq >= ? and seq < ?').raw(),
    putSig: db.prepare('insert or replace into sigs (origin_id, seq, sig) values (?, ?, ?)'),
    // The run holding (origin, seq): the last one starting at or before it.
    runAtSeq: db
      .prepare(`${RUN_SELECT} where r.origin_id = ${ORIGIN_ID} and r.seq <= ? order by r.seq desc limit 1`)
      .raw(),
    // Runs of an origin holding seqs from one to another: from the run holding the first on
    // (the origin and the first seq are bound twice).
    runsFrom: db
      .prepare(
        `${RUN_SELECT} where r.origin_id = ${ORIGIN_ID}
           and r.seq >= coalesce((select max(seq) from runs where origin_id = ${ORIGIN_ID} and seq <= ?), ?)
           and r.seq <= ? order by r.seq limit ?`,
      )
      .raw(),
    // The indexed part of a document's events (see doc-index.ts), each with the run holding it;
    // the in-memory tail reads runAtLsn.
    docRange: db
      .prepare(
        `select x.lsn, ${RUN_COLUMNS} from doc_events x join runs r on r.lsn = (select max(lsn) from runs where lsn <= x.lsn)
           left join origin_ids o on o.id = r.origin_id where x.doc = ? and x.lsn > ? order by x.lsn limit ?`,
      )
      .raw(),
    runAtLsn: db.prepare(`${RUN_SELECT} where r.lsn <= ? order by r.lsn desc limit 1`).raw(),
    docId: db.prepare('select id from doc_ids where doc_id = ?').pluck(),
    lastLsn: db.prepare('select max(lsn + n - 1) as lsn from (select lsn, n from runs order by lsn desc limit 1)'),
    count: db.prepare('select coalesce(sum(n), 0) from runs').pluck(),
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
  readonly runsAfter: Database.Statement
  readonly originId: Database.Statement
  readonly countFolded: Database.Statement
  readonly uncountable: Database.Statement
}

export function prepareDerivedReads(db: Database.Database): DerivedReads {
  return {
    // Runs holding positions after one up to another, from the run holding the next on (the first bound twice).
    runsAfter: db
      .prepare(
        'select lsn, n, body from runs where lsn >= coalesce((select max(lsn) from runs where lsn <= ? + 1), 0) and lsn <= ? order by lsn limit ?',
      )
      .raw(),
    originId: db.prepare('select id from origin_ids where origin = ?').pluck(),
    countFolded: db.prepare('select count(*) from folded where doc_id = ? and origin = ?').pluck(),
    // Compacted by a release that kept no envelopes: the folded events cannot be counted.
    // While a compaction runs, the events below its raised base not yet deleted count as held.
    uncountable: db
      .prepare(
        `select 1 from log_base b where b.origin = ? and b.seq > (select count(*) from folded f where f.origin = b.origin)
           + (select coalesce(sum(min(r.n, b.seq - r.seq + 1)), 0) from runs r
                where r.origin_id = (select id from origin_ids where origin = b.origin) and r.seq <= b.seq)`,
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

/**
 * The events of a run, decoded but not checked (see {@link toEvent}); CORRUPTION when the body
 * is not the run's events.
 */
export function eventsOfRun(run: RunRow): StoredEvent[] {
  return decoded(run, (row) => decodeRunBody(...row))
}

/** One event of a run (index `i`), decoded but not checked; CORRUPTION like {@link eventsOfRun}. */
export function eventOfRun(run: RunRow, i: number): StoredEvent {
  return decoded(run, ([body, hashes, n, ...rest]) => decodeRunEvent(body, hashes, n, i, ...rest))
}

/** Runs a decoder over a run's stored parts, its failure turned into CORRUPTION naming the run's events. */
function decoded<T>(
  run: RunRow,
  decode: (parts: [Uint8Array, string, number, number, number, string, string]) => T,
): T {
  try {
    return decode([
      run[RUN.body],
      run[RUN.hashes],
      run[RUN.n],
      run[RUN.lsn],
      run[RUN.seq],
      run[RUN.prev],
      run[RUN.origin] ?? '',
    ])
  } catch (cause) {
    throw runDamaged(run, cause)
  }
}

/** CORRUPTION naming every event of a run whose stored parts do not decode. */
function runDamaged(run: RunRow, cause: unknown): DruError {
  const origin = run[RUN.origin] ?? 'an unknown origin'
  const [seq, n, lsn] = [run[RUN.seq], run[RUN.n], run[RUN.lsn]]
  const events =
    n === 1
      ? `event ${origin}#${seq} (position ${lsn})`
      : `events ${origin}#${seq}–#${seq + n - 1} (positions ${lsn}–${lsn + n - 1})`
  return new DruError('CORRUPTION', `stored ${events}: their run does not decode: the database file was altered`, {
    cause,
    details: { origin: run[RUN.origin], seq, lsn },
  })
}

/** Rebuilds an event from its stored form, re-hashing it: CORRUPTION if anything changed on disk. */
export function toEvent(
  origin: string | null,
  s: StoredEvent,
  docId: string | null,
  sig: Uint8Array | null | undefined,
): DruEvent {
  let e: DruEvent | undefined
  if (origin !== null && docId !== null && !s.damaged && s.prev.length === 64) {
    // Two literal shapes rather than a spread: this runs for every event read.
    e = sig
      ? { origin: origin as Origin, seq: s.seq, hlc: s.hlc, docId, change: s.change, prev: s.prev, hash: s.hash, sig }
      : { origin: origin as Origin, seq: s.seq, hlc: s.hlc, docId, change: s.change, prev: s.prev, hash: s.hash }
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
      `stored event ${origin ?? 'an unknown origin'}#${s.seq} (position ${s.lsn}) does not match its hash: the database file was altered`,
      { details: { origin, seq: s.seq, lsn: s.lsn } },
    )
  }
  return e
}
