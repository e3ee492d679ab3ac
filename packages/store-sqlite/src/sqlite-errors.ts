import { DruError } from '@dru/core'

/**
 * SQLite's failures as dru's typed errors, for every path that reaches the database: a full
 * disk (or a `max_page_count` reached) is STORAGE_FULL, another process's lock DB_LOCKED, a
 * damaged file CORRUPTION. SQLite rolled the statement back in each case, so nothing was
 * stored. Anything else (already a DruError, or a bug) passes through unchanged.
 */
export function storageError(err: unknown): unknown {
  if (err instanceof DruError) return err
  const code = String((err as { code?: unknown } | null)?.code ?? '')
  const message = (err as Error)?.message ?? String(err)
  if (code === 'SQLITE_FULL')
    return new DruError('STORAGE_FULL', `the disk is full (SQLite: ${message}); nothing was stored`, { cause: err })
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new DruError('DB_LOCKED', `the database is locked by another connection (SQLite: ${message})`, {
      cause: err,
    })
  }
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
    return new DruError('CORRUPTION', `the database file is damaged (SQLite: ${message})`, { cause: err })
  }
  return err
}

/** What SQLite says when the log's `(origin_id, seq)` index refuses a run. */
const LOG_POSITION_TAKEN = 'UNIQUE constraint failed: runs.origin_id, runs.seq'

/**
 * {@link storageError}, plus: a UNIQUE violation of the log's `(origin, seq)` while storing
 * events is a FORK (the same event position written twice with different content). Any other
 * constraint (the application's own tables in `transact`, a storing validator's) stays the
 * SQLite error it is: FORK quarantines the peer that sent the batch.
 */
export function mapSqliteError(err: unknown): unknown {
  const code = (err as { code?: string }).code
  if (code === 'SQLITE_CONSTRAINT_UNIQUE' && (err as Error).message?.includes(LOG_POSITION_TAKEN)) {
    return new DruError('FORK', `an event with the same (origin, seq) is already stored: ${(err as Error).message}`, {
      cause: err,
    })
  }
  return storageError(err)
}
