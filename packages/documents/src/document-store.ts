/**
 * The facade of `@dru/documents`: Automerge documents materialised from an event log. It
 * holds no logic of its own beyond the transaction around local changes; each job lives in
 * one module:
 *
 * - doc-cache.ts: the hot documents (LRU by count and bytes), snapshot on eviction
 * - materializer.ts: loading from snapshot + log, queued remote apply, isolation
 *   (with tolerant-apply.ts, rejected-changes.ts, isolated-docs.ts)
 * - automerge-workarounds.ts: rebuilding a view Automerge 3.1 leaves stale
 * - local-change.ts: the write path (one transaction, a guarded change function)
 * - snapshot-store.ts: the `docs` table
 * - compaction.ts: folding events into snapshots, then deleting them from the log
 * - conflict-tracker.ts: recording and settling conflicts
 *   (with conflict-registry.ts, conflict-policy.ts, conflict-scan.ts)
 * - digest.ts: heads and state digests
 * - digest-index.ts: per-document digests and the Merkle tree `verify --deep` walks
 * - repair.ts: rebuilding a document from what its log proves
 */
import { DruError, parseDocId, type DruEvent, type VersionVector } from '@dru/core'
import { storageError, type EventStore, type StoreTx } from '@dru/store-sqlite'
import { ActorSeqs, checkChanges } from './change-validation.js'
import { plainValue } from './canonical.js'
import { compactDocuments, type CompactOptions, type CompactProgress, type CompactResult } from './compaction.js'
import type { Conflict, ConflictPolicy } from './conflict-policy.js'
import type { ConflictCounts } from './conflict-registry.js'
import { ConflictTracker } from './conflict-tracker.js'
import { clusterDigest, digestOf, headsOf, type DocumentDigest } from './digest.js'
import { BackgroundApply, type BackgroundApplyOptions } from './background-apply.js'
import { DocCache, type AnyDoc } from './doc-cache.js'
import { DigestIndex, type DigestEntry } from './digest-index.js'
import { IsolatedDocs, type IsolatedDocument } from './isolated-docs.js'
import { LocalWriter, type ChangeFn, type DocumentTx } from './local-change.js'
import type { CacheLimits } from './lru.js'
import { Materializer } from './materializer.js'
import { RejectedChanges, type RejectedChange } from './rejected-changes.js'
import { rebuildBase, type RebuildBase } from './repair.js'
import { DOCUMENT_MIGRATIONS } from './schema.js'
import { SnapshotStore, changesOfSnapshot, type DocSnapshot } from './snapshot-store.js'

/** How a {@link DocumentStore} caches, snapshots and settles conflicts. */
export interface DocumentStoreOptions {
  /** Bounds of the in-memory document cache. Default: 10,000 documents. */
  cache?: CacheLimits
  /** An evicted document with at least this many events since its snapshot gets a new one. Default 16. */
  snapshotAfter?: number
  /** How conflicts are settled; default `manual` here (openDru passes its own default, `keep-visible`). */
  conflictPolicy?: ConflictPolicy
  /** Clock for `detected_at`/`resolved_at`; default Date.now. */
  now?: () => number
  /** Errors from work after a commit (which cannot undo it). Default: console.error. */
  onError?: (err: unknown) => void
  /**
   * Remote changes queued on cached documents are applied in the background, in slices of
   * a few ms between I/O (background-apply.ts), instead of all on the next read. Default on;
   * `false` applies them only when a document is read, changed, snapshotted or its queue is long.
   */
  backgroundApply?: BackgroundApplyOptions | false
}

/** Listener for document updates: the ids touched by one commit and where the commit came from. */
export type UpdateListener = (docIds: readonly string[], source: 'local' | 'remote') => void

/** What {@link DocumentStore.repair} did to one document. */
export interface RepairResult extends RebuildBase {
  readonly docId: string
  /** The document's digest and heads before (its materialised state, recomputed then; digest `isolated` if it could not be read). */
  readonly before: DigestEntry | undefined
  readonly after: DigestEntry | undefined
}

