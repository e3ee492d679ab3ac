import { createHash } from 'node:crypto'
import * as A from '@automerge/automerge'
import { DruError, parseDocId, type DruEvent, type VersionVector } from '@dru/core'
import { MetaKey, storageError, type EventStore, type StoreTx } from '@dru/store-sqlite'
import { actorForOrigin, originForActor, parseOpId } from './actor.js'
import { ActorSeqs, checkChanges } from './change-validation.js'
import { canonicalJson, documentDigest, plainValue } from './canonical.js'
import { chooseWinner, type Conflict, type ConflictPolicy, type ConflictValue } from './conflict-policy.js'
import { ConflictRegistry } from './conflict-registry.js'
import { conflictAt, conflictedPaths, hasConflictedCounter, valueAt, writable, type FoundConflict, type Path } from './conflict-scan.js'
import { Lru, type CacheLimits } from './lru.js'
import { DOCUMENT_MIGRATIONS } from './schema.js'
import { guardDocument } from './value-guard.js'
import { RejectedChanges, applyTolerant, type RejectedChange } from './tolerant-apply.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDoc = A.Doc<any>
/** The function an application passes to change a document (Automerge's change callback). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ChangeFn = (doc: any) => void

export interface DocumentStoreOptions {
  /** Bounds of the in-memory document cache. Default: 10,000 documents. */
  cache?: CacheLimits
  /** An evicted document with at least this many events since its snapshot gets a new one. Default 16. */
  snapshotAfter?: number
  /** How conflicts are settled; default `manual`. */
  conflictPolicy?: ConflictPolicy
  /** Clock for `detected_at`/`resolved_at`; default Date.now. */
  now?: () => number
  /** Errors from work after a commit (which cannot undo it). Default: console.error. */
  onError?: (err: unknown) => void
}

/** What {@link DocumentStore.transact} hands the callback. */
export interface DocumentTx {
  /** The SQLite connection inside the open transaction. */
  readonly db: StoreTx['db']
  /** Changes a document; the change is appended to the log in this transaction. Returns its event, or undefined for a no-op. */
  change(docId: string, fn: ChangeFn): DruEvent | undefined
}

/** Per-document state digest: sorted heads, canonical JSON, and their hash. */
export interface DocumentDigest {
  readonly docId: string
  readonly heads: readonly string[]
  readonly json: string
  readonly digest: string
}

/** Listener for document updates: the ids touched by one commit and where the commit came from. */
export type UpdateListener = (docIds: readonly string[], source: 'local' | 'remote') => void

export interface DocumentStats {
  readonly cachedDocs: number
  readonly cachedBytes: number
  readonly loads: number
  readonly evictions: number
  readonly snapshotsWritten: number
  readonly remoteApplied: number
}

interface Entry {
  doc: AnyDoc
  bytes: number
  /** Events applied since the snapshot this entry was loaded from (or since creation). */
  unsnapshotted: number
  /** The Automerge actor the document writes as (the origin at load time). */
  actor: string
  /** Remote events committed but not yet applied to `doc` (see {@link DocumentStore.#materialize}). */
  pending?: DruEvent[]
  /** A counter with concurrent values was seen: rebuild the view after every apply (see CounterPatches). */
  counterConflict?: boolean
  /** Holds changes made elsewhere since its last snapshot: a snapshot must prove it loads back. */
  remote?: boolean
}

/** Progress of {@link DocumentStore.compact}, yielded between steps. */
export interface CompactProgress {
  /** `snapshot`: covering documents with snapshots; `delete`: removing events below the new base. */
  readonly phase: 'snapshot' | 'delete'
  readonly docsScanned: number
  readonly snapshotsWritten: number
  readonly eventsDeleted: number
}

export interface CompactResult {
  /** The base the log now has: per origin, events up to this seq live only in snapshots. */
  readonly base: VersionVector
  readonly docsScanned: number
  readonly snapshotsWritten: number
  readonly eventsDeleted: number
  /** Origins whose floor was lowered because a document could not be snapshotted (changes waiting for dependencies). */
  readonly heldBack: readonly string[]
}

/** A document that could not be materialised, and why. */
export interface IsolatedDocument {
  readonly docId: string
  readonly reason: string
  readonly at: number
}

/** How many isolated documents {@link DocumentStore.isolated} and digests list by name. */
export const MAX_ISOLATED_LISTED = 100

/** One document's snapshot as shipped to a DRU below our compaction base. */
export interface DocSnapshot {
  readonly docId: string
  readonly bytes: Uint8Array
}

/** A cached document applies its queued remote changes at once when this many are waiting. */
const MAX_PENDING = 256

/** Meta key: the log position up to which cold documents were checked for conflicts. */
const SCAN_META = MetaKey.CONFLICT_SCAN

/** Fixed per-document overhead added to the byte estimate (WASM object, maps). */
const ENTRY_OVERHEAD = 2048

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
 */
export class DocumentStore {
  readonly store: EventStore
  readonly #cache: Lru<Entry>
  readonly #snapshotAfter: number
  readonly #policy: ConflictPolicy
  readonly #now: () => number
  readonly #onError: (err: unknown) => void
  readonly #registry: ConflictRegistry
  readonly #listeners: UpdateListener[] = []
  readonly #openConflictDocs: Set<string>
  /** Cold documents that received remote events: scanned for conflicts on demand. */
  readonly #dirtyCold = new Set<string>()
  readonly #stmt
  readonly #unsubscribe: Array<() => void>
  /** Documents whose history Automerge refused to load: reading them fails, the rest works. */
  readonly #isolated = new Map<string, IsolatedDocument>()
  readonly #rejected: RejectedChanges
  /** Every cached document holds all log events up to this position (snapshot_lsn must not exceed it); stale-low is safe. */
  #appliedLsn: number
  /** Documents touched by the open transaction: evicted if it rolls back. */
  #touched: Set<string> | undefined
  /** Who is settling conflicts in the running transaction (`operator`, `policy`). */
  #resolvingBy: string | undefined
  #actorOrigin = ''
  #actorHex = ''
  #pendingPolicy: Array<{ conflict: Conflict; value: unknown }> = []
  #stats = { loads: 0, evictions: 0, snapshotsWritten: 0, remoteApplied: 0 }

