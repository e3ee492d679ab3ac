import type Database from 'better-sqlite3'
import {
  DruError,
  type CommitListener,
  type CommitPhase,
  type CompactionBase,
  type DruEvent,
  type DruId,
  type Fingerprint,
  type FoldedEnvelope,
  type HlcClock,
  type IngestResult,
  type LogSummary,
  type Origin,
  type PeerBook,
  type PeerRecord,
  type ReplicaLog,
  type StreamOptions,
  type VersionVector,
} from '@dru/core'
import type { Inbox } from './inbox.js'
import type { InboxHandler, InboxHandlerOptions } from './inbox-types.js'
import { signedFirst } from './deferred-signing.js'
import { deleteBelowBase, raiseBase, signedFloor } from './log-base.js'
import { eventsForDoc, eventsMissing, verifyLog, type VerifyProgress } from './log-reader.js'
import { MetaKey } from './meta.js'
import { migrate } from './migrations.js'
import { openDatabase } from './open-store.js'
import { StoreParts } from './store-parts.js'
import type {
  Durability,
  IngestValidator,
  OpenStoreOptions,
  SkewPolicy,
  StoreTx,
  StoringValidator,
} from './store-options.js'

export type { CommitListener, IngestResult, PeerRecord, StreamOptions }
export type { VerifyProgress } from './log-reader.js'
export type {
  Durability,
  SkewPolicy,
  OpenStoreOptions,
  StoreTx,
  InboxTx,
  IngestValidator,
  StoringValidator,
} from './store-options.js'
export { DEFAULT_CACHE_KIB } from './open-store.js'

/**
 * The append-only event log of one DRU on SQLite: the public API, a facade over single-job
 * modules — open-store (opening, locking, pragmas), store-parts (the parts built over one
 * database, and their lifecycle), identity (who this process writes as), statements (SQL and
 * rows), local-commit (`transact`), remote-ingest (`ingest`), event-inserter (positions and
 * rows inside a write transaction), chain-heads (heads, base and summaries in memory),
 * commit-listeners, log-reader (streaming, verification, derived reads), log-base
 * (compaction base), peer-book, inbox (handlers that fail), meta.
 *
 * Outbox: {@link transact} commits the application's statements and its new events in
 * one SQLite transaction. Inbox: {@link ingest} verifies remote events (hash, chain,
 * contiguity), stores each `(origin, seq)` once and runs the inbox handlers in the same
 * transaction, each behind a savepoint; a handler that throws loses only its own effects
 * and owes the event to {@link inbox}, which retries it in a transaction of its own
 * (exactly once either way). Every event read back is re-hashed, so a
 * flipped byte on disk is reported as CORRUPTION instead of being served or applied.
 *
 * Every open writes under a fresh, random incarnation (see {@link newIncarnation}): a
 * database file cannot tell whether it is the newest copy of itself (a backup put back
 * carries everything the original had, a clean-close marker included), so no copy ever
 * continues an origin another process may also continue.
 */
export class EventStore implements ReplicaLog, PeerBook {
  readonly druId: DruId
  readonly path: string
  readonly durability: Durability
  readonly db: Database.Database
  readonly skewPolicy: SkewPolicy
  /** Application handlers, their owed events, retries and dead letters. */
  readonly inbox: Inbox
  /** Everything this API works through (see store-parts.ts). */
  readonly #p: StoreParts

  private constructor(db: Database.Database, options: OpenStoreOptions, druId: DruId) {
    this.db = db
    this.druId = druId
    this.path = options.path
    this.durability = options.durability ?? 'machine'
    this.skewPolicy = options.skewPolicy ?? 'reject'
    this.#p = new StoreParts(db, options, druId, this)
    this.inbox = this.#p.inbox
  }

  /** The hybrid logical clock stamping local events (its node is the current origin). */
  get clock(): HlcClock {
    return this.#p.clock
  }

