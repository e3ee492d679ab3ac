import { DruError, type DruEvent } from '@dru/core'
import { callHandler, failure, type CallResult } from './handler-call.js'
import { nextAttempt, type InboxPolicy } from './inbox-policy.js'
import { INBOX_MIGRATIONS } from './inbox-schema.js'
import {
  countEntries,
  listEntries,
  owedFrom,
  prepareInboxStatements,
  toEntry,
  type InboxRow,
  type InboxStatements,
} from './inbox-table.js'
import type {
  InboxHandler,
  InboxOrder,
  InboxHandlerOptions,
  InboxFilter,
  InboxEntry,
  InboxCounts,
  AttemptReport,
  RetryOutcome,
  RunReport,
  InboxHost,
} from './inbox-types.js'
import { HandlerRegistry, type Owed } from './inbox-registry.js'
import { migrate } from './migrations.js'

export { MAX_INBOX_LIST } from './inbox-table.js'

/**
 * The inbox's bookkeeping: which application handler still owes which stored event.
 *
 * A remote event is stored (and merged) whatever its handlers do. Each handler runs on it
 * inside the storing transaction behind a SAVEPOINT: success releases the savepoint, so
 * its effects commit with the event; a throw rolls back to the savepoint — that handler's
 * effects only — and records the event as owed by that handler (`inbox` row). A retry
 * runs the handler in a transaction of its own that re-reads the event (hash verified)
 * and deletes the row when the handler returns, so effect and "done" commit together:
 * a crash at any point leaves either both or neither. When the retries are used up the
 * row becomes a dead letter, kept until an operator retries or skips it.
 *
 * This file is that state machine (owed → retried → dead → retried or skipped): which
 * transition runs when, and in which transaction. Apart: who each new event is for (the
 * registered, recorded and not-yet-registered handlers: inbox-registry.ts), its vocabulary (inbox-types.ts),
 * schema (inbox-schema.ts), retry policy (inbox-policy.ts), the table's statements and
 * reads (inbox-table.ts) and one handler call behind its savepoint (handler-call.ts).
 *
 * @module
 */

const MAX_NOTE_CHARS = 1_000

/** The inbox of one {@link EventStore}: per-handler delivery, retries, dead letters (who is owed what: inbox-registry.ts). */
export class Inbox {
  readonly policy: InboxPolicy
  readonly #host: InboxHost
  readonly #attemptListeners: Array<(r: AttemptReport) => void> = []
  readonly #wakeListeners: Array<() => void> = []
  readonly #stmt: InboxStatements
  /** Who each new event is for (inbox-registry.ts). */
  readonly #registry: HandlerRegistry

  constructor(host: InboxHost, policy: InboxPolicy) {
    this.#host = host
    this.policy = policy
    migrate(host.db, INBOX_MIGRATIONS, 'schema_version:inbox')
    this.#stmt = prepareInboxStatements(host.db)
    this.#registry = new HandlerRegistry(host, this.#stmt, (name, order, e, at) => this.#owe(name, order, e, at))
  }

  // ---- registration ---------------------------------------------------------------------

  /**
   * Registers a named handler. The name keys its owed events across restarts, so it must be
   * stable and unique in the process: INVALID_ARGUMENT otherwise, and inside an open
   * transaction; an async function is refused (ASYNC_CHANGE): its work after an `await` would
   * run outside the transaction. It is owed what was stored while it was not registered
   * (inbox-registry.ts).
   */
  register(name: string, handler: InboxHandler, options: InboxHandlerOptions = {}): () => void {
    const unsubscribe = this.#registry.register(name, handler, options)
    this.#wake()
    return unsubscribe
  }

  /**
   * Forgets a handler that is gone for good: its name and every entry of it (owed, dead or
   * skipped), so its owed events stop holding compaction back and later events are not owed
   * to it. Returns how many entries went. INVALID_ARGUMENT while it is registered in this
   * process; NOT_FOUND when the name is neither known nor has entries.
   */
  forget(name: string): number {
    return this.#registry.forget(name)
  }

