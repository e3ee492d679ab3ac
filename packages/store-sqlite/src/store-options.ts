import type Database from 'better-sqlite3'
import type { DruEvent, WallClock } from '@dru/core'
import type { InboxPolicy } from './inbox-policy.js'

/**
 * What opening an event store takes, and the handles it gives applications and validators.
 *
 * @module
 */

/**
 * How far a commit must survive. `machine` (the default) is `synchronous=FULL`: a commit
 * that returned survives power loss and kernel crashes. `process` is WAL with
 * `synchronous=NORMAL`: it survives the process being killed, not the machine, and is
 * several times faster per commit.
 */
export type Durability = 'machine' | 'process'

/** What to do with a remote event whose timestamp is too far ahead of our clock. */
export type SkewPolicy = 'reject' | 'tolerate'

export interface OpenStoreOptions {
  /** SQLite file path, or ':memory:' for tests. */
  path: string
  /** This DRU's stable id. A database remembers it and refuses to open under another. */
  druId: string
  durability?: Durability
  /** Wall clock for the HLC and timestamps; defaults to Date.now. */
  now?: WallClock
  /** How far (ms) a remote HLC may run ahead of our clock. Default 60 s. */
  maxClockSkewMs?: number
  /**
   * `reject` (default): a batch holding an event too far ahead fails with CLOCK_SKEW and
   * stores nothing. `tolerate`: the event is stored (convergence never depends on wall
   * clocks) but our clock is not dragged forward; `skewedEvents` counts it for alarms.
   */
  skewPolicy?: SkewPolicy
  /** Signs the hash of our newest own event, once for the commits since the last signature (deferred-signing.ts). */
  sign?: (hash: string) => Uint8Array
  /**
   * Open for inspection by an operator tool: no fresh incarnation is taken and the
   * clean-close marker stays, so looking at a stopped DRU's database changes nothing its
   * next start will see; {@link EventStore.origin} is the last process's origin, and local
   * writes and ingest are refused (INVALID_ARGUMENT). Meta may still be set (`dru restore`).
   */
  inspect?: boolean
  /**
   * Source of 32-bit random integers for the fresh incarnation every open takes
   * (default: the OS's cryptographic generator). Injectable for deterministic simulations.
   */
  random?: () => number
  /** Called with errors thrown by post-commit listeners (which cannot undo a commit). */
  onListenerError?: (err: unknown) => void
  /**
   * Bound of SQLite's page cache for this connection, in KiB (default
   * {@link DEFAULT_CACHE_KIB}). The cache fills with the pages a DRU touches up to this
   * bound and stays there, whatever the size of the log.
   */
  cacheKiB?: number
  /**
   * Events stored before the in-memory part of the document index is merged into
   * `doc_events` (default 262,144, `DEFAULT_DOC_INDEX_MERGE_EVERY`: 4–6 MiB of tail); small
   * values for tests. A merge writes each index page its events touch once, so the rarer it
   * is, the less an event costs: see doc-index.ts.
   */
  docIndexMergeEvery?: number
  /**
   * Documents in the in-memory part of the document index at which it is merged, whatever its
   * number of events (default 32,768, `DEFAULT_DOC_INDEX_MERGE_DOCS`): bounds the tail's
   * memory when events are spread over many documents. Both bounds are checked when a commit
   * ends, so a transaction's own documents join the tail first (a remote batch is bounded by
   * its frame).
   */
  docIndexMergeDocs?: number
  /**
   * Bytes of events served to peers that are kept to serve the next session asking for the
   * same run without reading and re-hashing them again (default 16 MiB,
   * `DEFAULT_RECENT_READ_BYTES`; 0 keeps none). See recent-reads.ts.
   */
  recentReadBytes?: number
  /** Retries of failing inbox handlers before their events become dead letters (see {@link InboxPolicy}). */
  inbox?: Partial<InboxPolicy>
}

/** The handle an application gets inside {@link EventStore.transact}. */
export interface StoreTx {
  /** The same connection, inside the open transaction: app statements commit with the events. */
  readonly db: Database.Database
  /** Appends a local event (outbox); it gets the next seq, an HLC tick and the chain link. */
  append(docId: string, change: Uint8Array): DruEvent
}

/** Passed to storing validators; `db` is inside the transaction that stores the events. */
export interface InboxTx {
  readonly db: Database.Database
}

/**
 * Checks a batch of remote events before anything is stored (e.g. that each change is a
 * well-formed Automerge change by its origin's actor). Throwing refuses the whole batch.
 */
export type IngestValidator = (events: readonly DruEvent[]) => void

/**
 * Checks the events a remote batch is about to store, inside its transaction and after they
 * were inserted (so a check may read and update tables of its own atomically with them).
 * Throwing rolls the whole batch back.
 */
export type StoringValidator = (events: readonly DruEvent[], tx: InboxTx) => void
