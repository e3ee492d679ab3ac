import Database from 'better-sqlite3'
import {
  MAX_CHANGE_BYTES,
  DruError,
  GENESIS_HASH,
  HlcClock,
  decodeHlc,
  encodeHlc,
  eventHashVerified,
  formatOrigin,
  normalizeVv,
  parseDocId,
  retiredSummary,
  sealEvent,
  validateBatch,
  compareHlc,
  classifyArrival,
  type CommitListener,
  type CommitPhase,
  type CommitSource,
  type CompactionBase,
  type DruEvent,
  type DruId,
  type Fingerprint,
  type FoldedEnvelope,
  type Hlc,
  type IngestResult,
  type LogSummary,
  type Origin,
  type PeerBook,
  type PeerRecord,
  type ReplicaLog,
  type StreamOptions,
  type VersionVector,
  type WallClock,
} from '@dru/core'
import { FoldedLog } from './folded-log.js'
import { Inbox } from './inbox.js'
import type { InboxHandler, InboxHandlerOptions } from './inbox-types.js'
import { inboxPolicy } from './inbox-policy.js'
import { MetaKey, MetaTable } from './meta.js'
import { migrate } from './migrations.js'
import { openDatabase } from './open-store.js'
import type {
  Durability,
  IngestValidator,
  OpenStoreOptions,
  SkewPolicy,
  StoreTx,
  StoringValidator,
} from './store-options.js'
import { PeerTable } from './peer-book.js'
import { DerivedLogReads, eventsForDoc, eventsMissing, verifyLog, type VerifyProgress } from './log-reader.js'
import { deleteBelowBase, raiseBase, signedFloor, type BaseView } from './log-base.js'
import { cleanCloseToken, openIdentity } from './identity.js'
import { mapSqliteError, storageError } from './sqlite-errors.js'
import { prepareLogStatements, rowToEvent, type EventRow, type Head, type LogStatements } from './statements.js'
import { Dictionary, decodeStoredHash, encodeStoredHlc } from './stored-form.js'
import { DocIndex } from './doc-index.js'
import { DeferredSigner, type SignedCommit } from './deferred-signing.js'
import { LogWriter } from './log-writer.js'

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
 * The append-only event log of one DRU on SQLite: a facade over single-job modules —
 * open-store (opening, locking, pragmas), identity (who this process writes as),
 * statements (SQL and rows), log-reader (streaming, verification, derived reads), log-base
 * (compaction base), peer-book, inbox (handlers that fail), meta. What stays here, and why
 * this file is longer than the others: the two commit paths (`transact` for local writes,
 * `ingest` for remote batches) and the in-memory state they must update together with the
 * database — chain heads, the next position, the clock, the commit listeners — which the
 * data-path rebuild (commit-granular log) is to replace rather than move.
 *
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
  #clock: HlcClock
  readonly #maxSkewMs: number | undefined
  #openedClean = false
  #isNew = false
  #previousOrigin: Origin | undefined
  readonly skewPolicy: SkewPolicy
  #origin: Origin
  #incarnation: number
  #heads = new Map<string, Head>()
  /** Next local position; assigned explicitly so that deleting rows never lets SQLite reuse one. */
  #nextLsn = 1
  /** Per origin, the compacted prefix: events up to `seq` may be gone from `events`. */
  #base = new Map<string, Head>()
  /** Application handlers, their owed events, retries and dead letters. */
  readonly inbox: Inbox
  #validators: IngestValidator[] = []
  #storingValidators: StoringValidator[] = []
  readonly #listeners: Record<CommitPhase, CommitListener[]> = { derive: [], notify: [] }
  /** Bumped whenever a head or base changes: the retired summary is cached against it. */
  #version = 0
  #retiredCache: { version: number; summary: LogSummary['retired'] } | undefined
  #inTransaction = false
  #closed = false
  #skewed = 0
  readonly #now: WallClock
  /** Signs this DRU's own events, a commit's tip soon after it (see deferred-signing.ts). */
  readonly #signer: DeferredSigner | undefined
  readonly #onListenerError: (err: unknown) => void
  readonly #stmt: LogStatements
  /** Writes the commit paths' rows, several per statement (see log-writer.ts). */
  readonly #writer: LogWriter
  readonly #meta: MetaTable
  readonly #peers: PeerTable
  readonly #folded: FoldedLog
  /** Integer ids of origins and documents in storage (dictionary tables). */
  readonly #originIds: Dictionary
  readonly #docIds: Dictionary
  /** Which events each document has (see doc-index.ts). */
  readonly #docIndex: DocIndex
  readonly #random: (() => number) | undefined
  #inspect = false
  /** The store's state as the readers (log-reader.ts) see it. */
  readonly #view: BaseView

  private constructor(db: Database.Database, options: OpenStoreOptions, druId: DruId) {
    this.db = db
    this.druId = druId
    this.path = options.path
    this.durability = options.durability ?? 'machine'
    this.skewPolicy = options.skewPolicy ?? 'reject'
    this.#now = options.now ?? Date.now
    this.#onListenerError = options.onListenerError ?? ((err) => console.error('dru: commit listener failed', err))
    this.#stmt = prepareLogStatements(db)
    this.#writer = new LogWriter(db)
    if (options.sign) {
      const storeSig = db.prepare(
        'update log set sig = ? where origin_id = (select id from origin_ids where origin = ?) and seq = ?',
      )
      this.#signer = new DeferredSigner({
        sign: options.sign,
        store: (origin, seq, sig) => {
          try {
            storeSig.run(sig, origin, seq)
          } catch (err) {
            throw storageError(err)
          }
        },
        onError: this.#onListenerError,
        canWrite: () => !this.#closed && !this.db.inTransaction,
      })
    }
    this.#meta = new MetaTable(db)
    this.#peers = new PeerTable(this.#stmt)
    this.#folded = new FoldedLog(db)
    this.#originIds = new Dictionary(db, 'origin_ids', 'origin')
    this.#docIds = new Dictionary(db, 'doc_ids', 'doc_id')
    this.#docIndex = new DocIndex(db, this.#meta, options.docIndexMergeEvery)
    this.#random = options.random
    this.#maxSkewMs = options.maxClockSkewMs
    let highWater: Hlc | undefined
    for (const row of this.#stmt.allHeads.all() as Array<{ origin: string } & Head>) {
      this.#heads.set(row.origin, { seq: row.seq, hash: row.hash, hlc: row.hlc })
      const h = decodeHlc(row.hlc)
      if (!highWater || compareHlc(h, highWater) > 0) highWater = h
    }
    // The marker is read before the new identity replaces the incarnation it names.
    this.#inspect = options.inspect === true
    const identity = openIdentity({
      db,
      meta: this.#meta,
      druId,
      path: this.path,
      heads: this.#heads,
      random: this.#random,
      inspect: this.#inspect,
    })
    this.#openedClean = identity.openedClean
    this.#isNew = identity.isNew
    this.#previousOrigin = identity.previousOrigin
    this.#incarnation = identity.incarnation
    this.#origin = formatOrigin(druId, this.#incarnation)
    const stored = (this.#stmt.lastLsn.get() as { lsn: number | null }).lsn ?? 0
    this.#nextLsn = Math.max(stored, Number(this.getMeta(MetaKey.LSN_HIGH) ?? 0)) + 1
    for (const row of this.#stmt.allBase.all() as Array<{ origin: string } & Head>) {
      this.#base.set(row.origin, { seq: row.seq, hash: row.hash, hlc: row.hlc })
    }
    this.#clock = this.#makeClock(highWater)
    this.#view = {
      db,
      stmt: this.#stmt,
      docIndex: this.#docIndex,
      heads: this.#heads,
      base: this.#base,
      folded: this.#folded,
      closed: () => this.#closed,
      vv: () => this.vv(),
      getEvent: (origin, seq) => this.getEvent(origin, seq),
    }
    this.inbox = new Inbox(
      { db, now: this.#now, getEvent: (o, s) => this.getEvent(o, s), transaction: (fn) => this.#exclusive(fn) },
      inboxPolicy(options.inbox),
    )
  }

  #makeClock(highWater: Hlc | undefined): HlcClock {
    return new HlcClock({
      node: this.#origin,
      now: this.#now,
      ...(this.#maxSkewMs === undefined ? {} : { maxSkewMs: this.#maxSkewMs }),
      ...(highWater ? { highWater: { ...highWater, node: this.#origin } } : {}),
    })
  }

  /** The hybrid logical clock stamping local events (its node is the current origin). */
  get clock(): HlcClock {
    return this.#clock
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
    return this.#origin
  }

  get incarnation(): number {
    return this.#incarnation
  }

  /** The origin the previous process that opened this file wrote as (undefined for a new file). */
  get previousOrigin(): Origin | undefined {
    return this.#previousOrigin
  }

  /**
   * True when the previous process closed this file cleanly and the log still ends where it
   * ended then; false after a crash, for a new file, or for a live copy. Reported only: a
   * file copied after a clean stop carries the marker too, so every open takes a fresh
   * incarnation whatever this says.
   */
  get openedClean(): boolean {
    return this.#openedClean
  }

  /** True when this open created the database (no earlier identity was stored). */
  get isNew(): boolean {
    return this.#isNew
  }

  /** Remote events stored although their HLC was beyond the skew bound (skewPolicy 'tolerate'). */
  get skewedEvents(): number {
    return this.#skewed
  }

  // ---- outbox -------------------------------------------------------------------------

  /**
   * Runs `fn` in one SQLite transaction. Everything it does through `tx.db` and every
   * event it appends commit together, or (if it throws) not at all; a failed or empty
   * transaction consumes no seq. `fn` must be synchronous.
   */
  transact<T>(fn: (tx: StoreTx) => T): { result: T; events: DruEvent[] } {
    this.#assertUsable()
    const pending: DruEvent[] = []
    const head = this.#heads.get(this.#origin)
    let seq = head?.seq ?? 0
    let prev = head?.hash ?? GENESIS_HASH
    let open = true
    let signed: SignedCommit | undefined
    const tx: StoreTx = {
      db: this.db,
      append: (docId, change) => {
        // A handle kept past its transaction (an async continuation) must not append to nothing.
        if (!open)
          throw new DruError(
            'INVALID_ARGUMENT',
            'this transaction has ended: its tx cannot be used after transact() returned',
          )
        parseDocId(docId)
        if (!(change instanceof Uint8Array)) throw new DruError('INVALID_ARGUMENT', 'change must be a Uint8Array')
        if (change.byteLength > MAX_CHANGE_BYTES) {
          throw new DruError(
            'INVALID_ARGUMENT',
            `change for ${docId} is ${change.byteLength} bytes; the limit is ${MAX_CHANGE_BYTES}`,
          )
        }
        // Built here from checked parts, so it skips validateEvent (a hot path).
        const event = sealEvent({
          origin: this.#origin,
          seq: seq + 1,
          hlc: encodeHlc(this.clock.tick()),
          docId,
          change,
          prev,
        })
        seq = event.seq
        prev = event.hash
        pending.push(event)
        return event
      },
    }
    const run = this.db.transaction(() => {
      const result = fn(tx)
      if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
        // Its continuation will find the transaction ended; that failure is ours to absorb.
        ;(result as unknown as PromiseLike<unknown>).then(undefined, () => undefined)
        throw new DruError(
          'ASYNC_CHANGE',
          'transact() callbacks must be synchronous (SQLite transactions cannot span an await); nothing was committed',
        )
      }
      if (pending.length > 0) {
        // The commit's tip is signed soon after it, with every commit before it (deferred-signing.ts).
        if (this.#signer) {
          signed = this.#signer.plan(pending)
          for (let i = 0; i < pending.length; i++) pending[i] = signed.events[i]!
        }
        const at = this.#now()
        for (const e of pending) this.#insert(e, at)
        this.#writer.flush()
        const top = pending[pending.length - 1]!
        this.#stmt.upsertHead.run(top.origin, top.seq, top.hash, top.hlc)
      }
      return result
    })
    let result: T
    try {
      result = this.#commit(run)
    } finally {
      open = false
    }
    if (pending.length > 0) {
      const top = pending[pending.length - 1]!
      this.#heads.set(this.#origin, { seq: top.seq, hash: top.hash, hlc: top.hlc })
      this.#version++
      if (signed) this.#signer!.committed(signed)
      this.#notify(pending, 'local')
    }
    return { result, events: pending }
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
    const list = this.#listeners[options.phase ?? 'notify']
    list.push(listener)
    return () => {
      const i = list.indexOf(listener)
      if (i >= 0) list.splice(i, 1)
    }
  }

  /**
   * Registers a check that runs on every remote batch after its hashes are verified and
   * before anything is stored; a throw refuses the whole batch (nothing stored).
   */
  addValidator(validator: IngestValidator): () => void {
    this.#validators.push(validator)
    return () => {
      this.#validators = this.#validators.filter((v) => v !== validator)
    }
  }

  /** Registers a {@link StoringValidator}: runs inside each remote batch's transaction, on the new events. */
  addStoringValidator(validator: StoringValidator): () => void {
    this.#storingValidators.push(validator)
    return () => {
      this.#storingValidators = this.#storingValidators.filter((v) => v !== validator)
    }
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
    this.#assertUsable()
    if (!Array.isArray(batch)) throw new DruError('INVALID_ARGUMENT', 'ingest() takes an array of events')
    const events = validateBatch(batch)
    const clockErrors: DruEvent[] = []
    for (const e of events) {
      if (!eventHashVerified(e)) {
        throw new DruError('HASH_MISMATCH', `${e.origin}#${e.seq} does not match its hash`, {
          details: { origin: e.origin, seq: e.seq },
        })
      }
      try {
        this.clock.check(decodeHlc(e.hlc))
      } catch (err) {
        if (this.skewPolicy === 'reject') throw err
        clockErrors.push(e)
      }
      // Only this process writes its current origin: anything of it beyond our head came from
      // someone holding our key, and storing it would fork our next local write.
      if (e.origin === this.#origin && e.seq > (this.#heads.get(this.#origin)?.seq ?? 0)) {
        throw new DruError(
          'FORK',
          `${e.origin}#${e.seq} is this process's own origin beyond its head: another writer holds its key`,
          {
            details: { origin: e.origin, seq: e.seq },
          },
        )
      }
    }
    for (const validate of this.#validators) validate(events)
    const sorted = [...events].sort((a, b) => (a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : a.seq - b.seq))

    // Each origin's newest stored event is its new head (an object per origin, not per event).
    const newHeads = new Map<string, DruEvent>()
    const stored: DruEvent[] = []
    let duplicates = 0
    const handlers = this.inbox.handlers().length > 0
    const run = this.db.transaction(() => {
      const at = this.#now()
      for (const e of sorted) {
        const head = newHeads.get(e.origin) ?? this.#heads.get(e.origin) ?? NO_HEAD
        const base = this.#base.get(e.origin)
        // Below the compaction base the event may be gone: only its boundary hash is known.
        const heldHashAt = (seq: number) => (seq === base?.seq ? base.hash : this.#storedHash(e.origin, seq))
        if (classifyArrival(e, head, heldHashAt) === 'duplicate') {
          duplicates++
          continue
        }
        const lsn = this.#insert(e, at)
        // A handler may read the log: it sees its event stored, as it would without the writer's queue.
        if (handlers) {
          this.#writer.flush()
          this.inbox.deliver(e, lsn, at)
        }
        newHeads.set(e.origin, e)
        stored.push(e)
      }
      this.#writer.flush()
      if (stored.length > 0) for (const validate of this.#storingValidators) validate(stored, { db: this.db })
      for (const [origin, h] of newHeads) this.#stmt.upsertHead.run(origin, h.seq, h.hash, h.hlc)
    })
    this.#commit(run)
    // A copy of the head's fields: the event's change bytes are not kept alive by #heads.
    for (const [origin, h] of newHeads) this.#heads.set(origin, { seq: h.seq, hash: h.hash, hlc: h.hlc })
    if (newHeads.size > 0) this.#version++
    // Keyed by position (a repeat of a skewed event is skewed too); no keys built when nothing was skewed.
    const skewedAt = clockErrors.length > 0 ? new Set(clockErrors.map((e) => `${e.origin}#${e.seq}`)) : undefined
    let skewed = 0
    // The clock folds in only the newest timestamp stored: receive keeps the greatest it has
    // seen, so one receive of the maximum leaves it where a receive of each would (an HLC's
    // text order is its order; test/hlc-fold.test.ts in core pins both), without decoding each.
    let newest: string | undefined
    for (const e of stored) {
      if (skewedAt?.has(`${e.origin}#${e.seq}`)) {
        this.#skewed++
        skewed++
      } else if (newest === undefined || e.hlc > newest) newest = e.hlc
    }
    // The batch is committed: a wall clock stepped back since the check must not turn that
    // into a thrown CLOCK_SKEW (the caller would think nothing was stored, and nobody would be told).
    if (newest !== undefined) this.clock.receiveStored(decodeHlc(newest))
    if (stored.length > 0) this.#notify(stored, 'remote')
    return { stored, duplicates, skewed }
  }

  // ---- reads --------------------------------------------------------------------------

  /** Per origin, the highest contiguous seq held. */
  vv(): VersionVector {
    const out: Record<string, number> = {}
    for (const [origin, h] of this.#heads) out[origin] = h.seq
    return normalizeVv(out)
  }

  /** The version vector plus each origin's chain head: equal fingerprints mean equal logs. */
  fingerprint(): Fingerprint {
    const heads: Record<string, string> = {}
    for (const origin of [...this.#heads.keys()].sort()) heads[origin] = this.#heads.get(origin)!.hash
    return { vv: this.vv(), heads }
  }

  /**
   * What peers compare: the fingerprint of the live origins, plus a summary of the retired
   * ones (every event folded away by compaction, head equal to base), so a DRU that went
   * through a thousand incarnations still exchanges a small summary once they are compacted.
   */
  summary(): LogSummary {
    const heads: Record<string, string> = {}
    const vv: Record<string, number> = {}
    for (const origin of [...this.#heads.keys()].sort()) {
      if (this.#isRetired(origin)) continue
      const h = this.#heads.get(origin)!
      vv[origin] = h.seq
      heads[origin] = h.hash
    }
    if (this.#retiredCache?.version !== this.#version) {
      this.#retiredCache = {
        version: this.#version,
        summary: retiredSummary(this.retired().map((r) => [r.origin, r.seq, r.hash] as const)),
      }
    }
    return { live: { vv, heads }, retired: this.#retiredCache.summary }
  }

  /** Every retired origin: all its events folded into snapshots (head equal to its base). */
  retired(): Array<{ origin: string; seq: number; hash: string }> {
    const out: Array<{ origin: string; seq: number; hash: string }> = []
    for (const [origin, h] of this.#heads) if (this.#isRetired(origin)) out.push({ origin, seq: h.seq, hash: h.hash })
    return out.sort((a, b) => (a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0))
  }

  /** The hash held at `(origin, seq)`: the head, the compaction base, or a stored (verified) event. */
  hashAt(origin: string, seq: number): string | undefined {
    const head = this.#heads.get(origin)
    if (!head || seq > head.seq || seq < 1) return undefined
    if (seq === head.seq) return head.hash
    const base = this.#base.get(origin)
    if (base?.seq === seq) return base.hash
    return this.getEvent(origin, seq)?.hash
  }

  /** The chain head of one origin, or undefined when we hold none of its events. */
  head(origin: string): { seq: number; hash: string } | undefined {
    const h = this.#heads.get(origin)
    return h ? { seq: h.seq, hash: h.hash } : undefined
  }

  /** Reads one event, verifying its hash (CORRUPTION if the stored bytes changed). */
  getEvent(origin: string, seq: number): DruEvent | undefined {
    const row = this.#stmt.getEvent.get(origin, seq) as EventRow | undefined
    return row ? rowToEvent(row) : undefined
  }

  /** Number of events stored (all origins). */
  count(): number {
    return (this.#stmt.count.get() as { n: number }).n
  }

  /**
   * Streams, in bounded batches, the events this log holds that a peer with vector
   * `remote` lacks: per origin in seq order. Rows are fetched page by page (no open
   * cursor is held between batches), so memory stays bounded by the options whatever
   * the backlog, and local writes may continue between batches. Every event is
   * re-hashed and its chain link checked on the way out.
   */
  eventsMissing(remote: VersionVector, options: StreamOptions = {}): Generator<DruEvent[], void, undefined> {
    const pages = eventsMissing(this.#view, remote, options)
    // Every page is read after our own tip is signed, so no frame can end at an unsigned own event.
    return this.#signer ? signedFirst(pages, () => this.signOwnTip()) : pages
  }

  /**
   * Signs this DRU's newest own event now if a commit left it unsigned (commits are signed
   * shortly after they are made, see deferred-signing.ts). Anything that hands our own events
   * to someone who checks signatures calls this first; `eventsMissing` does it for every page.
   * A no-op without a signer, inside a transaction, or when nothing is pending.
   */
  signOwnTip(): void {
    this.#signer?.flush()
  }

  /** True when our newest own event still waits for its signature. */
  get ownTipUnsigned(): boolean {
    return this.#signer?.pending ?? false
  }

  /** Events of one document stored after local position `afterLsn`, in arrival order, verified. */
  eventsForDoc(docId: string, afterLsn = 0, pageSize = 512): Generator<DruEvent & { lsn: number }, void, undefined> {
    return eventsForDoc(this.#view, docId, afterLsn, pageSize)
  }

  /**
   * The highest local position given to an event so far (0 when none). Positions are never
   * reused, even after compaction deleted the newest rows: snapshots record the position
   * they cover, and a reused one would hide later events from them.
   */
  lastLsn(): number {
    return this.#nextLsn - 1
  }

  /**
   * Walks every stored event in each origin's order, re-hashing it and checking its chain
   * link and that the origin's head matches. Throws CORRUPTION naming the first bad
   * event. Reports progress every `progressEvery` events.
   */
  verifyLog(onProgress?: (p: VerifyProgress) => void, progressEvery = 10_000): { events: number; origins: number } {
    return verifyLog(this.#view, onProgress, progressEvery)
  }

  // ---- compaction -----------------------------------------------------------------------

  /**
   * Per origin, the highest seq folded into document snapshots (events up to it may no
   * longer be stored), with that event's hash and HLC. Empty until the first compaction.
   */
  base(): Record<string, CompactionBase> {
    const out: Record<string, CompactionBase> = {}
    for (const origin of [...this.#base.keys()].sort()) out[origin] = { ...this.#base.get(origin)! }
    return out
  }

  /** The compaction base as a version vector. */
  baseVv(): VersionVector {
    const out: Record<string, number> = {}
    for (const [origin, b] of this.#base) out[origin] = b.seq
    return normalizeVv(out)
  }

  /**
   * Where the base of each origin may go for a compaction floor: the floor clamped to what
   * we hold and, for an origin whose events are signed, lowered to its last signed event at
   * or below it, so a bootstrap's rebuilt chain always ends at a signature. Never lowered.
   */
  signedFloor(floor: VersionVector): VersionVector {
    this.signOwnTip()
    return signedFloor(this.#view, floor, this.inbox.owedFrom())
  }

  /**
   * Raises the compaction base to `floor` (see {@link signedFloor}: clamped, and lowered to
   * signed events) and returns the origins whose base moved. The caller must already have
   * written document snapshots covering every event up to the new base: from here on those
   * events may be deleted ({@link deleteBelowBase}, which keeps their envelopes) and are
   * refused to peers with BELOW_FLOOR.
   */
  raiseBase(floor: VersionVector): string[] {
    this.#assertUsable()
    const moved = raiseBase(this.#view, this.signedFloor(floor))
    if (moved.length > 0) this.#version++
    return moved
  }

  /**
   * Deletes up to `limit` stored events at or below their origin's compaction base, in one
   * transaction, keeping each one's envelope (see {@link FoldedLog}); returns how many went.
   * Call until it returns less than `limit`. Each event is re-hashed first: a corrupted one
   * is CORRUPTION, never folded into evidence.
   */
  deleteBelowBase(limit = 10_000): number {
    this.#assertUsable()
    // Positions are never reused: the highest one given is kept before the newest rows may go.
    return deleteBelowBase(this.#view, limit, () => this.setMeta(MetaKey.LSN_HIGH, this.#nextLsn - 1))
  }

  /** Folded envelopes of `origin` from `fromSeq` on, in seq order (evidence for a bootstrap). */
  folded(origin: string, fromSeq: number, limit: number): FoldedEnvelope[] {
    return this.#folded.range(origin, fromSeq, limit)
  }

  /**
   * sha256 (hex) of every change of `docId` compaction folded away: the changes a snapshot
   * may hold that the log proves by their envelopes (for rebuilding a document in a repair).
   */
  foldedChangeHashes(docId: string): Set<string> {
    return this.#folded.changeHashesOf(docId)
  }

  /** Stages a document snapshot's change bytes for a bootstrap in progress (idempotent). */
  stageChanges(docId: string, changes: readonly Uint8Array[]): void {
    this.#assertUsable()
    this.db.transaction(() => this.#folded.stage(docId, changes)).immediate()
  }

  /**
   * Rebuilds folded events from envelopes and staged changes, each origin's run chained from
   * what this log holds (envelopes we already hold are skipped; a hole stops that origin).
   * The result is checked and stored like any remote batch: {@link ingest}.
   */
  rebuildFolded(envelopes: readonly FoldedEnvelope[]): DruEvent[] {
    this.#assertUsable()
    return this.#folded.rebuild(envelopes, (origin) => this.#heads.get(origin))
  }

  /** Drops the staged change bytes of a bootstrap. */
  clearStage(): void {
    if (this.#closed) return
    this.#folded.clearStage()
  }

  // ---- peers --------------------------------------------------------------------------

  /** Records what a peer has durably acknowledged. Merged by max, so it never regresses. */
  recordPeerAck(peerId: string, acked: VersionVector, at = this.#now()): VersionVector {
    this.#assertUsable()
    return this.#peers.recordAck(peerId, acked, at)
  }

  /** Records a peer's address and connection state. */
  recordPeer(peerId: string, fields: { url?: string | null; state?: string | null; lastSeen?: number | null }): void {
    this.#assertUsable()
    this.#peers.record(peerId, fields)
  }

  peer(peerId: string): PeerRecord | undefined {
    return this.#peers.get(peerId)
  }

  peers(): PeerRecord[] {
    return this.#peers.all()
  }

  // ---- meta ---------------------------------------------------------------------------

  /** Reads a `meta` value (see {@link MetaKey} for the keys in use). */
  getMeta(key: MetaKey): unknown {
    return this.#meta.get(key)
  }

  setMeta(key: MetaKey, value: string | number | null): void {
    this.#meta.set(key, value)
  }

  /**
   * Applies another package's schema steps on its own track (`schema_version:<track>`),
   * each step with its version bump in one transaction.
   */
  migrate(track: string, steps: ReadonlyArray<(db: Database.Database) => void>): void {
    this.#assertUsable()
    migrate(this.db, steps, `schema_version:${track}`)
  }

  /** Closes the database (releasing the file lock). Idempotent. */
  close(): void {
    if (this.#closed) return
    try {
      this.#signer?.stop()
      this.signOwnTip()
    } catch (err) {
      // Left for the next open, which signs a tail left unsigned (signOwnHistory).
      this.#onListenerError(err)
    }
    try {
      // Marks a clean stop (reported at the next open). An inspection leaves the old marker.
      if (!this.#inspect) this.setMeta(MetaKey.CLEAN_CLOSE, cleanCloseToken(this.#origin, this.#heads))
    } catch {
      // A full or failing disk must not prevent closing; the next open just sees no marker.
    }
    this.#closed = true
    this.db.close()
  }

  get closed(): boolean {
    return this.#closed
  }

  // ---- internals ----------------------------------------------------------------------

  /** Fully compacted: every event of the origin lives only in snapshots (and envelopes). */
  #isRetired(origin: string): boolean {
    const base = this.#base.get(origin)
    return base !== undefined && base.seq === this.#heads.get(origin)?.seq
  }

  /**
   * Queues one event's row at the next local position and returns that position; the caller
   * flushes the writer before the log is read inside the transaction and before it ends.
   */
  #insert(e: DruEvent, at: number): number {
    const lsn = this.#nextLsn++
    const hlc = encodeStoredHlc(e.hlc, e.origin)
    const originId = this.#originIds.idOf(e.origin)
    const doc = this.#docIds.idOf(e.docId)
    this.#writer.add({
      lsn,
      originId,
      seq: e.seq,
      doc,
      wall: hlc.wall,
      counter: hlc.counter,
      node: hlc.node,
      change: e.change,
      // Checked hex already (validateEvent for remote events, sealEvent for ours).
      prev: e.prev,
      hash: e.hash,
      sig: e.sig ?? null,
      at,
    })
    this.#docIndex.stored(doc, lsn, originId, e.docId)
    return lsn
  }

  /**
   * Runs a transaction that inserts events (local or remote): immediate, marked as open so
   * nothing nests, and on failure the positions it took are given back (its rows were
   * rolled back) and SQLite's error typed.
   */
  #commit<T>(run: Database.Transaction<() => T>): T {
    this.#inTransaction = true
    const lsnBefore = this.#nextLsn
    let result: T
    try {
      result = run.immediate()
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

  /** One immediate transaction of the store's own (the inbox's retries), guarded like transact(). */
  #exclusive<T>(fn: () => T): T {
    this.#assertUsable()
    this.#inTransaction = true
    try {
      return this.db.transaction(fn).immediate()
    } catch (err) {
      throw storageError(err)
    } finally {
      this.#inTransaction = false
    }
  }

  #storedHash(origin: string, seq: number): string | undefined {
    // Rows still queued would be invisible to the read.
    this.#writer.flush()
    const stored = this.#stmt.storedHash.get(origin, seq)
    // A stored hash that is not 32 bytes (a damaged row) still differs from any real hash.
    return stored === undefined ? undefined : (decodeStoredHash(stored) ?? 'damaged')
  }

  #notify(events: readonly DruEvent[], source: CommitSource): void {
    for (const listener of [...this.#listeners.derive, ...this.#listeners.notify]) {
      try {
        listener(events, source)
      } catch (err) {
        this.#onListenerError(err)
      }
    }
  }

  #assertUsable(): void {
    if (this.#closed) throw new DruError('CLOSED', 'the event store is closed')
    if (this.#inspect)
      throw new DruError('INVALID_ARGUMENT', 'this database was opened for inspection: it takes no writes')
    if (this.#inTransaction) {
      throw new DruError(
        'INVALID_ARGUMENT',
        'nested transactions are not supported: call tx.append() inside the open transact()',
      )
    }
  }

  // ---- positions for derived state (documents asks these instead of reading `events`) ----

  /** Reads for state derived from the log, prepared on first use (see {@link DerivedLogReads}). */
  #derived: DerivedLogReads | undefined

  get #reads(): DerivedLogReads {
    this.#derived ??= new DerivedLogReads(this.db, this.#view)
    return this.#derived
  }

  docIdsAfter(afterDocId: string, limit: number): string[] {
    return this.#reads.docIdsAfter(afterDocId, limit)
  }

  docsChangedAfter(afterLsn: number, toLsn: number, limit: number): Array<{ lsn: number; docId: string }> {
    return this.#reads.docsChangedAfter(afterLsn, toLsn, limit)
  }

  eventSeqsForDoc(docId: string, afterLsn: number): Array<{ origin: string; seq: number }> {
    return this.#reads.eventSeqsForDoc(docId, afterLsn)
  }

  eventCountForDoc(docId: string, origin: string): number | undefined {
    return this.#reads.eventCountForDoc(docId, origin)
  }
}

/** The head of an origin we hold nothing of. */
const NO_HEAD: Head = Object.freeze({ seq: 0, hash: GENESIS_HASH, hlc: '' })

/** Runs `before` ahead of every page `pages` yields (a lazy generator reads at each `next`). */
function* signedFirst<T>(pages: Generator<T, void, undefined>, before: () => void): Generator<T, void, undefined> {
  for (;;) {
    before()
    const next = pages.next()
    if (next.done) return
    yield next.value
  }
}
