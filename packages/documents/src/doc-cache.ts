import * as A from '@automerge/automerge'
import type { DruEvent } from '@dru/core'
import { Lru, type CacheLimits } from './lru.js'
import type { RecentWriters } from './recent-writers.js'

/** Any Automerge document: documents hold whatever JSON the application writes. */
export type AnyDoc = A.Doc<any>

/** Fixed per-document overhead added to the byte estimate (WASM object, maps). */
export const ENTRY_OVERHEAD = 2048

/** One document held in memory, with what it owes the log and its snapshot. */
export interface CachedDoc {
  doc: AnyDoc
  bytes: number
  /** Events applied since the snapshot this entry was loaded from (or since creation). */
  unsnapshotted: number
  /** The Automerge actor the document writes as (the origin at load time). */
  actor: string
  /** The events applied most recently, to name a conflict's writers without the log (recent-writers.ts). */
  writers?: RecentWriters
  /** Remote events committed but not yet applied to `doc` (see `Materializer.materialize`). */
  pending?: DruEvent[]
  /**
   * Remote events held back from Automerge: each makes an object inside one this document
   * does not show yet (depth-screen.ts); screened again with the next events that arrive.
   */
  waiting?: DruEvent[]
  /** A counter with concurrent values was seen: rebuild the view after every apply (see `StaleViewRepair`). */
  counterConflict?: boolean
  /** Holds changes made elsewhere since its last snapshot: a snapshot must prove it loads back. */
  remote?: boolean
}

/** Limits of a {@link DocCache} and what it does with a document pushed out. */
export interface DocCacheOptions {
  readonly limits: CacheLimits
  /** A document leaving the cache with at least this many events since its snapshot gets a new one. */
  readonly snapshotAfter: number
  /** Writes the snapshot of a document that is leaving the cache. */
  readonly snapshot: (docId: string, entry: CachedDoc) => unknown
  /** Where a failed snapshot is reported: eviction itself never fails. */
  readonly onError: (err: unknown) => void
}

/**
 * The hot documents: an LRU bounded by count and estimated bytes. A document pushed out
 * gets a snapshot when enough events piled up since its last one, and its WASM memory is
 * freed at once: waiting for the garbage collector's finalizers lets the WASM heap grow
 * with the number of documents touched, not with the cache size.
 */
export class DocCache {
  readonly #lru: Lru<CachedDoc>
  readonly #options: DocCacheOptions
  #evictions = 0

  constructor(options: DocCacheOptions) {
    this.#lru = new Lru(options.limits)
    this.#options = options
  }

  get size(): number {
    return this.#lru.size
  }

  get bytes(): number {
    return this.#lru.bytes
  }

  /** Documents that left the cache since it was created (evicted, not dropped). */
  get evictions(): number {
    return this.#evictions
  }

  has(docId: string): boolean {
    return this.#lru.has(docId)
  }

  /** Reads without touching recency. */
  peek(docId: string): CachedDoc | undefined {
    return this.#lru.peek(docId)
  }

  /** Reads and marks as most recently used. */
  get(docId: string): CachedDoc | undefined {
    return this.#lru.get(docId)
  }

  entries(): Array<[string, CachedDoc]> {
    return this.#lru.entries()
  }

  /** Inserts or replaces, evicting the least recently used documents beyond the limits. */
  insert(docId: string, entry: CachedDoc): void {
    for (const [id, old] of this.#lru.set(docId, entry, entry.bytes)) this.#retire(id, old)
  }

  /** Updates an entry's size estimate without changing recency. */
  resize(docId: string, bytes: number): void {
    this.#lru.resize(docId, bytes)
  }

  /** Evicts one document (writing a snapshot first if it is due). */
  evict(docId: string): void {
    const entry = this.#lru.delete(docId)
    if (entry) this.#retire(docId, entry)
  }

  /** Drops one document without a snapshot (it reloads from the log), freeing its memory. */
  drop(docId: string): void {
    const entry = this.#lru.delete(docId)
    if (entry) A.free(entry.doc)
  }

  /**
   * Drops `entry`, which a refused change may have broken inside: out of the cache if it is
   * still the cached one, and freed (a failure to free a broken document is ignored).
   */
  discard(docId: string, entry: CachedDoc): void {
    if (this.#lru.peek(docId) === entry) this.#lru.delete(docId)
    try {
      A.free(entry.doc)
    } catch {
      // broken by the refused change
    }
  }

  /** Empties the cache without writing snapshots. */
  clear(): void {
    for (const [, entry] of this.#lru.entries()) A.free(entry.doc)
    this.#lru.clear()
  }

  #retire(docId: string, entry: CachedDoc): void {
    this.#evictions++
    if (entry.unsnapshotted + (entry.pending?.length ?? 0) >= this.#options.snapshotAfter) {
      try {
        this.#options.snapshot(docId, entry)
      } catch (err) {
        this.#options.onError(err)
      }
    }
    A.free(entry.doc)
  }
}
