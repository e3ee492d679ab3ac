import * as A from '@automerge/automerge'
import { DruError, type DruEvent } from '@dru/core'
import { MetaKey, type EventStore } from '@dru/store-sqlite'
import { actorForOrigin } from './actor.js'
import { StaleViewRepair } from './automerge-workarounds.js'
import { ENTRY_OVERHEAD, type AnyDoc, type CachedDoc, type DocCache } from './doc-cache.js'
import type { ConflictTracker } from './conflict-tracker.js'
import { applyScreened, screenDepth } from './depth-screen.js'
import { ConflictedPaths, rememberedConflicts, type FoundConflict, type Path } from './conflict-scan.js'
import { isolatedError, type IsolatedDocs, type IsolatedDocument } from './isolated-docs.js'
import type { RejectedChanges } from './rejected-changes.js'
import type { SnapshotStore } from './snapshot-store.js'
import { applyTolerant } from './tolerant-apply.js'
import { remember } from './recent-writers.js'

/** A cached document applies its queued remote changes at once when this many are waiting. */
const MAX_PENDING = 256

/** The parts a {@link Materializer} reads from and writes to (shared with the other modules). */
export interface MaterializerParts {
  readonly store: EventStore
  readonly cache: DocCache
  readonly snapshots: SnapshotStore
  readonly isolated: IsolatedDocs
  readonly rejected: RejectedChanges
  readonly conflicts: ConflictTracker
  readonly onError: (err: unknown) => void
}

/**
 * Turns the log into Automerge documents. A cold document loads from its snapshot plus the
 * events stored after it; a change Automerge refuses is skipped and recorded (the same on
 * every DRU, tolerant-apply.ts), and a history it refuses to load isolates the document.
 * Remote events reach cached documents as a queue, applied with one `applyChanges` when the
 * document is next needed; cold documents stay cold, and {@link Materializer.scanCold}
 * later loads them once to find their conflicts. Every apply reports the conflicted paths
 * to the {@link ConflictTracker} and goes through the Automerge workarounds
 * (automerge-workarounds.ts).
 */
export class Materializer {
  readonly #store: EventStore
  readonly #cache: DocCache
  readonly #snapshots: SnapshotStore
  readonly #isolated: IsolatedDocs
  readonly #rejected: RejectedChanges
  readonly #conflicts: ConflictTracker
  readonly #onError: (err: unknown) => void
  /** Every cached document holds all log events up to this position (snapshot_lsn must not exceed it); stale-low is safe. */
  #appliedLsn: number
  #actorOrigin = ''
  #actorHex = ''
  #loads = 0
  #remoteApplied = 0

  constructor(parts: MaterializerParts) {
    this.#store = parts.store
    this.#cache = parts.cache
    this.#snapshots = parts.snapshots
    this.#isolated = parts.isolated
    this.#rejected = parts.rejected
    this.#conflicts = parts.conflicts
    this.#onError = parts.onError
    this.#appliedLsn = parts.store.lastLsn()
  }

  /** Documents loaded from snapshot and log so far. */
  get loads(): number {
    return this.#loads
  }

  /** Remote events applied to cached documents so far. */
  get remoteApplied(): number {
    return this.#remoteApplied
  }

  /** The actor of the current origin, recomputed only when the incarnation changes. */
  actor(): string {
    const origin = this.#store.origin
    if (origin !== this.#actorOrigin) {
      this.#actorOrigin = origin
      this.#actorHex = actorForOrigin(origin)
    }
    return this.#actorHex
  }

