import Database from 'better-sqlite3'
import { DruError, parseDruId, type DruId } from '@dru/core'
import { migrate } from './migrations.js'
import { DEFAULT_RECENT_READ_BYTES } from './recent-reads.js'
import type { OpenStoreOptions } from './event-store.js'

/**
 * Opening the log's database: the options checked (CONFIG_INVALID naming the field), the
 * file opened with an exclusive OS lock (a second process gets DB_LOCKED at once), WAL and
 * the durability's `synchronous`, a bounded page cache without memory mapping, the schema
 * migrated. `build` makes the store on the open connection; if anything fails, the
 * connection is closed again and SQLite's failure is typed.
 *
 * @module
 */

/** Default bound of SQLite's page cache (16 MiB per connection), dru's configuration rather than the build's. */
export const DEFAULT_CACHE_KIB = 16 << 10

export function openDatabase<T>(options: OpenStoreOptions, build: (db: Database.Database, druId: DruId) => T): T {
  const druId = parseDruId(options.druId, 'druId')
  if (typeof options.path !== 'string' || options.path.length === 0) {
    throw new DruError('CONFIG_INVALID', 'path must be a file path or ":memory:"', { details: { field: 'path' } })
  }
  const durability = options.durability ?? 'machine'
  if (durability !== 'machine' && durability !== 'process') {
    throw new DruError(
      'CONFIG_INVALID',
      `durability must be 'machine' or 'process' (got ${JSON.stringify(durability)})`,
      {
        details: { field: 'durability' },
      },
    )
  }
  const skew = options.skewPolicy ?? 'reject'
  if (skew !== 'reject' && skew !== 'tolerate') {
    throw new DruError('CONFIG_INVALID', `skewPolicy must be 'reject' or 'tolerate' (got ${JSON.stringify(skew)})`, {
      details: { field: 'skewPolicy' },
    })
  }
  const cacheKiB = options.cacheKiB ?? DEFAULT_CACHE_KIB
  if (!Number.isInteger(cacheKiB) || cacheKiB < 64) {
    throw new DruError(
      'CONFIG_INVALID',
      `cacheKiB must be an integer of at least 64 (got ${JSON.stringify(cacheKiB)})`,
      {
        details: { field: 'cacheKiB' },
      },
    )
  }
  const recentReadBytes = options.recentReadBytes ?? DEFAULT_RECENT_READ_BYTES
  if (!Number.isSafeInteger(recentReadBytes) || recentReadBytes < 0) {
    throw new DruError(
      'CONFIG_INVALID',
      `recentReadBytes must be a non-negative integer (got ${typeof recentReadBytes === 'number' ? recentReadBytes : JSON.stringify(recentReadBytes)})`,
      { details: { field: 'recentReadBytes' } },
    )
  }
  for (const field of ['docIndexMergeEvery', 'docIndexMergeDocs'] as const) {
    const v = options[field]
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 1)) {
      throw new DruError(
        'CONFIG_INVALID',
        `${field} must be a positive integer (got ${typeof v === 'number' ? v : JSON.stringify(v)})`,
        { details: { field } },
      )
    }
  }
  let db: Database.Database
  try {
    // timeout 0: a locked file must fail fast, not wait.
    db = new Database(options.path, { timeout: 0 })
  } catch (cause) {
    throw new DruError('CONFIG_INVALID', `cannot open database ${options.path}: ${(cause as Error).message}`, {
      cause,
      details: { field: 'path' },
    })
  }
  try {
    if (options.path !== ':memory:') {
      // Exclusive locking mode holds an OS lock on the file for the life of this
      // connection; the kernel drops it when the process dies, so a crash never leaves
      // a stale lock. With it, WAL needs no shared-memory file.
      db.pragma('locking_mode = EXCLUSIVE')
      db.pragma('journal_mode = WAL')
      db.exec('begin exclusive; commit')
    }
    db.pragma(`synchronous = ${durability === 'machine' ? 'FULL' : 'NORMAL'}`)
    // A negative cache_size is a bound in KiB; no memory-mapped I/O, so the file's pages
    // are only ever in that cache, never mapped into the process.
    db.pragma(`cache_size = -${cacheKiB}`)
    db.pragma('mmap_size = 0')
    migrate(db)
    return build(db, druId)
  } catch (cause) {
    db.close()
    if ((cause as { code?: string }).code === 'SQLITE_BUSY') {
      throw new DruError(
        'DB_LOCKED',
        `database ${options.path} is in use by another process; only one DRU may open it`,
        {
          cause,
          details: { path: options.path },
        },
      )
    }
    if (
      (cause as { code?: string }).code === 'SQLITE_NOTADB' ||
      (cause as { code?: string }).code === 'SQLITE_CORRUPT'
    ) {
      throw new DruError(
        'CORRUPTION',
        `database ${options.path} is damaged (${(cause as Error).message}); restore it (see docs/RUNBOOK.md)`,
        {
          cause,
          details: { path: options.path },
        },
      )
    }
    throw cause
  }
}
