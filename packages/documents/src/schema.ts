import type { EventStore } from '@dru/store-sqlite'

type Db = EventStore['db']

/**
 * The documents package's own schema track (`schema_version:documents`). `docs` holds
 * snapshots: derived from the log (rebuildable by replay) until compaction deletes events
 * below the log's base, after which a snapshot is the only copy of those changes.
 * `conflicts` holds the concurrent values found while applying changes.
 */
export const DOCUMENT_MIGRATIONS: ReadonlyArray<(db: Db) => void> = [
  (db) => {
    db.exec(`
      create table docs (
        doc_id text primary key,
        snapshot blob not null,
        snapshot_lsn integer not null,
        heads text not null
      ) without rowid;
      create table conflicts (
        id integer primary key,
        doc_id text not null,
        path text not null,
        value_key text not null,
        "values" text not null,
        detected_at integer not null,
        status text not null,
        resolution text,
        resolved_at integer,
        resolved_by text
      );
      create unique index conflicts_identity on conflicts(doc_id, path, value_key);
      create index conflicts_open on conflicts(status, doc_id);
    `)
  },
  (db) => {
    // Per document and origin, the Automerge seq of the origin's last change there (see
    // ActorSeqs), and the documents that could not be materialised (isolated).
    db.exec(`
      create table actor_seqs (
        doc_id text not null,
        origin text not null,
        seq integer not null,
        primary key (doc_id, origin)
      ) without rowid;
      create table isolated_docs (
        doc_id text primary key,
        reason text not null,
        at integer not null
      ) without rowid;
    `)
  },
  (db) => {
    // Stored events whose change Automerge refuses to apply (e.g. an operation on an object
    // that does not exist): skipped by every materialisation, identically on every DRU.
    db.exec(`
      create table rejected_changes (
        origin text not null,
        seq integer not null,
        doc_id text not null,
        reason text not null,
        at integer not null,
        primary key (origin, seq)
      ) without rowid;
    `)
  },
  (db) => {
    // Per document, the digest of its materialised state (digest-index.ts): the leaves of the
    // Merkle tree `verify --deep` walks. `snap_hash` is the sha256 of the snapshot the digest
    // was computed over, so a snapshot changed behind the log's back is noticed.
    db.exec(`
      create table doc_digests (
        doc_id text primary key,
        bucket integer not null,
        digest text not null,
        heads text not null,
        snap_hash text
      ) without rowid;
      create index doc_digests_bucket on doc_digests(bucket, doc_id);
    `)
  },
]