  constructor(store: EventStore, options: DocumentStoreOptions = {}) {
    this.store = store
    store.migrate('documents', DOCUMENT_MIGRATIONS)
    this.#cache = new Lru(options.cache ?? { maxDocs: 10_000 })
    this.#snapshotAfter = options.snapshotAfter ?? 16
    this.#policy = options.conflictPolicy ?? 'manual'
    this.#now = options.now ?? Date.now
    const sink = options.onError ?? ((err) => console.error('dru documents:', err))
    // Work after a commit reaches SQLite too: its failures arrive typed (STORAGE_FULL, …).
    this.#onError = (err) => sink(storageError(err))
    this.#registry = new ConflictRegistry(store)
    this.#openConflictDocs = new Set(this.#registry.openDocIds())
    const db = store.db
    this.#stmt = {
      getSnapshot: db.prepare('select snapshot, snapshot_lsn from docs where doc_id = ?'),
      putSnapshot: db.prepare(
        `insert into docs (doc_id, snapshot, snapshot_lsn, heads) values (?, ?, ?, ?)
         on conflict(doc_id) do update set snapshot = excluded.snapshot, snapshot_lsn = excluded.snapshot_lsn, heads = excluded.heads`,
      ),
      // Distinct doc ids in order, paged; uses the log's (doc_id, lsn) index.
      docsAfter: db.prepare('select lsn, doc_id from events where lsn > ? and lsn <= ? order by lsn limit ?'),
      // Documents live in the log and, once compacted, possibly only in `docs`.
      docIds: db
        .prepare('select doc_id from (select doc_id from events where doc_id > @after union select doc_id from docs where doc_id > @after) order by doc_id limit @limit')
        .pluck(),
      tailSeqs: db.prepare('select origin, seq from events where doc_id = ? and lsn > ?'),
      snapshotLsn: db.prepare('select snapshot_lsn from docs where doc_id = ?').pluck(),
      snapshotPage: db.prepare('select doc_id, snapshot from docs where doc_id > ? order by doc_id limit ?'),
      isolate: db.prepare('insert into isolated_docs (doc_id, reason, at) values (?, ?, ?) on conflict(doc_id) do update set reason = excluded.reason'),
      unisolate: db.prepare('delete from isolated_docs where doc_id = ?'),
      isolated: db.prepare('select doc_id, reason, at from isolated_docs order by doc_id'),
    }
    for (const r of this.#stmt.isolated.all() as Array<{ doc_id: string; reason: string; at: number }>) {
      this.#isolated.set(r.doc_id, { docId: r.doc_id, reason: r.reason, at: r.at })
    }
    this.#rejected = new RejectedChanges(store, this.#now)
    this.#appliedLsn = store.lastLsn()
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
    if (this.#touched) throw new DruError('INVALID_ARGUMENT', 'nested transactions are not supported')
    const touched = new Set<string>()
    this.#touched = touched
    let open = true
    const change = (stx: StoreTx, docId: string, f: ChangeFn): DruEvent | undefined => {
      // Checked before the document is touched: a late call must not change the cached copy.
      if (!open) throw new DruError('INVALID_ARGUMENT', 'this transaction has ended: tx.change cannot be used after transact() returned')
      return this.changeIn(stx, docId, f)
    }
    try {
      return this.store.transact((stx) => fn({ db: stx.db, change: (docId, f) => change(stx, docId, f) }))
    } catch (err) {
      for (const docId of touched) {
        const entry = this.#cache.delete(docId)
        if (entry) A.free(entry.doc)
      }
      throw err
    } finally {
      this.#touched = undefined
      open = false
    }
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
    parseDocId(docId)
    if (typeof fn !== 'function') throw new DruError('INVALID_ARGUMENT', 'change() needs a function (doc) => { ... }')
    if (isAsyncFunction(fn)) throw asyncChangeError(docId)
    this.#touched?.add(docId)
    const actor = this.#actor()
    let entry = this.#load(docId, true)
    if (!entry) entry = { doc: A.init({ actor }), bytes: ENTRY_OVERHEAD, unsnapshotted: 0, actor }
    // A new incarnation writes as a new actor, so Automerge's per-actor seq is never reused.
    if (entry.actor !== actor) {
      const old = entry.doc
      entry.doc = A.clone(old, { actor })
      A.free(old)
      entry.actor = actor
    }
    const counters = new CounterPatches()
    const values = new ValueCheck()
    let next: AnyDoc
    try {
      // Change time from the injected clock, so a seeded simulation produces identical bytes.
      next = A.change(entry.doc, { time: Math.floor(this.#now() / 1000), patchCallback: (p) => (counters.collect(p), values.collect(p)) }, (doc) => {
        const guarded = guardDocument(doc)
        try {
          const returned: unknown = fn(guarded.doc)
          if (isThenable(returned)) {
            // Its continuation will fail on the revoked document; that failure is ours to absorb.
            returned.then(undefined, () => undefined)
            throw asyncChangeError(docId)
          }
        } finally {
          guarded.revoke()
        }
      })
    } catch (err) {
      // Automerge rolled the change back; drop the document anyway, so a proxy the callback
      // leaked (an async continuation) writes into freed memory instead of the next change.
      this.#discard(docId, entry)
      throw invalidValueError(docId, err) ?? err
    }
    if (values.bad !== undefined) {
      this.#discard(docId, entry)
      throw new DruError('INVALID_VALUE', `document ${docId}: ${values.bad}; nothing was committed`, { details: { docId } })
    }
    // Automerge returns the same object when the callback changed nothing.
    if (next === entry.doc) return undefined
    const bytes = A.getLastLocalChange(next)
    if (!bytes) return undefined
    next = counters.repair(next, actor, entry.counterConflict)
    if (counters.hit) entry.counterConflict = true
    const event = tx.append(docId, bytes)
    entry.doc = next
    entry.bytes += bytes.byteLength
    entry.unsnapshotted++
    this.#insert(docId, entry)
    if (this.#openConflictDocs.has(docId)) this.#recheckOpen(docId, entry.doc, this.#resolvingBy ?? 'local-change')
    return event
  }

  // ---- reads --------------------------------------------------------------------------

  /** The document as plain JSON (keys sorted, counters as numbers), or undefined if it does not exist. */
  get(docId: string): unknown {
    const entry = this.#load(parseDocId(docId), true)
    return entry ? plainValue(entry.doc) : undefined
  }

  /**
   * The live Automerge document (read-only: change it through {@link change}). Loads it
   * into the cache. The object is valid until the document leaves the cache (its WASM
   * memory is then freed), so do not keep it across other calls; copy what you need.
   */
  doc(docId: string): AnyDoc | undefined {
    return this.#load(parseDocId(docId), true)?.doc
  }

  /** Sorted heads of a document ([] if it does not exist). Does not disturb the cache. */
  heads(docId: string): string[] {
    return this.#withDoc(docId, (doc) => [...A.getHeads(doc)].sort()) ?? []
  }

  /** Heads, canonical JSON and their hash for one document; undefined if it does not exist. */
  digest(docId: string): DocumentDigest | undefined {
    return this.#withDoc(docId, (doc) => {
      const heads = [...A.getHeads(doc)].sort()
      const json = canonicalJson(doc)
      return { docId, heads, json, digest: documentDigest(heads, json) }
    })
  }

