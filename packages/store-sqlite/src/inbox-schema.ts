import type Database from 'better-sqlite3'

/**
 * The inbox's tables, on their own migration track.
 *
 * @module
 */

/** The inbox tables, on a schema track of their own (`schema_version:inbox`). */
export const INBOX_MIGRATIONS: ReadonlyArray<(db: Database.Database) => void> = [
  (db) => {
    db.exec(`
      create table inbox (
        id integer primary key autoincrement, -- never reused: an operator's id must not come to name another entry
        handler text not null,
        origin text not null,
        seq integer not null,
        doc_id text not null,
        lsn integer not null,            -- the event's local position: the order handlers see
        state text not null check (state in ('pending', 'waiting', 'dead', 'skipped')),
        attempts integer not null,
        first_failed_at integer,
        last_failed_at integer,
        next_attempt_at integer,
        last_error text,
        error_stack text,
        settled_at integer,
        note text,
        unique (handler, origin, seq)
      );
      create index inbox_due on inbox(handler, state, next_attempt_at);
      create index inbox_doc on inbox(handler, doc_id, lsn) where state <> 'skipped';
      create index inbox_origin on inbox(origin, seq) where state <> 'skipped';
    `)
  },
  (db) => {
    // Every name a handler was ever registered under (until an operator forgets it): an event
    // stored while a known handler is not registered (a restart, before the application
    // registers it again) is owed to it, not lost to it.
    db.exec(`
      create table inbox_handlers (
        name text primary key,
        doc_order text not null check (doc_order in ('document', 'none')),
        registered_at integer not null
      ) without rowid;
      -- A database written before names were recorded: a handler with open entries was
      -- registered until now, so it is known (and owed what is stored before it is registered
      -- again); per-document order if any of its entries waits behind another.
      insert into inbox_handlers (name, doc_order, registered_at)
        select handler, case when max(state = 'waiting') then 'document' else 'none' end, 0
        from inbox where state in ('pending', 'waiting', 'dead') group by handler;
    `)
  },
]
