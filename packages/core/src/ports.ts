/**
 * The ports between dru's packages: what the peer protocol (`@dru/sync`) needs from an
 * event log, and what the node needs to remember about peers. `@dru/store-sqlite`'s
 * `EventStore` implements both; `@dru/testkit` has a memory twin for fast tests. Types
 * only: no I/O here.
 */
import type { DruEvent } from './event.js'
import type { Fingerprint, LogSummary } from './fingerprint.js'
import type { DruId, Origin } from './ids.js'
import type { VersionVector } from './version-vector.js'

/** Per origin, the last event folded away by compaction: its seq, hash and HLC. */
export interface CompactionBase {
  readonly seq: number
  readonly hash: string
  readonly hlc: string
}

/**
 * One folded (compacted) event without its change bytes, which a document snapshot
 * carries instead. A receiver rebuilds the event from both and checks it against the hash
 * chain and the origin's signature, so a bootstrap proves what it delivers.
 */
export interface FoldedEnvelope {
  readonly origin: Origin
  readonly seq: number
  readonly hlc: string
  readonly docId: string
  /** sha256 of the change bytes. */
  readonly changeHash: Uint8Array
  /** The origin's signature, when this event ended a commit. */
  readonly sig?: Uint8Array | undefined
}

/** What {@link ReplicaLog.ingest} did with a batch. */
export interface IngestResult {
  /** Events that were new and are now stored (inbox handlers ran for each). */
  readonly stored: readonly DruEvent[]
  /** Events we already held with the same hash: no-ops. */
  readonly duplicates: number
  /** Stored events whose HLC was beyond the skew bound (only with skewPolicy 'tolerate'). */
  readonly skewed: number
}

export interface StreamOptions {
  /** Soft cap on a batch's change bytes; a batch always holds at least one event. */
  maxBatchBytes?: number
  /** Rows fetched per query; bounds memory together with maxBatchBytes. */
  pageSize?: number
  /**
   * Origins where the remote vector is below our compaction base: `throw` BELOW_FLOOR
   * (default), or `skip` them (the peer must be bootstrapped for those; the rest streams).
   */
  belowBase?: 'throw' | 'skip'
}

/** Where a commit came from. */
export type CommitSource = 'local' | 'remote'

/** Called after a commit with the events it made durable, in commit order. */
export type CommitListener = (events: readonly DruEvent[], source: CommitSource) => void

/**
 * When a commit listener runs: `derive` listeners (state derived from the log, like
 * materialised documents) all run before any `notify` listener (sync, metrics), whatever
 * the order they registered in.
 */
export type CommitPhase = 'derive' | 'notify'

/** The event log as the peer protocol sees it. */
export interface ReplicaLog {
  readonly druId: DruId
  /** The origin this process writes as (a fresh incarnation per open). */
  readonly origin: Origin
  readonly closed: boolean
  /** Per origin (retired ones included), the highest contiguous seq held. */
  vv(): VersionVector
  /** Live origins' fingerprint plus the retired origins' summary: what peers compare. */
  summary(): LogSummary
  /** Every origin (retired ones included) with its head: the whole log, event for event. */
  fingerprint(): Fingerprint
  /** Every retired origin (head equal to its compaction base) with its seq and hash. */
  retired(): Array<{ readonly origin: string; readonly seq: number; readonly hash: string }>
  /** The hash this log holds at `(origin, seq)` (head, base or stored event), or undefined. */
  hashAt(origin: string, seq: number): string | undefined
  /** Per origin, the compaction base (empty until the first compaction). */
  base(): Readonly<Record<string, CompactionBase>>
  /** What a peer at `remote` lacks, in bounded batches (see {@link StreamOptions}). */
  eventsMissing(remote: VersionVector, options?: StreamOptions): Generator<DruEvent[], void, undefined>
  /** Verifies and stores remote events, all or nothing. */
  ingest(batch: readonly unknown[]): IngestResult
  /** Registers a commit listener; returns its remover. */
  onCommit(listener: CommitListener, options?: { phase?: CommitPhase }): () => void
  /** Folded envelopes of `origin` from `fromSeq` on, in seq order, at most `limit`. */
  folded(origin: string, fromSeq: number, limit: number): FoldedEnvelope[]
  /** Keeps the change bytes of a document snapshot for a bootstrap in progress. */
  stageChanges(docId: string, changes: readonly Uint8Array[]): void
  /**
   * Rebuilds folded events from their envelopes and the staged change bytes, chaining each
   * origin's run from what this log holds. MALFORMED when a change was not staged.
   */
  rebuildFolded(envelopes: readonly FoldedEnvelope[]): DruEvent[]
  /** Drops whatever a bootstrap staged. */
  clearStage(): void
}

/** A peer as remembered between sessions. */
export interface PeerRecord {
  readonly peerId: string
  readonly url: string | null
  readonly ackedVv: VersionVector
  readonly lastSeen: number | null
  readonly state: string | null
}

/** What the sync layer remembers about peers across restarts. */
export interface PeerBook {
  peer(peerId: string): PeerRecord | undefined
  recordPeer(peerId: string, fields: { url?: string | null; state?: string | null; lastSeen?: number | null }): void
  /** Merges (max) what a peer durably acknowledged; returns the merged vector. */
  recordPeerAck(peerId: string, acked: VersionVector, at?: number): VersionVector
}