  /** Names of the handlers registered in this process. */
  handlers(): string[] {
    return [...this.#registry.names()].sort()
  }

  /** Whether a new remote event goes to any handler: one registered, one known and owed it, or one not registered yet. */
  hasRecipients(): boolean {
    return this.#registry.hasRecipients()
  }

  /**
   * Opens the window in which the application registers its handlers (openDru holds it until
   * it has returned): a handler registered for the first time before `release` is owed every
   * remote event stored since, so what the network stores while `openDru` is still running is
   * not lost to a handler registered right after it. While it is open, compaction keeps those
   * events (see {@link owedFrom}).
   */
  holdForRegistration(): () => void {
    return this.#registry.holdForRegistration()
  }

  /** Every handler registered here or in an earlier process and not forgotten, with its order. */
  known(): Array<{ name: string; order: InboxOrder; registered: boolean }> {
    return this.#registry.known()
  }

  /** Called after each handler call (after its transaction committed, for retries). */
  onAttempt(listener: (r: AttemptReport) => void): () => void {
    this.#attemptListeners.push(listener)
    return () => {
      const i = this.#attemptListeners.indexOf(listener)
      if (i >= 0) this.#attemptListeners.splice(i, 1)
    }
  }

  /** Called when retries may have become due outside a commit (registration, an operator's retry or skip). */
  onWake(listener: () => void): () => void {
    this.#wakeListeners.push(listener)
    return () => {
      const i = this.#wakeListeners.indexOf(listener)
      if (i >= 0) this.#wakeListeners.splice(i, 1)
    }
  }

  // ---- delivery (inside ingest's transaction) ---------------------------------------------

  /**
   * Runs every registered handler on a newly stored remote event. Must be called inside the
   * transaction that stores it; never throws for a handler's failure (recorded instead), only
   * when the database itself fails (the whole batch then rolls back).
   */
  deliver(event: DruEvent, lsn: number, at: number): void {
    this.#registry.stored(lsn)
    // Who gets this event is settled before any handler runs (a handler may unsubscribe itself
    // or another): one unsubscribed after it ran is not owed it again; one unsubscribed before
    // its turn is owed it instead.
    const registered = this.#registry.registered
    let absent = this.#registry.absent
    for (const [name, reg] of registered) {
      if (this.#registry.get(name) !== reg) {
        absent = [...absent, { name, order: reg.order }]
        continue
      }
      const row = {
        handler: name,
        origin: event.origin,
        seq: event.seq,
        docId: event.docId,
        lsn,
        at: null as number | null,
        next: null as number | null,
        error: null as string | null,
        stack: null as string | null,
        settled: null as number | null,
      }
      if (reg.order === 'document' && this.#stmt.blocked.get(name, event.docId) !== undefined) {
        this.#stmt.insert.run({ ...row, state: 'waiting', attempts: 0 })
        continue
      }
      const result = callHandler(this.#stmt, this.#host.db, name, reg.handler, event, 1)
      if (result.ok) {
        this.#report({ handler: name, origin: event.origin, seq: event.seq, kind: 'ingest', ok: true })
        continue
      }
      const next = nextAttempt(this.policy, 1, at)
      const state = next === 'dead' ? 'dead' : 'pending'
      this.#stmt.insert.run({
        ...row,
        state,
        attempts: 1,
        at,
        next: next === 'dead' ? null : next,
        error: result.error,
        stack: result.stack,
        settled: next === 'dead' ? at : null,
      })
      this.#report({
        handler: name,
        origin: event.origin,
        seq: event.seq,
        kind: 'ingest',
        ok: false,
        next: state,
        error: result.error,
      })
    }
    // Not called, owed: it runs once its handler is registered again (as a retry would).
    for (const { name, order } of absent)
      this.#owe(name, order, { origin: event.origin, seq: event.seq, docId: event.docId, lsn }, at)
  }

  /** Records `e` as owed by `name` without calling it: due at `at`, or waiting behind an owed event of its document. */
  #owe(name: string, order: InboxOrder, e: Owed, at: number): void {
    const waits = order === 'document' && this.#stmt.blocked.get(name, e.docId) !== undefined
    this.#stmt.owe.run({
      handler: name,
      origin: e.origin,
      seq: e.seq,
      docId: e.docId,
      lsn: e.lsn,
      state: waits ? 'waiting' : 'pending',
      attempts: 0,
      at: null,
      next: waits ? null : at,
      error: null,
      stack: null,
      settled: null,
    })
  }

  // ---- retries ------------------------------------------------------------------------------

  /**
   * Retries up to `limit` due entries of registered handlers, earliest first, each in its own
   * transaction. An entry is tried at most once per call, so a failing handler cannot spin.
   */
  runDue(limit = this.policy.batch): RunReport {
    const now = this.#host.now()
    const due: InboxRow[] = []
    // A loop, not a spread: a caller's limit may exceed what one call can take as arguments.
    for (const name of this.#registry.names())
      for (const row of this.#stmt.due.all(name, now, limit + 1) as InboxRow[]) due.push(row)
    due.sort((a, b) => a.next_attempt_at! - b.next_attempt_at! || a.lsn - b.lsn)
    let done = 0
    let failed = 0
    const batch = due.slice(0, limit)
    for (const row of batch) {
      const r = this.#attempt(row.id, false)
      if (r === undefined) continue
      if (r.outcome === 'done') done++
      else failed++
    }
    return { attempted: done + failed, done, failed, moreDue: due.length > limit }
  }

  /** The earliest time a registered handler's pending entry is due, or undefined when none is. */
  nextDue(): number | undefined {
    let min: number | undefined
    for (const name of this.#registry.names()) {
      const t = this.#stmt.nextDue.get(name) as number | null
      if (t !== null && (min === undefined || t < min)) min = t
    }
    return min
  }

  /**
   * Runs entry `id`'s handler now (an operator's retry, e.g. after a fix is deployed), in its
   * own transaction; on success the entry is gone. NOT_FOUND for an unknown id; INVALID_ARGUMENT
   * for a skipped entry, one waiting behind an earlier event of its document, or a handler that
   * is not registered in this process.
   */
  retry(id: number): RetryOutcome {
    const row = this.#row(id)
    if (row.state === 'skipped')
      throw new DruError('INVALID_ARGUMENT', `inbox entry ${id} was skipped; there is nothing to retry`, {
        details: { id },
      })
    if (row.state === 'waiting') {
      throw new DruError(
        'INVALID_ARGUMENT',
        `inbox entry ${id} waits behind an earlier event of document ${row.doc_id} for handler ${row.handler}: retry or skip that one first`,
        { details: { id } },
      )
    }
    if (!this.#registry.has(row.handler)) {
      throw new DruError(
        'INVALID_ARGUMENT',
        `no handler named ${row.handler} is registered in this process: register it (dru.onEvent) before retrying its events`,
        { details: { id } },
      )
    }
    const outcome = this.#attempt(id, true)!
    this.#wake()
    return outcome
  }

  /** Moves every dead letter (of `handler`, or of all handlers) back to pending, due now; returns how many. */
  requeueDead(handler?: string): number {
    const now = this.#host.now()
    const n = this.#host.transaction(
      () => (handler === undefined ? this.#stmt.requeue.run(now) : this.#stmt.requeueHandler.run(now, handler)).changes,
    )
    if (n > 0) this.#wake()
    return n
  }

  /**
   * Gives entry `id` up: its handler will not run on the event. The entry stays, as `skipped`,
   * with the time and `note`; later events of its document (order `document`) move up.
   */
  skip(id: number, note?: string): InboxEntry {
    if (note !== undefined && typeof note !== 'string')
      throw new DruError('INVALID_ARGUMENT', 'a skip reason must be a string')
    const entry = this.#host.transaction(() => {
      const row = this.#row(id)
      if (row.state === 'skipped')
        throw new DruError('INVALID_ARGUMENT', `inbox entry ${id} was already skipped`, { details: { id } })
      const now = this.#host.now()
      this.#stmt.skip.run(now, note === undefined ? null : note.slice(0, MAX_NOTE_CHARS), id)
      this.#promote(row.handler, row.doc_id, now)
      return this.#entry(this.#row(id))
    })
    this.#wake()
    return entry
  }

  // ---- reads ----------------------------------------------------------------------------------

  get(id: number): InboxEntry | undefined {
    const row = this.#stmt.get.get(id) as InboxRow | undefined
    return row ? this.#entry(row) : undefined
  }

  /** Entries by id, oldest first: `open` (default) is pending, waiting and dead. At most {@link MAX_INBOX_LIST}. */
  list(options: { state?: InboxFilter; handler?: string; limit?: number; afterId?: number } = {}): InboxEntry[] {
    return listEntries(this.#host.db, options, (handler) => this.#registry.has(handler))
  }

  counts(): InboxCounts {
    return countEntries(this.#stmt, this.#registry.byName)
  }

  /**
   * Per origin, the lowest seq some handler still owes, or a handler registered in the open
   * registration window would be owed: compaction must keep it and everything after.
   */
  owedFrom(): Record<string, number> {
    const owed = owedFrom(this.#stmt)
    for (const [origin, seq] of Object.entries(this.#registry.windowHolds()))
      owed[origin] = Math.min(owed[origin] ?? seq, seq)
    return owed
  }

  // ---- internals ------------------------------------------------------------------------------

  /** One attempt at entry `id` in its own transaction; undefined when it is no longer pending (nothing run). */
  #attempt(id: number, manual: boolean): RetryOutcome | undefined {
    let report: AttemptReport | undefined
    const outcome = this.#host.transaction((): RetryOutcome | undefined => {
      // Re-read inside the transaction: an operator may have skipped or retried it meanwhile.
      const row = this.#stmt.get.get(id) as InboxRow | undefined
      if (!row || !(row.state === 'pending' || (manual && row.state === 'dead'))) return undefined
      const reg = this.#registry.get(row.handler)
      if (!reg) return undefined
      const now = this.#host.now()
      const attempt = row.attempts + 1
      let result: CallResult
      let event: DruEvent | undefined
      try {
        event = this.#host.getEvent(row.origin, row.seq)
      } catch (err) {
        result = failure(err) // CORRUPTION: the event cannot be trusted; it dead-letters like any failure
      }
      if (event) result = callHandler(this.#stmt, this.#host.db, row.handler, reg.handler, event, attempt)
      else result ??= { ok: false, error: `the event ${row.origin}#${row.seq} is no longer in the log`, stack: null }
      if (result.ok) {
        this.#stmt.delete.run(id)
        this.#promote(row.handler, row.doc_id, now)
        report = { handler: row.handler, origin: row.origin, seq: row.seq, kind: 'retry', ok: true }
        return { id, outcome: 'done' }
      }
      const next = nextAttempt(this.policy, attempt, now)
      const state = next === 'dead' ? 'dead' : 'pending'
      this.#stmt.failed.run({
        id,
        state,
        attempts: attempt,
        at: now,
        next: next === 'dead' ? null : next,
        error: result.error,
        stack: result.stack,
        settled: next === 'dead' ? (row.state === 'dead' ? row.settled_at : now) : null,
      })
      report = {
        handler: row.handler,
        origin: row.origin,
        seq: row.seq,
        kind: 'retry',
        ok: false,
        next: state,
        error: result.error,
      }
      return { id, outcome: 'failed', entry: this.#entry(this.#stmt.get.get(id) as InboxRow), error: result.error }
    })
    if (report) this.#report(report)
    return outcome
  }

  /** After an entry of (handler, doc) left the owed states, the next waiting one (if nothing else is owed) becomes due. */
  #promote(handler: string, docId: string, now: number): void {
    if (this.#stmt.head.get(handler, docId) === undefined) this.#stmt.promote.run(now, handler, docId)
  }

  #row(id: number): InboxRow {
    if (!Number.isSafeInteger(id) || id < 1)
      throw new DruError('NOT_FOUND', `no inbox entry ${JSON.stringify(id)}`, { details: { id } })
    const row = this.#stmt.get.get(id) as InboxRow | undefined
    if (!row) throw new DruError('NOT_FOUND', `no inbox entry ${id}`, { details: { id } })
    return row
  }

  #entry(r: InboxRow): InboxEntry {
    return toEntry(r, this.#registry.has(r.handler))
  }

  #report(r: AttemptReport): void {
    for (const l of this.#attemptListeners) {
      try {
        l(r)
      } catch {
        // A listener (metrics, logs) must not turn a handled event into a failed batch.
      }
    }
  }

  #wake(): void {
    for (const l of this.#wakeListeners) {
      try {
        l()
      } catch {
        // as above
      }
    }
  }
}
