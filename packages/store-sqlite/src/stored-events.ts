import type Database from 'better-sqlite3'
import type { DruEvent } from '@dru/core'
import { MAX_RUN_EVENTS, type StoredEvent } from './run-body.js'
import { RUN, eventOfRun, eventsOfRun, toEvent, type LogStatements, type RunRow } from './statements.js'
import { DictionaryNames } from './stored-form.js'

/**
 * Events read out of `runs` (schema 6), each checked against its hash (statements.ts
 * `toEvent`): by origin and seq, by position, and a run's events with their signatures. The
 * readers (log-reader.ts, log-base.ts, the store) ask here instead of decoding runs themselves.
 *
 * @module
 */
export class StoredEvents {
  readonly #stmt: LogStatements
  readonly #docs: DictionaryNames

  constructor(db: Database.Database, stmt: LogStatements) {
    this.#stmt = stmt
    this.#docs = new DictionaryNames(db, 'doc_ids', 'doc_id')
  }

  /** The document id text of a stored event's document (null: no dictionary entry, a damaged row). */
  docName(doc: number): string | null {
    return this.#docs.textOf(doc)
  }

  /**
   * The events of a run from index `from` up to `to` (excluded), checked, with the signatures
   * stored for them: only those are hashed (a page starting or ending inside a run would
   * otherwise hash the rest of it again). `stored` is the run decoded, when the caller has it.
   */
  eventsOf(run: RunRow, from = 0, to = run[RUN.n], stored: readonly StoredEvent[] = eventsOfRun(run)): DruEvent[] {
    const sigs = this.#sigsOf(run)
    const origin = run[RUN.origin]
    const out = new Array<DruEvent>(Math.max(0, to - from))
    for (let i = from; i < to; i++) {
      const s = stored[i]!
      out[i - from] = toEvent(origin, s, this.#docs.textOf(s.doc), sigs?.get(s.seq))
    }
    return out
  }

  /** One event of a run (its position in the run `i`), checked. */
  eventOf(run: RunRow, i: number): DruEvent {
    const s = eventOfRun(run, i)
    const sig = this.#stmt.sigAt.get(run[RUN.originId], s.seq) as Buffer | undefined
    return toEvent(run[RUN.origin], s, this.#docs.textOf(s.doc), sig)
  }

  /** The event at `(origin, seq)`, or undefined when no run holds it. */
  at(origin: string, seq: number): DruEvent | undefined {
    // Only whole positions hold events (a caller's 1.5 is no event, not a damaged run).
    if (!Number.isSafeInteger(seq)) return undefined
    const run = this.#stmt.runAtSeq.get(origin, seq) as RunRow | undefined
    if (run === undefined || seq >= run[RUN.seq] + run[RUN.n]) return undefined
    return this.eventOf(run, seq - run[RUN.seq])
  }

  /** The event at position `lsn`, or undefined when none is stored there. */
  atLsn(lsn: number): (DruEvent & { lsn: number }) | undefined {
    if (!Number.isSafeInteger(lsn)) return undefined
    const run = this.#stmt.runAtLsn.get(lsn) as RunRow | undefined
    if (run === undefined || lsn >= run[RUN.lsn] + run[RUN.n]) return undefined
    return { ...this.eventOf(run, lsn - run[RUN.lsn]), lsn }
  }

  /**
   * Events of `origin` from seq `from` to `to`, in seq order, checked: at most about `limit`
   * (whole runs, up to a run more), fewer when its runs are short (callers read on from the
   * last). Stops early where the log has a hole.
   */
  range(origin: string, from: number, to: number, limit: number): DruEvent[] {
    const runs = this.#stmt.runsFrom.all(
      origin,
      origin,
      from,
      from,
      to,
      Math.ceil(limit / MAX_RUN_EVENTS) + 1,
    ) as RunRow[]
    const out: DruEvent[] = []
    for (const run of runs) {
      const first = run[RUN.seq]
      const n = run[RUN.n]
      if (first + n <= from) continue
      for (const e of this.eventsOf(run, Math.max(0, from - first), Math.min(n, to - first + 1))) out.push(e)
      if (out.length >= limit) break
    }
    return out
  }

  /** The signatures of a run's events by seq, or undefined when none has one. */
  #sigsOf(run: RunRow): Map<number, Uint8Array> | undefined {
    const rows = this.#stmt.sigsIn.all(run[RUN.originId], run[RUN.seq], run[RUN.seq] + run[RUN.n]) as Array<
      [number, Buffer]
    >
    if (rows.length === 0) return undefined
    return new Map(rows)
  }
}
