import type Database from 'better-sqlite3'
import { DruError } from '@dru/core'
import { ChainHeads } from './chain-heads.js'
import { toRuns } from './runs-migration.js'
import type { HeadStatements, LastEvent } from './statements.js'
import { Dictionary, STORED_HLC, encodeStoredHash, encodeStoredHlc, storedHlcSql } from './stored-form.js'

/**
 * Ordered schema steps. Step i brings the schema from version i to i + 1. Each step runs
 * in the same transaction as the version bump, so a crash never leaves a half-migrated
 * database. Later packages (documents, sync) add their tables here, never ad hoc.
 */
export const MIGRATIONS: ReadonlyArray<(db: Database.Database) => void> = [
  (db) => {
    db.exec(`
      create table events (
        lsn integer primary key,          -- local arrival order; snapshots and live push use it
        origin text not null,
        seq integer not null,
        hlc text not null,
        doc_id text not null,
        change blob not null,
        prev text not null,
        hash text not null,
        sig blob,
        received_at integer not null,
        applied_at integer
      );
      create unique index events_origin_seq on events(origin, seq);
      create index events_doc on events(doc_id, lsn);
      -- per origin: the highest contiguous seq held and its chain head (the fingerprint)
      create table origins (
        origin text primary key,
        seq integer not null,
        hash text not null,
        hlc text not null
      ) without rowid;
      create table peers (
        peer_id text primary key,
        url text,
        acked_vv text not null default '{}',
        last_seen integer,
        state text
      ) without rowid;
    `)
  },
  (db) => {
    // Per origin, the highest seq folded into document snapshots by compaction (and no
    // longer necessarily stored as an event), with that event's hash and HLC, so the
    // chain still links and the log can say exactly what it cannot stream any more.
    db.exec(`
      create table log_base (
        origin text primary key,
        seq integer not null,
        hash text not null,
        hlc text not null
      ) without rowid;
    `)
  },
  (db) => {
    // Compaction keeps each folded event's envelope (everything but the change bytes, which
    // the document snapshots carry) so a bootstrap can prove what it delivers; a bootstrap in
    // progress stages the snapshots' change bytes by hash to rebuild those events.
    db.exec(`
      create table folded (
        origin text not null,
        seq integer not null,
        hlc text not null,
        doc_id text not null,
        change_hash blob not null,
        sig blob,
        primary key (origin, seq)
      ) without rowid;
      create table bootstrap_stage (
        change_hash blob primary key,
        doc_id text not null,
        change blob not null
      ) without rowid;
    `)
  },
  (db) => toBinaryLayout(db),
  (db) => headsFromLog(db),
  (db) => toRuns(db, MIGRATION_PAGE),
]

export const SCHEMA_VERSION = MIGRATIONS.length

/** A row of schema 3's `events` table, as the migration to schema 4 reads it. */
export interface SchemaV3EventRow {
  lsn: number
  origin: string
  seq: number
  hlc: string
  doc_id: string
  change: Buffer
  prev: string
  hash: string
  sig: Buffer | null
  received_at: number
  applied_at: number | null
}

/** Rows copied per page by the layout steps, so memory stays bounded whatever the log's size. */
const MIGRATION_PAGE = 4096

/**
 * Schema 3 to 4, the storage layout of issue 13's first step: each event's row in `log` holds
 * binary 32-byte hashes, integer ids of its origin and document (dictionaries `origin_ids`,
 * `doc_ids`), its HLC as integers (the node only when it is not the origin), and the
 * document index is `doc_events (doc, lsn)`, built in bulk (doc-index.ts). Rows are copied unchanged in meaning (see
 * stored-form.ts: a damaged row stays damaged, never repaired); positions (lsn) are kept.
 * `events` becomes a read-only view of the same columns as before, for operators' SQL.
 * Heads, compaction base and folded envelopes keep their layout (one row per origin, or
 * cold evidence).
 */