/** The Merkle tree's root over every document's digest, as of a refresh. */
export interface DigestTreeState {
  /** Root hash, hex (64 zeros when there are no documents). */
  readonly root: string
  readonly documents: number
  /** Documents whose digest the refresh recomputed. */
  readonly recomputed: number
}

/** Cache and materialisation counters since the store was created (for /status and metrics). */
export interface DocumentStats {
  readonly cachedDocs: number
  readonly cachedBytes: number
  readonly loads: number
  readonly evictions: number
  readonly snapshotsWritten: number
  readonly remoteApplied: number
  /** Documents whose queued remote changes a background slice applied. */
  readonly backgroundApplied: number
}

/**
 * Automerge documents materialised from an {@link EventStore}.
 *
 * The log is the truth; everything here is derived from it — except, after
 * {@link DocumentStore.compact}, the snapshots that hold changes whose events left the log
 * (below its base), which are never rebuilt from scratch. Hot documents live in a bounded LRU
 * cache; a cold document loads from its snapshot (table `docs`) plus the events stored
 * after it. Local changes are made inside one store transaction with the event append,
 * so a document change and its event commit together. Remote events are applied after
 * their commit, grouped per document, one `applyChanges` per cached document per batch;
 * cold documents stay cold. Applying changes reports conflicting concurrent values, which
 * are recorded in the `conflicts` table and may be settled by a policy.
 *
 * Its commit listener runs in the store's `derive` phase: every notify listener (sync,
 * metrics, the network) sees the documents already up to date, whatever the order they
 * registered in.
 */
export class DocumentStore {
  readonly store: EventStore
  readonly #onError: (err: unknown) => void
  readonly #cache: DocCache
  readonly #snapshots: SnapshotStore
  readonly #isolated: IsolatedDocs
  readonly #rejected: RejectedChanges
  readonly #conflicts: ConflictTracker
  readonly #materializer: Materializer
  readonly #background: BackgroundApply | undefined
  readonly #digests: DigestIndex
  readonly #listeners: UpdateListener[] = []
  readonly #writer: LocalWriter
  readonly #unsubscribe: Array<() => void>