  /**
   * Opens (creating if needed) the log at `options.path`, takes an exclusive lock on the
   * file and brings the schema up to date. A second process opening the same file fails
   * at once with DB_LOCKED.
   */
  static open(options: OpenStoreOptions): EventStore {
    return openDatabase(options, (db, druId) => new EventStore(db, options, druId))
  }

  /** The writer identity of this process, e.g. `eu-west-1/4711042519783`: fresh at every open. */
  get origin(): Origin {
    return this.#p.origin
  }

  get incarnation(): number {
    return this.#p.incarnation
  }

  /** The origin the previous process that opened this file wrote as (undefined for a new file). */
  get previousOrigin(): Origin | undefined {
    return this.#p.previousOrigin
  }

  /**
   * True when the previous process closed this file cleanly and the log still ends where it
   * ended then; false after a crash, for a new file, or for a live copy. Reported only: a
   * file copied after a clean stop carries the marker too, so every open takes a fresh
   * incarnation whatever this says.
   */
  get openedClean(): boolean {
    return this.#p.openedClean
  }

  /** True when this open created the database (no earlier identity was stored). */
  get isNew(): boolean {
    return this.#p.isNew
  }

  /** Remote events stored although their HLC was beyond the skew bound (skewPolicy 'tolerate'). */
  get skewedEvents(): number {
    return this.#p.remote.skewedEvents
  }

  // ---- outbox -------------------------------------------------------------------------

  /**
   * Runs `fn` in one SQLite transaction. Everything it does through `tx.db` and every
   * event it appends commit together, or (if it throws) not at all; a failed or empty
   * transaction consumes no seq. `fn` must be synchronous.
   */
  transact<T>(fn: (tx: StoreTx) => T): { result: T; events: DruEvent[] } {
    this.#p.assertUsable()
    this.#p.assertOutsideTransaction()
    return this.#p.local.transact(fn)
  }

  /** Shorthand for a transaction that appends one event and nothing else. */
  append(docId: string, change: Uint8Array): DruEvent {
    return this.transact((tx) => tx.append(docId, change)).result
  }

  // ---- inbox --------------------------------------------------------------------------

  /**
   * Registers a named handler that runs exactly once per newly stored remote event: first
   * inside the storing transaction (behind a savepoint), then, if it threw, in retries of
   * its own until it succeeds, is dead-lettered or skipped. See {@link Inbox.register}.
   */
  onIngest(name: string, handler: InboxHandler, options?: InboxHandlerOptions): () => void {
    if (typeof name === 'function') {
      throw new DruError(
        'INVALID_ARGUMENT',
        "onIngest(name, handler): a handler needs a name (e.g. onIngest('mailer', fn)); its owed events are kept under it across restarts",
      )
    }
    return this.inbox.register(name, handler, options)
  }

  /**
   * Registers a listener called after each commit (local or remote) with its events.
   * `derive` listeners (state derived from the log, such as materialised documents) all
   * run before any `notify` listener (sync, metrics), whatever the registration order.
   */
  onCommit(listener: CommitListener, options: { phase?: CommitPhase } = {}): () => void {
    return this.#p.listeners.add(listener, options.phase ?? 'notify')
  }

  /**
   * Registers a check that runs on every remote batch after its hashes are verified and
   * before anything is stored; a throw refuses the whole batch (nothing stored).
   */
  addValidator(validator: IngestValidator): () => void {
    return this.#p.remote.addValidator(validator)
  }

  /** Registers a {@link StoringValidator}: runs inside each remote batch's transaction, on the new events. */
  addStoringValidator(validator: StoringValidator): () => void {
    return this.#p.remote.addStoringValidator(validator)
  }

