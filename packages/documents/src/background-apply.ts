import type { CachedDoc } from './doc-cache.js'

/** Runs `run` later (after `delayMs`, or on the next turn of the event loop when 0); returns a cancel. */
export type Scheduler = (run: () => void, delayMs: number) => () => void

/** How remote changes queued on cached documents are applied while nothing reads them. */
export interface BackgroundApplyOptions {
  /** Longest a slice holds the event loop, in ms (checked after each document). Default 4. */
  readonly sliceMs?: number
  /**
   * While remote changes keep arriving, a document is applied in the background only once
   * this many wait on it: each `applyChanges` has a fixed cost, so applying every commit's
   * one or two changes would cost far more CPU than one apply on read. Default 64.
   */
  readonly minPending?: number
  /** When no remote commit came for this long (ms), every queued change is applied. Default 25. */
  readonly quietMs?: number
  /** Default: `setImmediate` for 0 ms (after pending I/O), `setTimeout` otherwise. */
  readonly schedule?: Scheduler
  /** Clock for the slice budget and the quiet period. Default `performance.now`. */
  readonly now?: () => number
}

/** What a {@link BackgroundApply} reads and calls (the materializer and the cache). */
export interface BackgroundApplyParts {
  readonly peek: (docId: string) => CachedDoc | undefined
  readonly materialize: (docId: string, entry: CachedDoc) => boolean
  readonly onError: (err: unknown) => void
}

const defaultSchedule: Scheduler = (run, delayMs) => {
  if (delayMs <= 0) {
    const h = setImmediate(run)
    return () => clearImmediate(h)
  }
  const h = setTimeout(run, delayMs)
  h.unref?.()
  return () => clearTimeout(h)
}

/**
 * Applies the remote changes queued on cached documents in the background, so a document is
 * mostly materialised by the time it is read and the work runs while the process would
 * otherwise wait for its peers' frames. Slices run on their own turn of the event loop
 * (after pending I/O) and stop at a time budget, whatever the input size, so frame handling
 * is never held up for more than about one slice. Documents with the most queued changes go
 * first; below `minPending` they wait until the ingest goes quiet. A read still applies
 * whatever is queued (Materializer.materialize), so nothing here changes what a read sees.
 */
export class BackgroundApply {
  readonly #parts: BackgroundApplyParts
  readonly #sliceMs: number
  readonly #minPending: number
  readonly #quietMs: number
  readonly #schedule: Scheduler
  readonly #now: () => number
  /** Documents that had changes queued since they were last applied here (may be applied by a read since). */
  readonly #queued = new Set<string>()
  /** The order slices apply documents in, and how far they got (see #slice). */
  #plan: Array<[string, CachedDoc, number]> = []
  #next = 0
  #planQuiet = false
  /** A commit queued more since the plan was made. */
  #stale = true
  /** Some queued documents are below minPending and wait for the ingest to go quiet. */
  #waiting = false
  #cancel: (() => void) | undefined
  #lastRemote = -Infinity
  #closed = false
  #slices = 0
  #applied = 0

  constructor(parts: BackgroundApplyParts, options: BackgroundApplyOptions = {}) {
    this.#parts = parts
    this.#sliceMs = options.sliceMs ?? 4
    this.#minPending = options.minPending ?? 64
    this.#quietMs = options.quietMs ?? 25
    this.#schedule = options.schedule ?? defaultSchedule
    this.#now = options.now ?? (() => performance.now())
  }

  /** Slices run so far. */
  get slices(): number {
    return this.#slices
  }

  /** Documents applied by slices so far. */
  get applied(): number {
    return this.#applied
  }

  /** After a remote commit: these documents have changes queued. */
  queued(docIds: Iterable<string>): void {
    if (this.#closed) return
    for (const id of docIds) this.#queued.add(id)
    this.#stale = true
    this.#lastRemote = this.#now()
    if (this.#queued.size > 0) this.#arm(0)
  }

  /** No slice runs after this (a pending one is cancelled). */
  close(): void {
    this.#closed = true
    this.#cancel?.()
    this.#cancel = undefined
    this.#queued.clear()
    this.#plan = []
  }

  #arm(delayMs: number): void {
    if (this.#closed) return
    this.#cancel?.()
    this.#cancel = this.#schedule(() => {
      this.#cancel = undefined
      this.#slice()
    }, delayMs)
  }

  /**
   * One slice: the documents with the most queued changes first, until the budget is spent.
   * The order is worked out once and kept across slices until a commit queues more (a scan
   * of every queued document per slice would grow with the cache, not with the budget).
   */
  #slice(): void {
    if (this.#closed) return
    this.#slices++
    const start = this.#now()
    const quiet = start - this.#lastRemote >= this.#quietMs
    if (this.#stale || this.#next >= this.#plan.length || quiet !== this.#planQuiet) this.#replan(quiet)
    const plan = this.#plan
    try {
      // At least one document per slice, however slow the clock says the last one was.
      for (let first = true; this.#next < plan.length; first = false) {
        if (!first && this.#now() - start >= this.#sliceMs) break
        const [id, entry] = plan[this.#next++]!
        // A read may have applied it, or it may have left the cache, since the plan was made.
        this.#queued.delete(id)
        if (this.#parts.peek(id) !== entry || !entry.pending) continue
        this.#applied++
        this.#parts.materialize(id, entry)
      }
    } catch (err) {
      this.#parts.onError(err)
    }
    if (this.#closed) return
    if (this.#next < plan.length) this.#arm(0)
    else if (this.#waiting) this.#arm(Math.max(1, this.#quietMs - (this.#now() - this.#lastRemote)))
  }

  /** Orders the queued documents due now (most queued changes first); notes whether others wait for quiet. */
  #replan(quiet: boolean): void {
    const due: Array<[string, CachedDoc, number]> = []
    this.#waiting = false
    for (const id of this.#queued) {
      const entry = this.#parts.peek(id)
      const n = entry?.pending?.length ?? 0
      if (n === 0) this.#queued.delete(id)
      else if (quiet || n >= this.#minPending) due.push([id, entry!, n])
      else this.#waiting = true
    }
    due.sort((a, b) => b[2] - a[2])
    this.#plan = due
    this.#next = 0
    this.#planQuiet = quiet
    this.#stale = false
  }
}