  constructor(store: EventStore, options: DocumentStoreOptions = {}) {
    this.store = store
    store.migrate('documents', DOCUMENT_MIGRATIONS)
    const now = options.now ?? Date.now
    const sink = options.onError ?? ((err) => console.error('dru documents:', err))
    // Work after a commit reaches SQLite too: its failures arrive typed (STORAGE_FULL, …).
    const onError = (this.#onError = (err) => sink(storageError(err)))
    this.#cache = new DocCache({
      limits: options.cache ?? { maxDocs: 10_000 },
      snapshotAfter: options.snapshotAfter ?? 16,
      snapshot: (docId, entry) => this.#materializer.writeSnapshot(docId, entry),
      onError,
    })
    this.#snapshots = new SnapshotStore(store, onError)
    this.#isolated = new IsolatedDocs(store, now)
    this.#rejected = new RejectedChanges(store, now)
    this.#conflicts = new ConflictTracker(store, {
      policy: options.conflictPolicy ?? 'manual',
      now,
      onError,
      isRejected: (e) => this.#rejected.has(e),
      writer: {
        transact: (fn) => this.transact((tx) => fn(tx.change)).result,
        cachedDoc: (docId) => this.#cache.peek(docId)?.doc,
        inTransaction: () => store.db.inTransaction || this.#writer.inTransaction,
      },
    })
    this.#materializer = new Materializer({
      store,
      cache: this.#cache,
      snapshots: this.#snapshots,
      isolated: this.#isolated,
      rejected: this.#rejected,
      conflicts: this.#conflicts,
      onError,
    })
    this.#background =
      options.backgroundApply === false
        ? undefined
        : new BackgroundApply(
            {
              peek: (docId) => this.#cache.peek(docId),
              materialize: (docId, entry) => this.#materializer.materialize(docId, entry),
              onError,
            },
            options.backgroundApply,
          )
    this.#digests = new DigestIndex(store, {
      digest: (docId) => this.digest(docId),
      docIds: () => this.docIds(),
      snapshot: (docId) => this.#snapshots.get(docId)?.bytes,
    })
    this.#snapshots.onSaved = (docId, bytes) => this.#digests.snapshotSaved(docId, bytes)
    this.#writer = new LocalWriter({
      store,
      cache: this.#cache,
      materializer: this.#materializer,
      afterChange: (docId, doc) => this.#conflicts.recheckLocal(docId, doc),
      now,
    })
    const seqs = new ActorSeqs(store)
    this.#unsubscribe = [
      // A change that is not a well-formed Automerge change of its origin never enters the log.
      store.addValidator(checkChanges),
      store.addStoringValidator(seqs.check),
      // Derived state: runs before any notify listener (sync, metrics), whatever the order they register in.
      store.onCommit((events, source) => this.#afterCommit(events, source), { phase: 'derive' }),
    ]
  }

  // ---- writes -------------------------------------------------------------------------

  /**
   * Runs `fn` in one store transaction: document changes made with `tx.change` and the
   * statements run on `tx.db` commit together. If anything throws, nothing is stored and
   * the documents touched are dropped from the cache (they reload from the log).
   */
  transact<T>(fn: (tx: DocumentTx) => T): { result: T; events: DruEvent[] } {
    return this.#writer.transact(fn)
  }

  /** Changes one document in its own transaction. Returns the event, or undefined if `fn` changed nothing. */
  change(docId: string, fn: ChangeFn): DruEvent | undefined {
    return this.transact((tx) => tx.change(docId, fn)).result
  }

  /**
   * Changes a document inside a store transaction the caller already holds (for callers
   * that use `EventStore.transact` directly). Prefer {@link transact}, which also undoes
   * the cached change if the transaction fails; here the caller must call
   * {@link evict} for `docId` if its transaction throws.
   */
  changeIn(tx: StoreTx, docId: string, fn: ChangeFn): DruEvent | undefined {
    return this.#writer.changeIn(tx, docId, fn)
  }

  // ---- reads --------------------------------------------------------------------------

  /** The document as plain JSON (keys sorted, counters as numbers), or undefined if it does not exist. */
  get(docId: string): unknown {
    const entry = this.#materializer.load(parseDocId(docId), true)
    return entry ? plainValue(entry.doc) : undefined
  }

  /**
   * The live Automerge document (read-only: change it through {@link change}). Loads it
   * into the cache. The object is valid until the document leaves the cache (its WASM
   * memory is then freed), so do not keep it across other calls; copy what you need.
   */
  doc(docId: string): AnyDoc | undefined {
    return this.#materializer.load(parseDocId(docId), true)?.doc
  }

  /** Sorted heads of a document ([] if it does not exist). Does not disturb the cache. */
  heads(docId: string): string[] {
    return this.#materializer.withDoc(docId, headsOf) ?? []
  }

  /** Heads, canonical JSON and their hash for one document; undefined if it does not exist. */
  digest(docId: string): DocumentDigest | undefined {
    return this.#materializer.withDoc(docId, (doc) => digestOf(docId, doc))
  }

  /** Every document id in the log (or only in a snapshot, once compacted), in order, read page by page. */
  docIds(pageSize = 512): Generator<string> {
    return this.#snapshots.docIds(pageSize)
  }

  /**
   * A digest over every document's state, streamed in doc id order: documents not in the
   * cache are loaded one at a time and dropped, so memory stays bounded. Two DRUs with
   * the same digest hold the same materialised state.
   */
  clusterDigest(): { digest: string; documents: number; isolated: number } {
    return clusterDigest(this.docIds(), (docId) => this.digest(docId))
  }

  // ---- the digest tree (verify --deep) and repair -----------------------------------------

  /**
   * Brings the per-document digests of every document changed since the last refresh up to
   * date (see digest-index.ts) and returns the tree's root. Cost: the changed documents, not
   * all of them (the first refresh of a database from before the tree digests every one).
   */
  refreshDigests(): DigestTreeState {
    const before = this.#digests.recomputed
    const tree = this.#digests.refresh()
    return { root: tree.root(), documents: this.#digests.documents(), recomputed: this.#digests.recomputed - before }
  }

  /** The hashes of the children of tree node `index` at `level` (< TREE_LEVELS), as of the last refresh. */
  digestTreeChildren(level: number, index: number): Uint8Array[] {
    return this.#digests.tree().children(level, index)
  }

  /** The documents of one leaf bucket with their digests and heads, as of the last refresh. */
  digestBucket(index: number): DigestEntry[] {
    return this.#digests.bucket(index)
  }

  /** True when the log or a snapshot knows the document (it may still be isolated). */
  exists(docId: string): boolean {
    const id = parseDocId(docId)
    return this.#snapshots.get(id) !== undefined || this.store.eventSeqsForDoc(id, 0).length > 0
  }

  /** One document's digest entry as of the last refresh (undefined: no such document then). */
  digestEntry(docId: string): DigestEntry | undefined {
    return this.#digests.entry(parseDocId(docId))
  }

  /**
   * Rebuilds one document from what its log proves (repair.ts): the cached state and the
   * snapshot are discarded, a base keeps only the folded changes the log's envelopes prove,
   * every event of the document in the log is replayed on top, and its digest is
   * recomputed. An isolated document is tried again. NOT_FOUND for a document neither the
   * log nor a snapshot knows; INVALID_ARGUMENT for a malformed id (nothing changes either way).
   */
  repair(docId: string): RepairResult {
    const id = parseDocId(docId)
    if (this.store.db.inTransaction) throw new DruError('INVALID_ARGUMENT', 'repair cannot run inside a transaction')
    if (!this.exists(id))
      throw new DruError('NOT_FOUND', `no document ${id} in the log or in a snapshot`, { details: { docId: id } })
    const before = this.#digests.recompute(id)
    let base: RebuildBase
    this.#cache.drop(id)
    this.store.db
      .transaction(() => {
        base = rebuildBase(this.store, this.#snapshots, id)
        this.#isolated.remove(id)
      })
      .immediate()
    const after = this.#digests.recompute(id)
    return { docId: id, before, after, ...base! }
  }

  // ---- compaction and bootstrap ---------------------------------------------------------

  /** Folds the events at or below `floor` into snapshots and deletes them from the log: see {@link compactDocuments}. */
  compact(floor: VersionVector, options: CompactOptions = {}): Generator<CompactProgress, CompactResult, undefined> {
    // The digests must have seen every event compaction deletes (they are found by log position).
    this.refreshDigests()
    return compactDocuments(
      this.store,
      {
        docIds: () => this.docIds(),
        // An isolated document's snapshot is no cover: every event of it stays.
        coveredLsn: (docId) => (this.#isolated.has(docId) ? 0 : this.#snapshots.coveredLsn(docId)),
        snapshotNow: (docId) => this.#materializer.snapshotNow(docId),
      },
      floor,
      options,
    )
  }

  /**
   * A page of stored snapshots in doc id order after `afterDocId`, about `maxBytes` long
   * (at least one), for bootstrapping a DRU below our compaction base. `next` is the id to
   * continue after, undefined at the end.
   */
  snapshotPage(afterDocId: string, maxBytes: number, limit = 256): { docs: DocSnapshot[]; next: string | undefined } {
    return this.#snapshots.page(afterDocId, maxBytes, limit)
  }

  /**
   * The change bytes a document snapshot carries (for a bootstrap, which rebuilds the folded
   * events from them and checks each against its signed hash chain). MALFORMED when the bytes
   * are not an Automerge document; nothing is stored here.
   */
  changesOf(docId: string, bytes: Uint8Array): Uint8Array[] {
    return changesOfSnapshot(docId, bytes)
  }

  // ---- cache and snapshots ------------------------------------------------------------

  /** Drops a document from the cache (writing a snapshot first if it is due). */
  evict(docId: string): void {
    this.#cache.evict(docId)
  }

  /** Writes a snapshot for every cached document with events since its last one. */
  flushSnapshots(): number {
    return this.#materializer.flush()
  }

  /** Empties the cache without writing snapshots (tests, memory pressure). */
  dropCache(): void {
    this.#cache.clear()
  }

  stats(): DocumentStats {
    const m = this.#materializer
    return {
      cachedDocs: this.#cache.size,
      cachedBytes: this.#cache.bytes,
      loads: m.loads,
      evictions: this.#cache.evictions,
      snapshotsWritten: this.#snapshots.written,
      remoteApplied: m.remoteApplied,
      backgroundApplied: this.#background?.applied ?? 0,
    }
  }

  isCached(docId: string): boolean {
    return this.#cache.has(docId)
  }

  // ---- conflicts ----------------------------------------------------------------------

  /** Conflicts, oldest first; by default only open ones. Cold documents that received remote changes are scanned first. */
  listConflicts(status: 'open' | 'resolved' | 'all' = 'open'): Conflict[] {
    this.scanConflicts()
    return this.#conflicts.list(status)
  }

  /** Open conflicts and resolved ones by who resolved them (cold documents are not scanned first). */
  conflictCounts(): ConflictCounts {
    return this.#conflicts.counts()
  }

  getConflict(id: number): Conflict | undefined {
    return this.#conflicts.get(id)
  }

  /**
   * Settles a conflict by writing `value` at its path: an ordinary change, so it
   * replicates and every DRU's record clears when the change reaches it.
   */
  resolveConflict(id: number, value: unknown): DruEvent | undefined {
    return this.#conflicts.resolve(id, value)
  }

  /**
   * Checks for conflicts every document that received events since the last scan and was
   * not in the cache when they arrived (cached ones are checked as changes are applied).
   * Memory stays bounded however many documents changed. Returns how many were loaded.
   */
  scanConflicts(): number {
    return this.#materializer.scanCold()
  }

  /** Calls `listener` after each commit with the documents it touched. */
  onUpdate(listener: UpdateListener): () => void {
    this.#listeners.push(listener)
    return () => {
      const i = this.#listeners.indexOf(listener)
      if (i >= 0) this.#listeners.splice(i, 1)
    }
  }

  /**
   * Stops listening to the store (it does not close the store). With `flush`, writes due
   * snapshots first; then drops the cache. A snapshot that cannot be written (a full disk)
   * is reported to `onError` and skipped: snapshots only speed up loading, the log holds
   * everything, so closing never fails for want of one.
   */
  close(options: { flush?: boolean } = {}): void {
    try {
      if (options.flush === true) this.flushSnapshots()
    } catch (err) {
      this.#onError(err)
    } finally {
      // No background slice runs after close (one already scheduled is cancelled).
      this.#background?.close()
      for (const off of this.#unsubscribe) off()
      this.dropCache()
      try {
        this.#conflicts.flush()
      } catch (err) {
        this.#onError(err)
      }
    }
  }

  // ---- refused changes and isolated documents --------------------------------------------

  /** Stored changes Automerge refuses to apply (skipped on every DRU alike): how many, and the latest. */
  rejectedChanges(limit = 20): { count: number; changes: RejectedChange[] } {
    return this.#rejected.list(limit)
  }

  /** Documents that could not be materialised (first `MAX_ISOLATED_LISTED`), and how many there are. */
  isolated(): { count: number; docs: IsolatedDocument[] } {
    return this.#isolated.list()
  }

  /**
   * Tries an isolated document again (after its cause was repaired): it loads, or stays
   * isolated with the new reason. Returns true when it is readable again.
   */
  retryIsolated(docId: string): boolean {
    const id = parseDocId(docId)
    const ok = this.#materializer.retryIsolated(id)
    this.#digests.recompute(id)
    return ok
  }

  // ---- internals ----------------------------------------------------------------------

  /** The `derive` commit listener: cached documents queue remote changes, then update listeners hear of the commit. */
  #afterCommit(events: readonly DruEvent[], source: 'local' | 'remote'): void {
    const docIds = new Set<string>()
    for (const e of events) docIds.add(e.docId)
    if (source === 'remote') {
      const waiting = this.#materializer.queueRemote(events)
      if (waiting.length > 0) this.#background?.queued(waiting)
    }
    this.#conflicts.runPolicy()
    const ids = [...docIds]
    for (const l of this.#listeners) {
      try {
        l(ids, source)
      } catch (err) {
        this.#onError(err)
      }
    }
  }
}