function toBinaryLayout(db: Database.Database): void {
  db.exec(`
    create table origin_ids (
      id integer primary key,
      origin text not null unique
    );
    create table doc_ids (
      id integer primary key,
      doc_id text not null unique
    );
    create table log (
      lsn integer primary key,            -- local arrival order; snapshots and live push use it
      origin_id integer not null,         -- origin_ids.id
      seq integer not null,
      doc integer not null,               -- doc_ids.id
      hlc_wall integer not null,          -- HLC milliseconds (-1: hlc_node holds unparsable text verbatim)
      hlc_counter integer not null,
      hlc_node text,                      -- null: the HLC's node is the event's origin
      change blob not null,
      prev blob not null,                 -- 32 bytes
      hash blob not null,                 -- 32 bytes
      sig blob,
      received_at integer not null,
      applied_at integer
    );
  `)
  const page = db.prepare(
    'select lsn, origin, seq, hlc, doc_id, change, prev, hash, sig, received_at, applied_at from events where lsn > ? order by lsn limit ?',
  )
  const insert = db.prepare(
    'insert into log (lsn, origin_id, seq, doc, hlc_wall, hlc_counter, hlc_node, change, prev, hash, sig, received_at, applied_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
  )
  const origins = new Dictionary(db, 'origin_ids', 'origin')
  const docs = new Dictionary(db, 'doc_ids', 'doc_id')
  let after = 0
  for (;;) {
    const rows = page.all(after, MIGRATION_PAGE) as SchemaV3EventRow[]
    for (const r of rows) {
      const hlc = encodeStoredHlc(String(r.hlc), String(r.origin))
      insert.run(
        r.lsn,
        origins.idOf(String(r.origin)),
        r.seq,
        docs.idOf(String(r.doc_id)),
        hlc.wall,
        hlc.counter,
        hlc.node,
        r.change,
        encodeStoredHash(String(r.prev)),
        encodeStoredHash(String(r.hash)),
        r.sig,
        r.received_at,
        r.applied_at,
      )
    }
    if (rows.length < MIGRATION_PAGE) break
    after = rows[rows.length - 1]!.lsn
  }
  // Indexes built once over the copied rows, not updated row by row.
  db.exec(`
    drop table events;
    create unique index log_origin_seq on log(origin_id, seq);
    -- Each document's events, maintained in bulk rather than per event (see doc-index.ts).
    create table doc_events (
      doc integer not null,
      lsn integer not null,
      origin_id integer not null,
      primary key (doc, lsn)
    ) without rowid;
    insert into doc_events (doc, lsn, origin_id) select doc, lsn, origin_id from log order by doc, lsn;
    insert or replace into meta (key, value) select 'doc_index_lsn', coalesce(max(lsn), 0) from log;
    create view events as
      select l.lsn, o.origin, l.seq,
        ${storedHlcSql(STORED_HLC)} as hlc,
        d.doc_id, l.change, lower(hex(l.prev)) as prev, lower(hex(l.hash)) as hash, l.sig, l.received_at, l.applied_at
      from log l left join origin_ids o on o.id = l.origin_id left join doc_ids d on d.id = l.doc;
  `)
}

/**
 * Schema 4 to 5: chain heads are no longer stored apart. Each origin's head was a row in
 * `origins`, upserted by every commit in the same transaction as the log rows — a third page
 * written per one-event commit, a quarter of its cost. The head is now read at open from the
 * origin's last event in the log (or its compaction base when nothing is left above it), so
 * the table goes. A database whose table disagrees with its log was not written by dru's
 * transactions; it is refused (CORRUPTION) rather than opened with either answer.
 */
function headsFromLog(db: Database.Database): void {
  const stored = db.prepare('select origin, seq, hash from origins').all() as Array<{
    origin: string
    seq: number
    hash: string
  }>
  // Derived as every open derived them in schema 5 (chain-heads.ts), its own refusals included.
  const derived = new ChainHeads()
  derived.load(schema5HeadStatements(db))
  const disagree = (origin: string): never => {
    throw new DruError(
      'CORRUPTION',
      `the stored chain head of ${origin} disagrees with the log's last event of that origin: the database file was altered`,
      { details: { origin } },
    )
  }
  for (const h of stored) {
    const d = derived.heads.get(h.origin)
    if (d === undefined || d.seq !== h.seq || d.hash !== h.hash) disagree(h.origin)
  }
  if (derived.heads.size !== stored.length) {
    const known = new Set(stored.map((h) => h.origin))
    disagree([...derived.heads.keys()].find((o) => !known.has(o))!)
  }
  db.exec('drop table origins')
}

/**
 * Brings one schema track up to date. The log's own track is `schema_version`; another
 * package (documents, sync) keeps its tables on a track of its own (`schema_version:<name>`)
 * so packages never edit each other's step lists. Refuses a track newer than this build.
 */
export function migrate(
  db: Database.Database,
  steps: ReadonlyArray<(db: Database.Database) => void> = MIGRATIONS,
  track = 'schema_version',
): void {
  db.exec('create table if not exists meta (key text primary key, value) without rowid')
  const row = db.prepare('select value from meta where key = ?').get(track) as { value: number } | undefined
  const current = row?.value ?? 0
  if (current > steps.length) {
    throw new DruError(
      'SCHEMA_TOO_NEW',
      `database ${track} ${current} is newer than this build understands (${steps.length}); upgrade dru`,
    )
  }
  for (let v = current; v < steps.length; v++) {
    db.transaction(() => {
      steps[v]!(db)
      db.prepare(
        'insert into meta (key, value) values (?, ?) on conflict(key) do update set value = excluded.value',
      ).run(track, v + 1)
    }).immediate()
  }
}

/** What deriving the chain heads read in schema 5, from `log`'s rows (the 4 → 5 step's check). */
function schema5HeadStatements(db: Database.Database): HeadStatements {
  const topRows = db.prepare(
    `with recursive ids(id) as (select min(origin_id) from log
       union all select (select min(origin_id) from log where origin_id > ids.id) from ids where ids.id is not null)
     select l.lsn, o.origin, l.seq, lower(hex(l.hash)) as hash, ${storedHlcSql(STORED_HLC)} as hlc
       from log l left join origin_ids o on o.id = l.origin_id
       where l.lsn in (select (select lsn from log where origin_id = ids.id order by seq desc limit 1) from ids)`,
  )
  return {
    lastEvents: () => topRows.all() as LastEvent[],
    allBase: db.prepare('select origin, seq, hash, hlc from log_base'),
    foldedAt: db.prepare('select 1 from folded where origin = ? and seq = ?').pluck(),
    anyFolded: db.prepare('select 1 from folded where origin = ? limit 1').pluck(),
  }
}