  /** Every document id in the log, in order, read page by page. */
  *docIds(pageSize = 512): Generator<string> {
    let after = ''
    for (;;) {
      const ids = this.#stmt.docIds.all({ after, limit: pageSize }) as string[]
      yield* ids
      if (ids.length < pageSize) return
      after = ids[ids.length - 1]!
    }
  }

  /**
   * A digest over every document's state, streamed in doc id order: documents not in the
   * cache are loaded one at a time and dropped, so memory stays bounded. Two DRUs with
   * the same digest hold the same materialised state.
   */
  clusterDigest(): { digest: string; documents: number; isolated: number } {
    const h = createHash('sha256')
    let documents = 0
    let isolated = 0
    for (const docId of this.docIds()) {
      let d: DocumentDigest | undefined
      try {
        d = this.digest(docId)
      } catch (err) {
        if (!(err instanceof DruError && err.code === 'DOCUMENT_ISOLATED')) throw err
        // An isolated document still counts, visibly: its state cannot equal a readable one.
        h.update(docId).update('\0').update('ISOLATED').update('\n')
        isolated++
        continue
      }
      if (!d) continue
      h.update(docId).update('\0').update(d.digest).update('\n')
      documents++
    }
    return { digest: h.digest('hex'), documents, isolated }
  }

  // ---- compaction and bootstrap ---------------------------------------------------------

  /**
   * Folds the events at or below `floor` (per origin, clamped to what the log holds) into
   * document snapshots and deletes them from the log. Every document with such an event
   * not yet covered by its snapshot gets a new one; a document that cannot be snapshotted
   * (changes waiting for missing dependencies) lowers the floor of the origins concerned.
   * Then the log's base rises to the floor and the events below it are deleted in chunks.
   * Snapshots commit before the base moves and the base before any delete, so a crash at
   * any point leaves a consistent log; running it again finishes the work.
   *
   * A generator: it yields progress between steps, so a caller can give the event loop a
   * turn (sync, admin) while a large log is compacted. Memory: one document at a time.
   */
  *compact(floor: VersionVector, options: { deleteChunk?: number; progressEvery?: number } = {}): Generator<CompactProgress, CompactResult, undefined> {
    const deleteChunk = options.deleteChunk ?? 10_000
    const progressEvery = options.progressEvery ?? 256
    const vv = this.store.vv()
    const base = this.store.baseVv()
    const target: Record<string, number> = {}
    for (const origin of Object.keys(floor)) {
      const seq = Math.min(floor[origin]!, vv[origin] ?? 0)
      if (seq > (base[origin] ?? 0)) target[origin] = seq
    }
    const heldBack = new Set<string>()
    let docsScanned = 0
    let snapshotsWritten = 0
    let eventsDeleted = 0
    const progress = (phase: CompactProgress['phase']): CompactProgress => ({ phase, docsScanned, snapshotsWritten, eventsDeleted })
    // Repeat the pass while a document lowered the floor: documents already covered are
    // skipped quickly, and every lowering strictly decreases a seq, so this ends.
    for (let lowered = Object.keys(target).length > 0; lowered; ) {
      lowered = false
      for (const docId of this.docIds()) {
        docsScanned++
        if (docsScanned % progressEvery === 0) yield progress('snapshot')
        // An isolated document's snapshot is no cover: every event of it stays.
        const snapshotLsn = this.#isolated.has(docId) ? 0 : ((this.#stmt.snapshotLsn.get(docId) as number | undefined) ?? 0)
        const uncovered = (this.#stmt.tailSeqs.all(docId, snapshotLsn) as Array<{ origin: string; seq: number }>).filter(
          (e) => e.seq <= (target[e.origin] ?? 0),
        )
        if (uncovered.length === 0) continue
        if (this.#snapshotNow(docId)) {
          snapshotsWritten++
          continue
        }
        for (const e of uncovered) {
          if (e.seq <= (target[e.origin] ?? 0)) {
            target[e.origin] = e.seq - 1
            heldBack.add(e.origin)
            lowered = true
          }
        }
      }
    }
    this.store.raiseBase(target)
    yield progress('delete')
    for (;;) {
      const n = this.store.deleteBelowBase(deleteChunk)
      eventsDeleted += n
      if (n < deleteChunk) break
      yield progress('delete')
    }
    return { base: this.store.baseVv(), docsScanned, snapshotsWritten, eventsDeleted, heldBack: [...heldBack].sort() }
  }

