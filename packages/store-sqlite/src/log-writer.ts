import type { LogStatements } from './statements.js'
import { MAX_RUN_BODY_BYTES, RunBodyWriter } from './run-body.js'
import type { StoredHlc } from './stored-form.js'

/**
 * Writes a commit's events into `runs` (schema 6): consecutive events of one origin — seq
 * after seq at consecutive positions, each linking to the hash before it — go into one row
 * (run-body.ts), up to its bounds; a row per event was most of what appending, ingesting and
 * streaming the log cost.
 *
 * The open run waits in memory until {@link flush}, which the commit paths call before
 * anything may read the log inside the transaction (a duplicate's stored hash, an inbox
 * handler, a storing validator) and before the transaction ends; {@link discard} drops it when
 * the transaction fails.
 *
 * @module
 */
export class LogWriter {
  readonly #stmt: Pick<LogStatements, 'insertRun' | 'putSig'>
  readonly #body = new RunBodyWriter()
  // The open run: its first event's position, origin, seq and prev; the last event's seq and hash.
  #lsn = 0
  #originId = 0
  #seq = 0
  #prev = ''
  #lastSeq = 0
  #lastHash = ''
  #at = 0
  /** Signatures of the open run's events, written with it: [seq, sig] pairs. */
  #sigs: Array<number | Uint8Array> = []

  constructor(stmt: Pick<LogStatements, 'insertRun' | 'putSig'>) {
    this.#stmt = stmt
  }

  /**
   * Queues one event (columns as in stored-form.ts; `prev` and `hash` 64 lowercase hex
   * characters, checked by the caller; `at` the time it is stored). It joins the open run when
   * it continues it, else the open run is written and a new one starts.
   */
  add(
    lsn: number,
    originId: number,
    seq: number,
    doc: number,
    hlc: StoredHlc,
    change: Uint8Array,
    prev: string,
    hash: string,
    sig: Uint8Array | null,
    at: number,
  ): void {
    const body = this.#body
    const continues =
      body.events > 0 &&
      originId === this.#originId &&
      seq === this.#lastSeq + 1 &&
      lsn === this.#lsn + body.events &&
      prev === this.#lastHash &&
      body.fits(change.byteLength, hlc)
    if (!continues) {
      if (body.events > 0) this.flush()
      this.#lsn = lsn
      this.#originId = originId
      this.#seq = seq
      this.#prev = prev
      this.#at = at
    }
    body.add(doc, hlc, change, hash)
    this.#lastSeq = seq
    this.#lastHash = hash
    if (sig !== null) this.#sigs.push(seq, sig)
    if (body.bytes >= MAX_RUN_BODY_BYTES) this.flush()
  }

  /** Writes the open run. On failure the caller rolls back and discards. */
  flush(): void {
    const body = this.#body
    if (body.events === 0) return
    const n = body.events
    const { body: bytes, hashes } = body.take()
    this.#stmt.insertRun.run(this.#lsn, this.#originId, this.#seq, n, this.#prev, bytes, hashes, this.#at)
    const sigs = this.#sigs
    for (let i = 0; i < sigs.length; i += 2) this.#stmt.putSig.run(this.#originId, sigs[i], sigs[i + 1])
    sigs.length = 0
  }

  /** The transaction failed: the open run is dropped (what was written is rolled back by SQLite). */
  discard(): void {
    this.#body.reset()
    this.#sigs.length = 0
  }
}
