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
  if (code === 'SQLITE_FULL') return new DruError('STORAGE_FULL', `the disk is full (SQLite: ${message}); nothing was stored`, { cause: err })
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new DruError('DB_LOCKED', `the database is locked by another connection (SQLite: ${message})`, { cause: err })
  }
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
    return new DruError('CORRUPTION', `the database file is damaged (SQLite: ${message})`, { cause: err })
  }
  return err
}
