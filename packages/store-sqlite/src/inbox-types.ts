import type Database from 'better-sqlite3'
import type { DruEvent } from '@dru/core'

/**
 * The inbox's vocabulary: what a handler gets, the states of an owed event, and what the
 * inbox reports (entries, counts, attempts, retries).
 *
 * @module
 */

/** Passed to inbox handlers: the connection, inside the transaction that records the handler as done. */
export interface HandlerTx {
  readonly db: Database.Database
  /** The handler's registered name. */
  readonly handler: string
  /** 1 for the call made when the event is stored, 2 for the first retry, … */
  readonly attempt: number
}

/**
 * Runs exactly once per stored remote event, synchronously, on `tx.db`. A throw rolls back
 * what this call did (and nothing else) and schedules a retry.
 */
export type InboxHandler = (event: DruEvent, tx: HandlerTx) => void

/**
 * `document`: the handler sees each document's events in the order this DRU stored them;
 * while one of them is owed (retrying or dead), later events of that document wait behind it
 * (other documents flow). `none`: every event is retried on its own.
 */
export type InboxOrder = 'document' | 'none'

export interface InboxHandlerOptions {
  readonly order?: InboxOrder
}

/**
 * `pending`: failed, a retry is scheduled (or, promoted from `waiting`, due now).
 * `waiting`: not called yet; an earlier event of its document is owed by this handler.
 * `dead`: retries used up; waits for an operator. `skipped`: an operator gave it up (kept as a record).
 */
export type InboxState = 'pending' | 'waiting' | 'dead' | 'skipped'

/** What {@link Inbox.list} filters on; `open` is pending, waiting and dead. */
export type InboxFilter = InboxState | 'open' | 'all'

export interface InboxEntry {
  readonly id: number
  readonly handler: string
  readonly origin: string
  readonly seq: number
  readonly docId: string
  readonly state: InboxState
  /** Calls made so far (0 for an entry that has waited from the start). */
  readonly attempts: number
  readonly firstFailedAt: number | null
  readonly lastFailedAt: number | null
  /** When the next retry is due (pending only). */
  readonly nextAttemptAt: number | null
  /** The last failure's error (`Name: message`), and its stack when there was one. */
  readonly lastError: string | null
  readonly errorStack: string | null
  /** When it was dead-lettered, or skipped. */
  readonly settledAt: number | null
  /** The operator's reason for a skip. */
  readonly note: string | null
  /** Whether a handler of this name is registered in this process (only then can it be retried). */
  readonly registered: boolean
}

/** Entries per handler and state. */
export interface InboxCounts {
  readonly pending: number
  readonly waiting: number
  readonly dead: number
  readonly skipped: number
  readonly handlers: ReadonlyArray<{
    handler: string
    registered: boolean
    pending: number
    waiting: number
    dead: number
    skipped: number
  }>
}

/** One call of a handler, reported to {@link Inbox.onAttempt} listeners. */
export interface AttemptReport {
  readonly handler: string
  readonly origin: string
  readonly seq: number
  /** `ingest`: the call made while storing; `retry`: a later one. */
  readonly kind: 'ingest' | 'retry'
  readonly ok: boolean
  /** After a failure: whether a retry is scheduled or the event became a dead letter. */
  readonly next?: 'pending' | 'dead'
  readonly error?: string
}

/** What {@link Inbox.retry} did. */
export interface RetryOutcome {
  readonly id: number
  /** `done`: the handler ran and its effects committed; `failed`: it threw again (see `entry`). */
  readonly outcome: 'done' | 'failed'
  readonly entry?: InboxEntry
  readonly error?: string
}

/** What {@link Inbox.runDue} did. */
export interface RunReport {
  readonly attempted: number
  readonly done: number
  readonly failed: number
  /** Entries still due now (the caller should give the event loop a turn and run again). */
  readonly moreDue: boolean
}

/** What the inbox needs from the store that owns it. */
export interface InboxHost {
  readonly db: Database.Database
  /** The store's current origin: its own events are never a handler's. */
  readonly origin: string
  now(): number
  /** Reads one stored event, re-hashing it (CORRUPTION when it changed on disk). */
  getEvent(origin: string, seq: number): DruEvent | undefined
  /** Runs `fn` in an immediate transaction of the store (refused when closed, inspecting or nested). */
  transaction<T>(fn: () => T): T
}