  /**
   * Verifies and stores a batch of remote events, all or nothing. Events may arrive in
   * any order within the batch and may repeat; an `(origin, seq)` already held with the
   * same hash is a no-op. Errors (store unchanged): INVALID_EVENT, HASH_MISMATCH,
   * CLOCK_SKEW, FORK (same `(origin, seq)`, other hash), CHAIN_BROKEN (`prev` does not
   * link to our head), SEQ_GAP (a hole after our head). A handler that throws does not
   * fail the batch: the event is stored and owed to that handler (see {@link inbox}).
   */
  ingest(batch: readonly unknown[]): IngestResult {
    this.#p.assertUsable()
    this.#p.assertOutsideTransaction()
    return this.#p.remote.ingest(batch)
  }

  // ---- reads --------------------------------------------------------------------------

  /** Per origin, the highest contiguous seq held. */
  vv(): VersionVector {
    return this.#p.chain.vv()
  }

  /** The version vector plus each origin's chain head: equal fingerprints mean equal logs. */
  fingerprint(): Fingerprint {
    return this.#p.chain.fingerprint()
  }

  /**
   * What peers compare: the fingerprint of the live origins, plus a summary of the retired
   * ones (every event folded away by compaction, head equal to base), so a DRU that went
   * through a thousand incarnations still exchanges a small summary once they are compacted.
   */
  summary(): LogSummary {
    return this.#p.chain.summary()
  }

  /** Every retired origin: all its events folded into snapshots (head equal to its base). */
  retired(): Array<{ origin: string; seq: number; hash: string }> {
    return this.#p.chain.retired()
  }

  /** The hash held at `(origin, seq)`: the head, the compaction base, or a stored (verified) event. */
  hashAt(origin: string, seq: number): string | undefined {
    const head = this.#p.chain.heads.get(origin)
    if (!head || seq > head.seq || seq < 1) return undefined
    if (seq === head.seq) return head.hash
    const base = this.#p.chain.base.get(origin)
    if (base?.seq === seq) return base.hash
    return this.getEvent(origin, seq)?.hash
  }

  /** The chain head of one origin, or undefined when we hold none of its events. */
  head(origin: string): { seq: number; hash: string } | undefined {
    const h = this.#p.chain.heads.get(origin)
    return h ? { seq: h.seq, hash: h.hash } : undefined
  }

  /** Reads one event, verifying its hash (CORRUPTION if the stored bytes changed). */
  getEvent(origin: string, seq: number): DruEvent | undefined {
    return this.#p.events.at(origin, seq)
  }

  /**
   * Number of events stored (all origins): the chains' events above their bases plus the rows
   * a running compaction has yet to delete. A `count(*)` walked the whole log, and metrics ask
   * this on every scrape. Inside a write transaction (heads move at commit) the rows are counted.
   */
  count(): number {
    const p = this.#p
    if (p.db.inTransaction) return p.stmt.count.get() as number
    return p.chain.heldAboveBase() + (p.stmt.belowBase.get() as number)
  }

