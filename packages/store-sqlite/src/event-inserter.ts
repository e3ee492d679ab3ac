import type Database from 'better-sqlite3'
import type { DruEvent } from '@dru/core'
import type { DocIndex } from './doc-index.js'
import { LogWriter } from './log-writer.js'
import { mapSqliteError, storageError } from './sqlite-errors.js'
import { RUN, type LogStatements, type RunRow } from './statements.js'
import { Dictionary, encodeStoredHlc } from './stored-form.js'

/**
 * Puts events into the log inside a write transaction, for both commit paths (local-commit.ts,
 * remote-ingest.ts), and keeps what must roll back with the transaction: the next local
 * position, the dictionary ids of origins and documents, the document index's tail, the rows
 * queued in the {@link LogWriter}. On failure the positions and ids it gave out are taken back
 * (their rows were rolled back) and SQLite's error is typed; on success the dictionaries and
 * the document index keep them.
 *
 * @module
 */
export class EventInserter {
  readonly #stmt: LogStatements
  /** Writes the commit paths' rows, several per statement (see log-writer.ts). */
  readonly #writer: LogWriter
  /** Integer ids of origins and documents in storage (dictionary tables). */
  readonly #originIds: Dictionary
  readonly #docIds: Dictionary
  /** Which events each document has (see doc-index.ts). */
  readonly #docIndex: DocIndex
  /** Next local position; assigned explicitly so that deleting rows never lets SQLite reuse one. */
  #nextLsn: number
  #inTransaction = false
  /**
   * One immediate transaction around the body it is given, built once: better-sqlite3's
   * `db.transaction(fn)` makes four wrapper functions and their properties on every call,
   * a measurable part of a one-event local commit.
   */
  readonly #immediate: (body: () => unknown) => unknown

  constructor(db: Database.Database, stmt: LogStatements, docIndex: DocIndex, nextLsn: number) {
    this.#immediate = db.transaction((body: () => unknown) => body()).immediate
    this.#stmt = stmt
    this.#writer = new LogWriter(stmt)
    this.#originIds = new Dictionary(db, 'origin_ids', 'origin')
    this.#docIds = new Dictionary(db, 'doc_ids', 'doc_id')
    this.#docIndex = docIndex
    this.#nextLsn = nextLsn
  }

  /** The highest local position given to an event so far (0 when none). */
  get lastLsn(): number {
    return this.#nextLsn - 1
  }

  /** True while a write transaction of the store runs (nothing may nest in it). */
  get inTransaction(): boolean {
    return this.#inTransaction
  }

  /**
   * Queues one event's row at the next local position and returns that position; the caller
   * flushes before the log is read inside the transaction and before it ends.
   */
  insert(e: DruEvent, at: number): number {
    const lsn = this.#nextLsn++
    const hlc = encodeStoredHlc(e.hlc, e.origin)
    const originId = this.#originIds.idOf(e.origin)
    const doc = this.#docIds.idOf(e.docId)
    // prev and hash: checked hex already (validateEvent for remote events, sealEvent for ours).
    this.#writer.add(lsn, originId, e.seq, doc, hlc, e.change, e.prev, e.hash, e.sig ?? null, at)
    this.#docIndex.stored(doc, lsn, originId, e.docId)
    return lsn
  }

  /** Writes the queued rows (inside the open transaction). */
  flush(): void {
    this.#writer.flush()
  }

  /** The hash stored at `(origin, seq)`, 'damaged' for a run whose events do not decode or a damaged event. */
  storedHash(origin: string, seq: number): string | undefined {
    // The run still queued would be invisible to the read.
    this.#writer.flush()
    const run = this.#stmt.runAtSeq.get(origin, seq) as RunRow | undefined
    if (run === undefined || seq >= run[RUN.seq] + run[RUN.n]) return undefined
    // Hashes lie at fixed places: no body is decoded. Hashes of another length than the run's
    // events (a damaged row) give 'damaged', and a migrated damaged event's zero hash, like it,
    // differs from any real hash.
    const hashes = run[RUN.hashes]
    const i = seq - run[RUN.seq]
    return hashes.length === run[RUN.n] * 64 ? hashes.slice(i * 64, i * 64 + 64) : 'damaged'
  }

  /**
   * Runs a transaction that inserts events (local or remote): immediate, marked as open so
   * nothing nests, and on failure the positions it took are given back (its rows were
   * rolled back) and SQLite's error typed.
   */
  commit<T>(run: () => T): T {
    this.#inTransaction = true
    const lsnBefore = this.#nextLsn
    let result: T
    try {
      result = this.#immediate(run) as T
    } catch (err) {
      this.#writer.discard()
      this.#nextLsn = lsnBefore
      this.#originIds.rollback()
      this.#docIds.rollback()
      this.#docIndex.rollback()
      throw mapSqliteError(err)
    } finally {
      this.#inTransaction = false
    }
    this.#originIds.commit()
    this.#docIds.commit()
    // May merge the document index's tail, in a transaction of its own after this one.
    this.#docIndex.commit()
    return result
  }

  /** One immediate transaction that inserts no events (the inbox's retries), marked open like {@link commit}. */
  exclusive<T>(fn: () => T): T {
    this.#inTransaction = true
    try {
      return this.#immediate(fn) as T
    } catch (err) {
      throw storageError(err)
    } finally {
      this.#inTransaction = false
    }
  }
}
