import type Database from 'better-sqlite3'

/**
 * Keys of the `meta` table, in one place so no package spells them as string literals.
 * Values are plain SQLite values (text or integer).
 */
export const MetaKey = {
  /** The DRU id this database belongs to; opening it under another id is refused. */
  DRU_ID: 'dru_id',
  /** The incarnation the current (or last) process wrote as. */
  INCARNATION: 'incarnation',
  /** The origin of the process that opened this file before the current one. */
  PREVIOUS_ORIGIN: 'previous_origin',
  /** Written by a clean close, read and removed at open (reported, no longer decisive). */
  CLEAN_CLOSE: 'clean_close',
  /** Position up to which `doc_events` indexes every stored event (see doc-index.ts). */
  DOC_INDEX_LSN: 'doc_index_lsn',
  /** The highest local position ever given; positions are never reused. */
  LSN_HIGH: 'lsn_high',
  /** 1 while the DRU refuses writes until its own earlier events are back (restore mode). */
  RESTORE_PENDING: 'restore_pending',
  /** JSON list of DRU ids removed from the cluster by `dru decommission`. */
  DECOMMISSIONED: 'decommissioned',
  /** The first position stored inside a registration window not yet released (the inbox's; see Inbox.holdForRegistration). */
  INBOX_WINDOW_LSN: 'inbox_window_lsn',
  /** Log position up to which cold documents were scanned for conflicts (documents package). */
  CONFLICT_SCAN: 'documents:conflict_scan_lsn',
  /** Log position up to which the per-document digests of the Merkle tree are current (documents package). */
  DIGEST_LSN: 'documents:digest_lsn',
} as const
/** A key of the `meta` table: one of {@link MetaKey}, or a package's schema track (`schema_version:<track>`, see `migrate`). */
export type MetaKey = (typeof MetaKey)[keyof typeof MetaKey] | `schema_version:${string}`

/** Typed access to the `meta` table through prepared statements. */
export class MetaTable {
  readonly #get: Database.Statement
  readonly #set: Database.Statement
  readonly #delete: Database.Statement

  constructor(db: Database.Database) {
    this.#get = db.prepare('select value from meta where key = ?')
    this.#set = db.prepare(
      'insert into meta (key, value) values (?, ?) on conflict(key) do update set value = excluded.value',
    )
    this.#delete = db.prepare('delete from meta where key = ?')
  }

  get(key: string): unknown {
    return (this.#get.get(key) as { value: unknown } | undefined)?.value
  }

  set(key: string, value: string | number | null): void {
    this.#set.run(key, value)
  }

  delete(key: string): void {
    this.#delete.run(key)
  }
}