  /**
   * A page of stored snapshots in doc id order after `afterDocId`, about `maxBytes` long
   * (at least one), for bootstrapping a DRU below our compaction base. `next` is the id to
   * continue after, undefined at the end.
   */
  snapshotPage(afterDocId: string, maxBytes: number, limit = 256): { docs: DocSnapshot[]; next: string | undefined } {
    const rows = this.#stmt.snapshotPage.all(afterDocId, limit) as Array<{ doc_id: string; snapshot: Buffer }>
    const docs: DocSnapshot[] = []
    let bytes = 0
    for (const row of rows) {
      if (docs.length > 0 && bytes + row.snapshot.byteLength > maxBytes) break
      docs.push({ docId: row.doc_id, bytes: row.snapshot })
      bytes += row.snapshot.byteLength
    }
    const done = docs.length === rows.length && rows.length < limit
    return { docs, next: done || docs.length === 0 ? undefined : docs[docs.length - 1]!.docId }
  }

  /**
   * The change bytes a document snapshot carries (for a bootstrap, which rebuilds the folded
   * events from them and checks each against its signed hash chain). MALFORMED when the bytes
   * are not an Automerge document; nothing is stored here.
   */
  changesOf(docId: string, bytes: Uint8Array): Uint8Array[] {
    parseDocId(docId)
    let doc: AnyDoc
    try {
      doc = A.load(bytes)
    } catch (err) {
      throw new DruError('MALFORMED', `the snapshot of ${docId} is not a valid Automerge document: ${(err as Error).message}`, { details: { docId } })
    }
    try {
      return A.getAllChanges(doc)
    } finally {
      A.free(doc)
    }
  }

  /** Writes a snapshot of one document now (cached or not); false if it cannot be (missing dependencies). */
  #snapshotNow(docId: string): boolean {
    // An isolated document cannot be snapshotted: its events stay (the floor is lowered).
    if (this.#isolated.has(docId)) return false
    const hit = this.#cache.peek(docId)
    if (hit) return this.#writeSnapshot(docId, hit, this.store.lastLsn())
    let entry: Entry | undefined
    try {
      entry = this.#load(docId, false)
    } catch (err) {
      if (err instanceof DruError && err.code === 'DOCUMENT_ISOLATED') return false
      throw err
    }
    if (!entry) return false
    try {
      return this.#writeSnapshot(docId, entry, this.store.lastLsn())
    } finally {
      A.free(entry.doc)
    }
  }

  // ---- cache and snapshots ------------------------------------------------------------

  /** Drops a document from the cache (writing a snapshot first if it is due). */
  evict(docId: string): void {
    const entry = this.#cache.delete(docId)
    if (entry) this.#retire(docId, entry)
  }