  /**
   * Streams, in bounded batches, the events this log holds that a peer with vector
   * `remote` lacks: per origin in seq order. Rows are fetched page by page (no open
   * cursor is held between batches), so memory stays bounded by the options whatever
   * the backlog, and local writes may continue between batches. Every event is
   * re-hashed and its chain link checked on the way out.
   */
  eventsMissing(remote: VersionVector, options: StreamOptions = {}): Generator<DruEvent[], void, undefined> {
    const pages = eventsMissing(this.#p.view, remote, options)
    // Every page is read after our own tip is signed, so no frame can end at an unsigned own event.
    return this.#p.signer ? signedFirst(pages, () => this.signOwnTip()) : pages
  }

  /**
   * Signs this DRU's newest own event now if a commit left it unsigned (commits are signed
   * shortly after they are made, see deferred-signing.ts). Anything that hands our own events
   * to someone who checks signatures calls this first; `eventsMissing` does it for every page.
   * A no-op without a signer, inside a transaction, or when nothing is pending.
   */
  signOwnTip(): void {
    this.#p.signer?.flush()
  }

  /**
   * Drops the events kept from recent reads for peers (see recent-reads.ts): for whoever
   * changes stored rows behind the store's back, like `signOwnHistory` adding signatures.
   */
  forgetRecentReads(): void {
    this.#p.recentReads.clear()
  }

  /** True when our newest own event still waits for its signature. */
  get ownTipUnsigned(): boolean {
    return this.#p.signer?.pending ?? false
  }

  /** Events of one document stored after local position `afterLsn`, in arrival order, verified. */
  eventsForDoc(docId: string, afterLsn = 0, pageSize = 512): Generator<DruEvent & { lsn: number }, void, undefined> {
    return eventsForDoc(this.#p.view, docId, afterLsn, pageSize)
  }

  /**
   * The highest local position given to an event so far (0 when none). Positions are never
   * reused, even after compaction deleted the newest rows: snapshots record the position
   * they cover, and a reused one would hide later events from them.
   */
  lastLsn(): number {
    return this.#p.inserter.lastLsn
  }

  /**
   * Walks every stored event in each origin's order, re-hashing it and checking its chain
   * link and that the origin's head matches. Throws CORRUPTION naming the first bad
   * event. Reports progress every `progressEvery` events.
   */
  verifyLog(onProgress?: (p: VerifyProgress) => void, progressEvery = 10_000): { events: number; origins: number } {
    return verifyLog(this.#p.view, onProgress, progressEvery)
  }

  // ---- compaction -----------------------------------------------------------------------

  /**
   * Per origin, the highest seq folded into document snapshots (events up to it may no
   * longer be stored), with that event's hash and HLC. Empty until the first compaction.
   */
  base(): Record<string, CompactionBase> {
    return this.#p.chain.baseRecord()
  }

  /** The compaction base as a version vector. */
  baseVv(): VersionVector {
    return this.#p.chain.baseVv()
  }

  /**
   * Where the base of each origin may go for a compaction floor: the floor clamped to what
   * we hold and, for an origin whose events are signed, lowered to its last signed event at
   * or below it, so a bootstrap's rebuilt chain always ends at a signature. Never lowered.
   */
  signedFloor(floor: VersionVector): VersionVector {
    this.signOwnTip()
    return signedFloor(this.#p.view, floor, this.inbox.owedFrom())
  }

  /**
   * Raises the compaction base to `floor` (see {@link signedFloor}: clamped, and lowered to
   * signed events) and returns the origins whose base moved. The caller must already have
   * written document snapshots covering every event up to the new base: from here on those
   * events may be deleted ({@link deleteBelowBase}, which keeps their envelopes) and are
   * refused to peers with BELOW_FLOOR.
   */
  raiseBase(floor: VersionVector): string[] {
    this.#p.assertUsable()
    // Inside an application's transaction the base would be a savepoint it can still roll
    // back after the in-memory base moved (and deleteBelowBase deleted up to it).
    this.#p.assertOutsideTransaction()
    const moved = raiseBase(this.#p.view, this.signedFloor(floor))
    if (moved.length > 0) this.#p.chain.changed()
    return moved
  }

  /**
   * Deletes up to `limit` stored events at or below their origin's compaction base, in one
   * transaction, keeping each one's envelope (see {@link FoldedLog}); returns how many went.
   * Call until it returns less than `limit`. Each event is re-hashed first: a corrupted one
   * is CORRUPTION, never folded into evidence.
   */
  deleteBelowBase(limit = 10_000): number {
    this.#p.assertUsable()
    if (!Number.isSafeInteger(limit) || limit < 0)
      throw new DruError('INVALID_ARGUMENT', `deleteBelowBase's limit must be a whole number of events (got ${limit})`)
    // A rolled-back delete would leave the document index without positions the log still holds.
    this.#p.assertOutsideTransaction()
    // Positions are never reused: the highest one given is kept before the newest rows may go.
    return deleteBelowBase(this.#p.view, limit, () => this.setMeta(MetaKey.LSN_HIGH, this.lastLsn()))
  }

  /** Folded envelopes of `origin` from `fromSeq` on, in seq order (evidence for a bootstrap). */
  folded(origin: string, fromSeq: number, limit: number): FoldedEnvelope[] {
    return this.#p.folded.range(origin, fromSeq, limit)
  }

  /**
   * sha256 (hex) of every change of `docId` compaction folded away: the changes a snapshot
   * may hold that the log proves by their envelopes (for rebuilding a document in a repair).
   */
  foldedChangeHashes(docId: string): Set<string> {
    return this.#p.folded.changeHashesOf(docId)
  }

  /** Stages a document snapshot's change bytes for a bootstrap in progress (idempotent). */
  stageChanges(docId: string, changes: readonly Uint8Array[]): void {
    this.#p.assertUsable()
    this.db.transaction(() => this.#p.folded.stage(docId, changes)).immediate()
  }

  /**
   * Rebuilds folded events from envelopes and staged changes, each origin's run chained from
   * what this log holds (envelopes we already hold are skipped; a hole stops that origin).
   * The result is checked and stored like any remote batch: {@link ingest}.
   */
  rebuildFolded(envelopes: readonly FoldedEnvelope[]): DruEvent[] {
    this.#p.assertUsable()
    return this.#p.folded.rebuild(envelopes, (origin) => this.#p.chain.heads.get(origin))
  }

  /** Drops the staged change bytes of a bootstrap. */
  clearStage(): void {
    if (this.#p.closed) return
    this.#p.folded.clearStage()
  }

  // ---- peers --------------------------------------------------------------------------

  /** Records what a peer has durably acknowledged. Merged by max, so it never regresses. */
  recordPeerAck(peerId: string, acked: VersionVector, at = this.#p.now()): VersionVector {
    this.#p.assertUsable()
    return this.#p.peers.recordAck(peerId, acked, at)
  }

  /** Records a peer's address and connection state. */
  recordPeer(peerId: string, fields: { url?: string | null; state?: string | null; lastSeen?: number | null }): void {
    this.#p.assertUsable()
    this.#p.peers.record(peerId, fields)
  }

  peer(peerId: string): PeerRecord | undefined {
    return this.#p.peers.get(peerId)
  }

  peers(): PeerRecord[] {
    return this.#p.peers.all()
  }

  // ---- meta ---------------------------------------------------------------------------

  /** Reads a `meta` value (see {@link MetaKey} for the keys in use). */
  getMeta(key: MetaKey): unknown {
    return this.#p.meta.get(key)
  }

  setMeta(key: MetaKey, value: string | number | null): void {
    this.#p.meta.set(key, value)
  }

  /**
   * Applies another package's schema steps on its own track (`schema_version:<track>`),
   * each step with its version bump in one transaction.
   */
  migrate(track: string, steps: ReadonlyArray<(db: Database.Database) => void>): void {
    this.#p.assertUsable()
    migrate(this.db, steps, `schema_version:${track}`)
  }

  /** Closes the database (releasing the file lock). Idempotent. */
  close(): void {
    this.#p.close()
  }

  get closed(): boolean {
    return this.#p.closed
  }

  // ---- positions for derived state (documents asks these instead of reading `events`) ----

  docIdsAfter(afterDocId: string, limit: number): string[] {
    return this.#p.derivedReads.docIdsAfter(afterDocId, limit)
  }

  docsChangedAfter(afterLsn: number, toLsn: number, limit: number): Array<{ lsn: number; docId: string }> {
    return this.#p.derivedReads.docsChangedAfter(afterLsn, toLsn, limit)
  }

  eventSeqsForDoc(docId: string, afterLsn: number): Array<{ origin: string; seq: number }> {
    return this.#p.derivedReads.eventSeqsForDoc(docId, afterLsn)
  }

  eventCountForDoc(docId: string, origin: string): number | undefined {
    return this.#p.derivedReads.eventCountForDoc(docId, origin)
  }
}