  /**
   * After a remote commit: queues each event on its document if that one is cached (cold
   * documents stay cold; {@link scanCold} finds them later from the log). The queue is
   * applied, one `applyChanges` per document for everything queued, when the document is
   * next read, changed or snapshotted, or when it is long. Merging the log and
   * materialising are kept apart, so small batches do not pay one Automerge call per
   * document each. Returns the documents left with changes queued.
   */
  queueRemote(events: readonly DruEvent[]): string[] {
    const queued = new Set<string>()
    for (const e of events) {
      const entry = this.#cache.peek(e.docId)
      if (!entry) continue
      ;(entry.pending ??= []).push(e)
      entry.bytes += e.change.byteLength
      queued.add(e.docId)
    }
    const waiting: string[] = []
    for (const docId of queued) {
      const entry = this.#cache.peek(docId)
      if (!entry?.pending) continue
      this.#cache.resize(docId, entry.bytes)
      if (entry.pending.length >= MAX_PENDING) this.materialize(docId, entry)
      else waiting.push(docId)
    }
    this.#appliedLsn = this.#store.lastLsn()
    return waiting
  }

  /**
   * Cached entry, or loaded from snapshot + tail. `cache` false loads it without caching
   * (digests, scans). A history Automerge refuses isolates the document: DOCUMENT_ISOLATED
   * now and on every later read, while every other document keeps working.
   */
  load(docId: string, cache: boolean): CachedDoc | undefined {
    const isolated = this.#isolated.get(docId)
    if (isolated) throw isolatedError(isolated)
    const hit = cache ? this.#cache.get(docId) : this.#cache.peek(docId)
    if (hit && this.materialize(docId, hit)) return hit
    try {
      return this.#loadFromLog(docId, cache)
    } catch (err) {
      // Only Automerge refusing the history isolates: our own errors and SQLite's pass through.
      if (err instanceof DruError || String((err as { code?: unknown })?.code ?? '').startsWith('SQLITE')) throw err
      throw isolatedError(this.#isolate(docId, err))
    }
  }

  /** Runs `fn` on the cached document, or on a transient load that is freed afterwards (the cache is not disturbed). */
  withDoc<T>(docId: string, fn: (doc: AnyDoc) => T): T | undefined {
    const hit = this.#cache.peek(docId)
    if (hit && this.materialize(docId, hit)) return fn(hit.doc)
    const entry = this.load(docId, false)
    if (!entry) return undefined
    try {
      return fn(entry.doc)
    } finally {
      A.free(entry.doc)
    }
  }

  /**
   * Applies the remote changes queued on a cached document: one `applyChanges`, conflict
   * detection on the paths it reports, and the open-conflict recheck. On failure the
   * document leaves the cache (it reloads from the log) and false is returned.
   */
  materialize(docId: string, entry: CachedDoc): boolean {
    const queued = entry.pending
    if (!queued) return true
    entry.pending = undefined
    let found: FoundConflict[] = []
    // A change Automerge refuses breaks the document: it is dropped and rebuilt from the
    // log, which skips that change (#loadFromLog).
    const candidates = (entry.waiting ? entry.waiting.concat(queued) : queued).filter((e) => !this.#rejected.has(e))
    entry.waiting = undefined
    let usable: DruEvent[] = []
    try {
      const reported = new ConflictedPaths()
      const view = new StaleViewRepair()
      const patchCallback = (p: A.Patch[]): void => {
        reported.add(p)
        view.collect(p)
      }
      // Nothing reaches Automerge that would nest an object past MAX_DOCUMENT_DEPTH.
      const done = applyScreened(
        entry.doc,
        candidates,
        (doc, ready) =>
          A.applyChanges(
            doc,
            ready.map((e) => e.change),
            { patchCallback },
          )[0],
        (e, cause) => this.#reject(docId, e, cause),
      )
      usable = done.applied
      if (done.waiting.length > 0) entry.waiting = done.waiting
      const next = done.doc
      entry.remote = true
      let read = rememberedConflicts()
      entry.doc = view.repair(next, entry.actor, entry.counterConflict, read)
      if (entry.doc !== next) read = rememberedConflicts()
      if (view.hit) entry.counterConflict = true
      entry.unsnapshotted += usable.length
      this.#remoteApplied += usable.length
      const paths = withOpenPaths(reported.paths(), this.#conflicts.openPaths(docId))
      if (paths.length > 0) found = this.#conflicts.scan(entry.doc, paths, read)
      this.#conflicts.recheck(docId, entry.doc, 'replicated', read)
    } catch {
      this.#cache.discard(docId, entry)
      return false
    }
    // The batch joins the recent writers only after its conflicts' writers are named: they
    // are found in the batch itself (the hint) and in the window as it was before it, which
    // still holds the local writes that a batch longer than the window would push out
    // (sending each of their lookups to the log: most of a large heal's recording time).
    try {
      this.#conflicts.record(docId, entry.doc, found, usable, entry.writers)
    } finally {
      remember(entry, usable)
    }
    return true
  }

  /**
   * A log position every cached document is known to include. Outside a transaction every
   * committed event is in the cached documents (the documents' commit listener runs in the
   * `derive` phase, before anything else can act on the commit). Inside one, an ingest may
   * have inserted events not yet applied: fall back to the position of the last applied
   * batch (stale-low is safe; it only makes the tail replayed on load longer).
   */
  safeLsn(): number {
    return this.#store.db.inTransaction ? this.#appliedLsn : this.#store.lastLsn()
  }

  /** Applies what is queued, then stores the snapshot (see `SnapshotStore.save`). */
  writeSnapshot(docId: string, entry: CachedDoc, lsn = this.safeLsn()): boolean {
    if (entry.pending && !this.materialize(docId, entry)) return false
    // A snapshot hides its changes from the next load: the conflicts they made must be written first.
    this.#conflicts.flush()
    return this.#snapshots.save(docId, entry, lsn)
  }

  /** Writes a snapshot of one document now (cached or not); false if it cannot be (missing dependencies). */
  snapshotNow(docId: string): boolean {
    // An isolated document cannot be snapshotted: its events stay (the floor is lowered).
    if (this.#isolated.has(docId)) return false
    const hit = this.#cache.peek(docId)
    if (hit) return this.writeSnapshot(docId, hit, this.#store.lastLsn())
    let entry: CachedDoc | undefined
    try {
      entry = this.load(docId, false)
    } catch (err) {
      if (err instanceof DruError && err.code === 'DOCUMENT_ISOLATED') return false
      throw err
    }
    if (!entry) return false
    try {
      return this.writeSnapshot(docId, entry, this.#store.lastLsn())
    } finally {
      A.free(entry.doc)
    }
  }

  /** Writes a snapshot for every cached document with events since its last one. */
  flush(): number {
    let n = 0
    const lsn = this.safeLsn()
    this.#store.db.transaction(() => {
      for (const [docId, entry] of this.#cache.entries()) {
        if ((entry.unsnapshotted > 0 || entry.pending) && this.writeSnapshot(docId, entry, lsn)) n++
      }
    })()
    return n
  }

  /**
   * Checks for conflicts every document that received events since the last scan and was
   * not in the cache when they arrived (cached ones are checked as changes are applied).
   * Walks the log from a persisted position page by page and loads each such document
   * transiently, so memory stays bounded however many documents changed.
   */
  scanCold(): number {
    for (const [docId, entry] of this.#cache.entries()) if (entry.pending) this.materialize(docId, entry)
    let after = Number(this.#store.getMeta(MetaKey.CONFLICT_SCAN) ?? 0)
    const end = this.#store.lastLsn()
    let scanned = 0
    while (after < end) {
      const rows = this.#store.docsChangedAfter(after, end, 1024)
      if (rows.length === 0) break
      for (const docId of new Set(rows.map((r) => r.docId))) {
        if (this.#cache.has(docId) || this.#isolated.has(docId)) continue
        try {
          this.withDoc(docId, () => undefined)
        } catch (err) {
          if (!(err instanceof DruError && err.code === 'DOCUMENT_ISOLATED')) throw err
        }
        scanned++
      }
      after = rows[rows.length - 1]!.lsn
      this.#conflicts.flush()
      this.#store.setMeta(MetaKey.CONFLICT_SCAN, after)
    }
    return scanned
  }

  /** Loads an isolated document again (after its cause was repaired); true when it is readable. */
  retryIsolated(docId: string): boolean {
    if (!this.#isolated.remove(docId)) return true
    try {
      this.withDoc(docId, () => undefined)
      return true
    } catch (err) {
      if (err instanceof DruError && err.code === 'DOCUMENT_ISOLATED') return false
      throw err
    }
  }

  #reject(docId: string, e: DruEvent, cause: unknown): void {
    if (!this.#rejected.add(e, cause)) return
    this.#onError(
      new DruError(
        'INVALID_EVENT',
        `${e.origin}#${e.seq}: Automerge refuses its change to ${docId} (${String((cause as Error)?.message ?? cause).slice(0, 200)}); skipped, as on every DRU`,
        {
          cause,
          details: { origin: e.origin, seq: e.seq, docId },
        },
      ),
    )
  }

  #isolate(docId: string, cause: unknown): IsolatedDocument {
    this.#cache.drop(docId)
    const doc = this.#isolated.add(docId, cause)
    this.#onError(
      new DruError('DOCUMENT_ISOLATED', `document ${docId} cannot be materialised and is isolated: ${doc.reason}`, {
        cause,
      }),
    )
    return doc
  }

  #loadFromLog(docId: string, cache: boolean): CachedDoc | undefined {
    const actor = this.actor()
    const snap = this.#snapshots.get(docId)
    const stored: DruEvent[] = [...this.#store.eventsForDoc(docId, snap?.lsn ?? 0)]
    if (!snap && stored.length === 0) return undefined
    const candidates = stored.filter((e) => !this.#rejected.has(e))
    this.#loads++
    const base = (): AnyDoc => (snap ? A.load(snap.bytes, { actor }) : A.init({ actor }))
    let doc: AnyDoc = base()
    // Nothing reaches Automerge that would nest an object past MAX_DOCUMENT_DEPTH; changes made
    // inside objects the document does not show yet wait on the entry for the next events.
    const screen = screenDepth(doc, candidates)
    for (const { event, cause } of screen.refused) this.#reject(docId, event, cause)
    const tail = screen.ready
    let waiting = screen.waiting
    let bytes = ENTRY_OVERHEAD + (snap?.bytes.byteLength ?? 0)
    let reported = new ConflictedPaths()
    let counterConflict = false
    if (tail.length > 0) {
      const view = new StaleViewRepair()
      const patchCallback = (p: A.Patch[]) => {
        reported.add(p)
        view.collect(p)
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
        reported = new ConflictedPaths()
        doc = applyTolerant(base, tail, this.#rejected, {
          patchCallback,
          reject: (e, cause) => this.#reject(docId, e, cause),
        })
      }
      // Changes made inside objects the tail made or deleted can be screened only now.
      const more = applyScreened(
        doc,
        waiting,
        (d, ready) =>
          A.applyChanges(
            d,
            ready.map((e) => e.change),
            { patchCallback },
          )[0],
        (e, cause) => this.#reject(docId, e, cause),
      )
      doc = more.doc
      waiting = more.waiting
      for (const e of more.applied) tail.push(e)
      doc = view.repair(doc, actor)
      counterConflict = view.hit
      for (const e of tail) bytes += e.change.byteLength
    }
    const remote = tail.some((e) => e.origin !== this.#store.origin)
    const entry: CachedDoc = {
      doc,
      bytes,
      unsnapshotted: tail.length,
      actor,
      ...(counterConflict ? { counterConflict } : {}),
      ...(remote ? { remote } : {}),
      ...(waiting.length > 0 ? { waiting } : {}),
    }
    // The tail comes in log order: its last events are the newest of each of its origins.
    remember(entry, tail)
    if (cache) this.#cache.insert(docId, entry)
    const paths = reported.paths()
    if (paths.length > 0) this.#conflicts.record(docId, doc, this.#conflicts.scan(doc, paths), tail, entry.writers)
    this.#conflicts.recheck(docId, doc, 'replicated')
    return entry
  }
}

/** The paths an apply reported conflicted plus those of the document's open conflicts, each once. */
function withOpenPaths(reported: Path[], open: readonly Path[]): Path[] {
  if (open.length === 0) return reported
  const seen = new Set(reported.map((p) => JSON.stringify(p)))
  for (const p of open) if (!seen.has(JSON.stringify(p))) reported.push(p)
  return reported
}