  /** Writes a snapshot for every cached document with events since its last one. */
  flushSnapshots(): number {
    let n = 0
    const lsn = this.#safeLsn()
    this.store.db.transaction(() => {
      for (const [docId, entry] of this.#cache.entries()) {
        if ((entry.unsnapshotted > 0 || entry.pending) && this.#writeSnapshot(docId, entry, lsn)) n++
      }
    })()
    return n
  }

  /** Empties the cache without writing snapshots (tests, memory pressure). */
  dropCache(): void {
    for (const [, entry] of this.#cache.entries()) A.free(entry.doc)
    this.#cache.clear()
  }

  stats(): DocumentStats {
    return { cachedDocs: this.#cache.size, cachedBytes: this.#cache.bytes, ...this.#stats }
  }

  isCached(docId: string): boolean {
    return this.#cache.has(docId)
  }

  // ---- conflicts ----------------------------------------------------------------------

  /** Conflicts, oldest first; by default only open ones. Cold documents that received remote changes are scanned first. */
  listConflicts(status: 'open' | 'resolved' | 'all' = 'open'): Conflict[] {
    this.scanConflicts()
    return [...this.#registry.list(status === 'all' ? undefined : status)]
  }

  getConflict(id: number): Conflict | undefined {
    return this.#registry.get(id)
  }

  /**
   * Settles a conflict by writing `value` at its path: an ordinary change, so it
   * replicates and every DRU's record clears when the change reaches it.
   */
  resolveConflict(id: number, value: unknown): DruEvent | undefined {
    const c = this.#registry.get(id)
    if (!c) throw new DruError('NOT_FOUND', `no conflict with id ${id}`, { details: { id } })
    if (c.status === 'resolved') throw new DruError('INVALID_ARGUMENT', `conflict ${id} is already resolved`)
    return this.#writeResolution(c, writable(value), 'operator')
  }

  /**
   * Checks for conflicts every document that received events since the last scan and was
   * not in the cache when they arrived (cached ones are checked as changes are applied).
   * Walks the log from a persisted position page by page and loads each such document
   * transiently, so memory stays bounded however many documents changed.
   */
  scanConflicts(): number {
    for (const [docId, entry] of this.#cache.entries()) if (entry.pending) this.#materialize(docId, entry)
    let after = Number(this.store.getMeta(SCAN_META) ?? 0)
    const end = this.store.lastLsn()
    let scanned = 0
    while (after < end) {
      const rows = this.#stmt.docsAfter.all(after, end, 1024) as Array<{ lsn: number; doc_id: string }>
      if (rows.length === 0) break
      for (const docId of new Set(rows.map((r) => r.doc_id))) {
        if (this.#cache.has(docId) || this.#isolated.has(docId)) continue
        try {
          this.#withDoc(docId, () => undefined)
        } catch (err) {
          if (!(err instanceof DruError && err.code === 'DOCUMENT_ISOLATED')) throw err
        }
        scanned++
      }
      after = rows[rows.length - 1]!.lsn
      this.store.setMeta(SCAN_META, after)
    }
    return scanned
  }

  /** Calls `listener` after each commit with the documents it touched. */
  onUpdate(listener: UpdateListener): () => void {
    this.#listeners.push(listener)
    return () => {
      const i = this.#listeners.indexOf(listener)
      if (i >= 0) this.#listeners.splice(i, 1)
    }
  }

  /** Stops listening to the store. Does not close it. */
  /**
   * With `flush`, writes due snapshots first; then drops the cache. A snapshot that
   * cannot be written (a full disk) is reported to `onError` and skipped: snapshots only
   * speed up loading, the log holds everything, so closing never fails for want of one.
   */
  close(options: { flush?: boolean } = {}): void {
    try {
      if (options.flush === true) this.flushSnapshots()
    } catch (err) {
      this.#onError(err)
    } finally {
      for (const off of this.#unsubscribe) off()
      this.dropCache()
    }
  }

  /** Stored changes Automerge refuses to apply (skipped on every DRU alike): how many, and the latest. */
  rejectedChanges(limit = 20): { count: number; changes: RejectedChange[] } {
    return this.#rejected.list(limit)
  }

  /** Documents that could not be materialised (first {@link MAX_ISOLATED_LISTED}), and how many there are. */
  isolated(): { count: number; docs: IsolatedDocument[] } {
    return { count: this.#isolated.size, docs: [...this.#isolated.values()].slice(0, MAX_ISOLATED_LISTED) }
  }

  /**
   * Tries an isolated document again (after its cause was repaired): it loads, or stays
   * isolated with the new reason. Returns true when it is readable again.
   */
  retryIsolated(docId: string): boolean {
    if (!this.#isolated.delete(parseDocId(docId))) return true
    this.#stmt.unisolate.run(docId)
    try {
      this.#withDoc(docId, () => undefined)
      return true
    } catch (err) {
      if (err instanceof DruError && err.code === 'DOCUMENT_ISOLATED') return false
      throw err
    }
  }

  // ---- internals ----------------------------------------------------------------------

  #afterCommit(events: readonly DruEvent[], source: 'local' | 'remote'): void {
    const docIds = new Set<string>()
    if (source === 'remote') {
      for (const e of events) {
        docIds.add(e.docId)
        // Cold documents stay cold; scanConflicts() finds them later from the log.
        const entry = this.#cache.peek(e.docId)
        if (!entry) continue
        // Queue the change; it is applied (one applyChanges per document for everything
        // queued) when the document is next read, changed or snapshotted, or when the
        // queue is long. Merging the log and materialising are kept apart, so small
        // batches do not pay one Automerge call per document each.
        ;(entry.pending ??= []).push(e)
        entry.bytes += e.change.byteLength
      }
      for (const docId of docIds) {
        const entry = this.#cache.peek(docId)
        if (!entry?.pending) continue
        this.#cache.resize(docId, entry.bytes)
        if (entry.pending.length >= MAX_PENDING) this.#materialize(docId, entry)
      }
      this.#appliedLsn = this.store.lastLsn()
    } else {
      for (const e of events) docIds.add(e.docId)
    }
    this.#runPolicy()
    const ids = [...docIds]
    for (const l of this.#listeners) {
      try {
        l(ids, source)
      } catch (err) {
        this.#onError(err)
      }
    }
  }

  /**
   * Applies the remote changes queued on a cached document: one `applyChanges`, conflict
   * detection on the paths it reports, and the open-conflict recheck. On failure the
   * document leaves the cache (it reloads from the log) and false is returned.
   */
  #materialize(docId: string, entry: Entry): boolean {
    const list = entry.pending
    if (!list) return true
    entry.pending = undefined
    let found: FoundConflict[] = []
    try {
      const patches: A.Patch[] = []
      const counters = new CounterPatches()
      // A change Automerge refuses breaks the document: it is dropped and rebuilt from the
      // log, which skips that change (#loadFromLog).
      const usable = list.filter((e) => !this.#rejected.has(e))
      const [next] = A.applyChanges(entry.doc, usable.map((e) => e.change), {
        patchCallback: (p) => {
          patches.push(...p)
          counters.collect(p)
        },
      })
      entry.remote = true
      entry.doc = counters.repair(next, entry.actor, entry.counterConflict)
      if (counters.hit) entry.counterConflict = true
      entry.unsnapshotted += list.length
      this.#stats.remoteApplied += list.length
      const paths = conflictedPaths(patches)
      if (paths.length > 0) found = this.#scan(entry.doc, paths)
      if (this.#openConflictDocs.has(docId)) this.#recheckOpen(docId, entry.doc, 'replicated')
    } catch {
      if (this.#cache.peek(docId) === entry) this.#cache.delete(docId)
      try {
        A.free(entry.doc)
      } catch {
        // broken by the refused change
      }
      return false
    }
    this.#recordAll(docId, found, list)
    return true
  }

  /**
   * Cached entry, or loaded from snapshot + tail. `cache` false loads it without caching
   * (digests, scans). A history Automerge refuses isolates the document: DOCUMENT_ISOLATED
   * now and on every later read, while every other document keeps working.
   */
  #load(docId: string, cache: boolean): Entry | undefined {
    const isolated = this.#isolated.get(docId)
    if (isolated) throw isolatedError(isolated)
    const hit = cache ? this.#cache.get(docId) : this.#cache.peek(docId)
    if (hit && this.#materialize(docId, hit)) return hit
    try {
      return this.#loadFromLog(docId, cache)
    } catch (err) {
      // Only Automerge refusing the history isolates: our own errors and SQLite's pass through.
      if (err instanceof DruError || String((err as { code?: unknown })?.code ?? '').startsWith('SQLITE')) throw err
      throw isolatedError(this.#isolate(docId, err))
    }
  }

  /** Drops a document whose change was refused (cached or not), freeing its WASM memory. */
  #discard(docId: string, entry: Entry): void {
    const cached = this.#cache.peek(docId) === entry
    if (cached) this.#cache.delete(docId)
    A.free(entry.doc)
  }

  #reject(docId: string, e: DruEvent, cause: unknown): void {
    if (!this.#rejected.add(e, cause)) return
    this.#onError(
      new DruError('INVALID_EVENT', `${e.origin}#${e.seq}: Automerge refuses its change to ${docId} (${String((cause as Error)?.message ?? cause).slice(0, 200)}); skipped, as on every DRU`, {
        cause,
        details: { origin: e.origin, seq: e.seq, docId },
      }),
    )
  }

  #isolate(docId: string, cause: unknown): IsolatedDocument {
    const entry = this.#cache.delete(docId)
    if (entry) A.free(entry.doc)
    const doc: IsolatedDocument = { docId, reason: String((cause as Error)?.message ?? cause).slice(0, 500), at: this.#now() }
    this.#isolated.set(docId, doc)
    try {
      this.#stmt.isolate.run(docId, doc.reason, doc.at)
    } catch {
      // Kept in memory even if it cannot be recorded (e.g. a full disk): reads still fail cleanly.
    }
    this.#onError(new DruError('DOCUMENT_ISOLATED', `document ${docId} cannot be materialised and is isolated: ${doc.reason}`, { cause }))
    return doc
  }

  #loadFromLog(docId: string, cache: boolean): Entry | undefined {
    const actor = this.#actor()
    const snap = this.#stmt.getSnapshot.get(docId) as { snapshot: Buffer; snapshot_lsn: number } | undefined
    const stored: DruEvent[] = [...this.store.eventsForDoc(docId, snap?.snapshot_lsn ?? 0)]
    if (!snap && stored.length === 0) return undefined
    const tail = stored.filter((e) => !this.#rejected.has(e))
    this.#stats.loads++
    const base = (): AnyDoc => (snap ? A.load(snap.snapshot, { actor }) : A.init({ actor }))
    let doc: AnyDoc = base()
    let bytes = ENTRY_OVERHEAD + (snap?.snapshot.byteLength ?? 0)
    const patches: A.Patch[] = []
    let counterConflict = false
    if (tail.length > 0) {
      const counters = new CounterPatches()
      const patchCallback = (p: A.Patch[]) => {
        patches.push(...p)
        counters.collect(p)
      }
      try {
        // loadIncremental of the concatenated changes is several times faster than
        // applyChanges into a fresh document, and also accepts them in any order.
        doc = A.loadIncremental(doc, Buffer.concat(tail.map((e) => e.change)), { patchCallback })
      } catch {
        // A change Automerge refuses (it breaks the document): rebuild, skipping it (and only it).
        try {
          A.free(doc)
        } catch {
          // broken
        }
        patches.length = 0
        doc = applyTolerant(base, tail, this.#rejected, { patchCallback, reject: (e, cause) => this.#reject(docId, e, cause) })
      }
      doc = counters.repair(doc, actor)
      counterConflict = counters.hit
      for (const e of tail) bytes += e.change.byteLength
    }
    const remote = tail.some((e) => e.origin !== this.store.origin)
    const entry: Entry = { doc, bytes, unsnapshotted: tail.length, actor, ...(counterConflict ? { counterConflict } : {}), ...(remote ? { remote } : {}) }
    if (cache) this.#insert(docId, entry)
    const paths = conflictedPaths(patches)
    if (paths.length > 0) this.#recordAll(docId, this.#scan(doc, paths), tail)
    if (this.#openConflictDocs.has(docId)) this.#recheckOpen(docId, doc, 'replicated')
    return entry
  }

  /** The actor of the current origin, recomputed only when the incarnation changes. */
  #actor(): string {
    const origin = this.store.origin
    if (origin !== this.#actorOrigin) {
      this.#actorOrigin = origin
      this.#actorHex = actorForOrigin(origin)
    }
    return this.#actorHex
  }

  /** Runs `fn` on the cached document, or on a transient load that is freed afterwards (the cache is not disturbed). */
  #withDoc<T>(docId: string, fn: (doc: AnyDoc) => T): T | undefined {
    const hit = this.#cache.peek(docId)
    if (hit && this.#materialize(docId, hit)) return fn(hit.doc)
    const entry = this.#load(docId, false)
    if (!entry) return undefined
    try {
      return fn(entry.doc)
    } finally {
      A.free(entry.doc)
    }
  }

  #insert(docId: string, entry: Entry): void {
    for (const [id, old] of this.#cache.set(docId, entry, entry.bytes)) this.#retire(id, old)
  }

  #retire(docId: string, entry: Entry): void {
    this.#stats.evictions++
    if (entry.unsnapshotted + (entry.pending?.length ?? 0) >= this.#snapshotAfter) {
      try {
        this.#writeSnapshot(docId, entry)
      } catch (err) {
        this.#onError(err)
      }
    }
    // Free the WASM memory now: waiting for the garbage collector's finalizers lets the
    // WASM heap grow with the number of documents touched, not with the cache size.
    A.free(entry.doc)
  }

  /**
   * A log position every cached document is known to include. Outside a transaction every
   * committed event is in the cached documents (this store's commit listener runs in the
   * `derive` phase, before anything else can act on the commit). Inside one, an ingest may
   * have inserted events not yet applied: fall back to the position of the last applied
   * batch (stale-low is safe; it only makes the tail replayed on load longer).
   */
  #safeLsn(): number {
    return this.store.db.inTransaction ? this.#appliedLsn : this.store.lastLsn()
  }

  #writeSnapshot(docId: string, entry: Entry, lsn = this.#safeLsn()): boolean {
    if (entry.pending && !this.#materialize(docId, entry)) return false
    // Changes waiting for missing dependencies are not part of the state yet; wait.
    if (A.getMissingDeps(entry.doc, []).length > 0) return false
    const heads = [...A.getHeads(entry.doc)].sort()
    const bytes = A.save(entry.doc)
    // A change made elsewhere may apply and read fine yet not survive save and load (an
    // operation naming a predecessor that never existed): such a snapshot is never stored,
    // or the document would be lost once its events are compacted away.
    if (entry.remote && !loadsBack(bytes, heads)) {
      this.#onError(
        new DruError('INVALID_EVENT', `document ${docId} cannot be snapshotted: a change in its history does not survive save and load; its events are kept (compaction holds them back)`, {
          details: { docId },
        }),
      )
      return false
    }
    this.#stmt.putSnapshot.run(docId, bytes, lsn, JSON.stringify(heads))
    entry.remote = false
    entry.unsnapshotted = 0
    this.#stats.snapshotsWritten++
    return true
  }

  #scan(doc: AnyDoc, paths: Path[]): FoundConflict[] {
    const out: FoundConflict[] = []
    for (const p of paths) {
      const c = conflictAt(doc, p)
      if (c) out.push(c)
    }
    return out
  }

  /** Records new conflicts (each once) and lets the policy settle them. */
  #recordAll(docId: string, found: FoundConflict[], hint: readonly DruEvent[]): void {
    if (found.length === 0) return
    const fresh: Conflict[] = []
    const raws = new Map<number, FoundConflict>()
    const writers = new OpWriters(docId, hint, this.store)
    this.store.db.transaction(() => {
      for (const f of found) {
        if (this.#registry.exists(docId, JSON.stringify(f.path), f.opIds.join(','))) continue
        const values: ConflictValue[] = f.opIds.map((opId) => {
          const { actor } = parseOpId(opId)
          return { opId, origin: originForActor(actor), hlc: writers.hlcOf(opId), value: f.values.get(opId) }
        })
        const id = this.#registry.record(docId, f.path, values, this.#now())
        if (id !== undefined) {
          const c = this.#registry.get(id)!
          fresh.push(c)
          raws.set(id, f)
          this.#openConflictDocs.add(docId)
        }
      }
    })()
    if (this.#policy === 'manual') return
    for (const c of fresh) {
      const winner = chooseWinner(this.#policy, c)
      const raw = winner === undefined ? undefined : raws.get(c.id)?.raw
      if (winner !== undefined && raw?.has(winner)) this.#pendingPolicy.push({ conflict: c, value: writable(raw.get(winner)) })
    }
    this.#runPolicy()
  }

  /** Writes policy resolutions once no transaction is open (a resolution is a transaction of its own). */
  #runPolicy(): void {
    if (this.store.db.inTransaction || this.#touched) return
    while (this.#pendingPolicy.length > 0) {
      const { conflict, value } = this.#pendingPolicy.shift()!
      try {
        if (this.#registry.get(conflict.id)?.status === 'open') this.#writeResolution(conflict, value, 'policy')
      } catch (err) {
        this.#onError(err)
      }
    }
  }

  #writeResolution(c: Conflict, value: unknown, by: string): DruEvent | undefined {
    const path = c.path
    const prop = path[path.length - 1]!
    this.#resolvingBy = by
    try {
      return this.#resolveIn(c, path, prop, value, by)
    } finally {
      this.#resolvingBy = undefined
    }
  }

  #resolveIn(c: Conflict, path: ReadonlyArray<string | number>, prop: string | number, value: unknown, by: string): DruEvent | undefined {
    return this.transact((tx) => {
      const event = tx.change(c.docId, (doc) => {
        let obj = doc
        for (const p of path.slice(0, -1)) {
          obj = obj?.[p]
          if (obj === null || typeof obj !== 'object') throw new DruError('INVALID_ARGUMENT', `conflict ${c.id}: ${JSON.stringify(path)} no longer exists`)
        }
        obj[prop] = value
      })
      this.#registry.markResolved(c.id, valueAt(this.#cache.peek(c.docId)?.doc, [...path]), this.#now(), by)
      this.#refreshOpen(c.docId)
      return event
    }).result
  }

  /** Marks resolved every open conflict of `docId` whose field no longer holds the recorded concurrent values. */
  #recheckOpen(docId: string, doc: AnyDoc, by: string): void {
    for (const c of this.#registry.openForDoc(docId)) {
      const now = conflictAt(doc, [...c.path])
      const key = c.values.map((v) => v.opId).sort().join(',')
      if (now && now.opIds.join(',') === key) continue
      this.#registry.markResolved(c.id, valueAt(doc, [...c.path]), this.#now(), by)
    }
    this.#refreshOpen(docId)
  }

  #refreshOpen(docId: string): void {
    if (this.#registry.openForDoc(docId).length === 0) this.#openConflictDocs.delete(docId)
    else this.#openConflictDocs.add(docId)
  }

  /** HLC of the event whose change holds op `opId`: first among `hint`, then the document's log. */

}


/**
 * Works around an Automerge 3.1 materialisation bug: when a counter that has concurrent
 * values is incremented (by a local change, or in a batch of applied changes that also
 * makes it conflicted), the JS view may show the losing counter's value although the
 * stored ops are right (a fresh load shows the right one). Collect increment, counter and
 * conflict patches; if one hits a field whose concurrent values include a counter,
 * rebuild the view from the document. Patches do not always report it (a batch may emit no
 * patch for an increment of a conflicted counter), so a cached document once seen with a
 * conflicted counter is rebuilt after every later apply (`Entry.counterConflict`).
 * Conflicted counters are rare, so this is cheap overall.
 *
 * The same bug shows without counters: a batch holding a delete and a concurrent put of
 * the same key reports only a `conflict` patch, and the view keeps the deleted value. So
 * any batch that reports a `conflict` patch is rebuilt too (conflicts are rare as well).
 * Found by the convergence property (regression tests in test/convergence).
 */
/**
 * Which event wrote an operation, for a conflict's HLC. Each change is decoded at most once
 * per lookup batch: a batch with many conflicts used to decode the same changes again for
 * every conflicting value (the dominant cost of a large partition heal). The batch's own
 * events are searched first, the document's stored events only if needed.
 */
class OpWriters {
  readonly #docId: string
  readonly #hint: readonly DruEvent[]
  readonly #store: EventStore
  /** Op range of each change decoded so far, by event hash. */
  readonly #ranges = new Map<string, { start: number; end: number }>()
  #stored: DruEvent[] | undefined

  constructor(docId: string, hint: readonly DruEvent[], store: EventStore) {
    this.#docId = docId
    this.#hint = hint
    this.#store = store
  }

  hlcOf(opId: string): string | null {
    const { counter, actor } = parseOpId(opId)
    const origin = originForActor(actor)
    const holds = (e: DruEvent): boolean => {
      if (e.origin !== origin) return false
      let r = this.#ranges.get(e.hash)
      if (!r) {
        const d = A.decodeChange(e.change)
        this.#ranges.set(e.hash, (r = { start: d.startOp, end: d.startOp + d.ops.length }))
      }
      return r.start <= counter && counter < r.end
    }
    for (const e of this.#hint) if (holds(e)) return e.hlc
    this.#stored ??= [...this.#store.eventsForDoc(this.#docId)]
    for (const e of this.#stored) if (holds(e)) return e.hlc
    return null
  }
}

class CounterPatches {
  #paths: Array<Array<string | number>> | undefined

  /** A `conflict` patch was seen: Automerge 3.1 may then keep a stale value in the view. */
  #sawConflict = false

  readonly collect = (patches: A.Patch[]): void => {
    for (const p of patches) {
      if (p.action === 'conflict') this.#sawConflict = true
      if (p.action === 'inc' || p.action === 'conflict' || (p.action === 'put' && p.value instanceof A.Counter)) (this.#paths ??= []).push(p.path)
    }
  }

  /** True when a collected patch touched a field whose concurrent values include a counter. */
  hit = false

  /** Rebuilds the view if a patch touched a conflicted counter, or always when `force` (the document is known to hold one). */
  repair(doc: AnyDoc, actor: string, force = false): AnyDoc {
    this.hit = this.#paths?.some((path) => hasConflictedCounter(doc, path)) ?? false
    if (!this.hit && !force && !this.#sawConflict) return doc
    const rebuilt = A.load(A.save(doc), { actor })
    A.free(doc)
    return rebuilt
  }
}

/**
 * Finds numbers JSON cannot carry in a change's patches: Automerge stores NaN and ±Infinity,
 * but every reader of the document (get, digests, the admin API) would see null.
 */
class ValueCheck {
  bad: string | undefined

  readonly collect = (patches: A.Patch[]): void => {
    for (const p of patches) {
      if (this.bad !== undefined) return
      const found = p.action === 'put' ? [p.value] : p.action === 'insert' ? p.values : []
      for (const v of found) {
        if (typeof v === 'number' && !Number.isFinite(v)) {
          this.bad = `${String(v)} at /${p.path.join('/')} is not a JSON number (store null or a string instead)`
          return
        }
      }
    }
  }
}

function isAsyncFunction(fn: unknown): boolean {
  const name = (fn as { constructor?: { name?: unknown } }).constructor?.name
  return name === 'AsyncFunction' || name === 'AsyncGeneratorFunction'
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function'
}

function asyncChangeError(docId: string): DruError {
  return new DruError(
    'ASYNC_CHANGE',
    `change(${JSON.stringify(docId)}, fn): fn must be synchronous (it is async or returned a promise); Automerge would keep only what ran before the first await, so nothing was committed. Await first, then change.`,
    { details: { docId } },
  )
}

/** Automerge's refusal of a value (RangeError), or the stack overflow a cyclic value causes, as INVALID_VALUE. */
function invalidValueError(docId: string, err: unknown): DruError | undefined {
  if (!(err instanceof RangeError)) return undefined
  const cyclic = /call stack/i.test(err.message)
  if (!cyclic && !/^Cannot assign|^Cannot create a reference|^invalid (value|import)/.test(err.message)) return undefined
  const why = cyclic ? 'a cyclic or too deeply nested value' : err.message.split(/\.\s/)[0]
  return new DruError('INVALID_VALUE', `document ${docId}: ${why}; nothing was committed`, { cause: err, details: { docId } })
}

/** True when `bytes` load back into a document with exactly `heads`. */
function loadsBack(bytes: Uint8Array, heads: readonly string[]): boolean {
  let doc: AnyDoc | undefined
  try {
    doc = A.load(bytes)
    const got = [...A.getHeads(doc)].sort()
    return got.length === heads.length && got.every((h, i) => h === heads[i])
  } catch {
    return false
  } finally {
    if (doc) A.free(doc)
  }
}

function isolatedError(doc: IsolatedDocument): DruError {
  return new DruError('DOCUMENT_ISOLATED', `document ${doc.docId} is isolated: its history cannot be materialised (${doc.reason}); the rest of this DRU works`, {
    details: { docId: doc.docId },
  })
}
