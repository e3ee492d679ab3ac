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

/**
 * {@link storageError}, plus: a UNIQUE violation on `(origin, seq)` while storing events is a
 * FORK (the same event position written twice with different content).
 */
export function mapSqliteError(err: unknown): unknown {
  const code = (err as { code?: string }).code
  if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
    return new DruError('FORK', `an event with the same (origin, seq) is already stored: ${(err as Error).message}`, {
      cause: err,
    })
  }
  return storageError(err)
}
