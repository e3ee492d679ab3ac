import type Database from 'better-sqlite3'
import { DruError } from '@dru/core'

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
]

export const SCHEMA_VERSION = MIGRATIONS.length

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
