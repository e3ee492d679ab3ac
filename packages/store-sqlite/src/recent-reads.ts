import { DruError, type DruEvent } from '@dru/core'

/**
 * Pages of events the log served to peers lately, already re-hashed and chain-checked, so
 * that the next session asking for the same run takes them from memory. After a partition
 * heals every session of a DRU reads the DRU's own writes for its peer: without this, each
 * read them from SQLite and re-hashed them once per peer.
 *
 * What may be kept: only pages read outside a write transaction (events read inside one
 * may roll back, and their positions be taken again by other events), and an origin's
 * pages are dropped when one of its stored events gains a signature (deferred signing),
 * since the kept copy would lack it. Stored events are otherwise immutable; compaction only
 * deletes events below the base, which no read asks for.
 *
 * Memory: at most `budgetBytes`, counting each event's change bytes plus
 * {@link EVENT_OVERHEAD_BYTES}; the least recently used pages go first.
 *
 * @module
 */

/** Default budget: the events of a send window or two after a heal (16 MiB). */
export const DEFAULT_RECENT_READ_BYTES = 16 << 20
/**
 * Bytes an event read from the log holds besides its change: the object, its origin, HLC,
 * doc id, hash and prev strings and the change's Buffer. Measured at ~510 (short doc ids)
 * to ~550 (uuid doc ids) on V8; counted with some margin so the budget bounds the heap.
 */
export const EVENT_OVERHEAD_BYTES = 640

interface Page {
  readonly origin: string
  /** Seq of events[0]; the events are consecutive. */
  readonly from: number
  readonly events: readonly DruEvent[]
  readonly bytes: number
}

export class RecentReads {
  readonly #budget: number
  /** Every page, least recently used first. */
  readonly #lru = new Set<Page>()
  /** Each origin's pages, sorted by `from`, never overlapping. */
  readonly #byOrigin = new Map<string, Page[]>()
  #bytes = 0
  /** Events served from here. */
  hits = 0

  constructor(budgetBytes = DEFAULT_RECENT_READ_BYTES) {
    if (!Number.isSafeInteger(budgetBytes) || budgetBytes < 0)
      throw new DruError('INVALID_ARGUMENT', `recentReadBytes must be a non-negative integer, not ${budgetBytes}`)
    this.#budget = budgetBytes
  }

  /** Bytes held now (estimated as above), at most the budget. */
  get bytes(): number {
    return this.#bytes
  }

  /**
   * The kept events of `origin` from seq `from` on, consecutive, at most `limit` and none
   * past `to`; undefined when `from` is in no kept page.
   */
  take(origin: string, from: number, to: number, limit: number): readonly DruEvent[] | undefined {
    const pages = this.#byOrigin.get(origin)
    if (!pages) return undefined
    const page = pages[containing(pages, from)]
    if (!page || from >= page.from + page.events.length) return undefined
    this.#lru.delete(page)
    this.#lru.add(page)
    const start = from - page.from
    const end = Math.min(page.events.length, start + limit, to - page.from + 1)
    if (end <= start) return undefined
    this.hits += end - start
    return start === 0 && end === page.events.length ? page.events : page.events.slice(start, end)
  }

  /** Keeps consecutive verified events of one origin starting at `events[0]`; the part already kept is not kept twice. */
  keep(events: readonly DruEvent[]): void {
    if (events.length === 0) return
    const origin = events[0]!.origin
    let pages = this.#byOrigin.get(origin)
    let from = events[0]!.seq
    let to = from + events.length - 1
    if (pages) {
      // Only the part no kept page covers: a page that starts inside another is cut to after it.
      const before = pages[containing(pages, from)]
      if (before && from < before.from + before.events.length) from = before.from + before.events.length
      const after = pages[containing(pages, from) + 1]
      if (after && after.from <= to) to = after.from - 1
      if (to < from) return
    }
    const kept = from === events[0]!.seq && to === events[events.length - 1]!.seq
    const slice = kept ? events : events.slice(from - events[0]!.seq, to - events[0]!.seq + 1)
    let bytes = 0
    for (const e of slice) bytes += e.change.byteLength + EVENT_OVERHEAD_BYTES
    if (bytes > this.#budget) return
    const page: Page = { origin, from, events: slice, bytes }
    if (!pages) this.#byOrigin.set(origin, (pages = []))
    pages.splice(containing(pages, from) + 1, 0, page)
    this.#lru.add(page)
    this.#bytes += bytes
    for (const old of this.#lru) {
      if (this.#bytes <= this.#budget) break
      this.#drop(old)
    }
  }

  /** Drops every kept page of `origin` (one of its stored events changed: it was signed). */
  forget(origin: string): void {
    for (const page of this.#byOrigin.get(origin) ?? []) {
      this.#lru.delete(page)
      this.#bytes -= page.bytes
    }
    this.#byOrigin.delete(origin)
  }

  /** Drops everything. */
  clear(): void {
    this.#lru.clear()
    this.#byOrigin.clear()
    this.#bytes = 0
  }

  #drop(page: Page): void {
    this.#lru.delete(page)
    this.#bytes -= page.bytes
    const pages = this.#byOrigin.get(page.origin)!
    pages.splice(pages.indexOf(page), 1)
    if (pages.length === 0) this.#byOrigin.delete(page.origin)
  }
}

/** Index of the last page starting at or before `seq` (-1 when none). */
function containing(pages: readonly Page[], seq: number): number {
  let lo = 0
  let hi = pages.length - 1
  let found = -1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    if (pages[mid]!.from <= seq) {
      found = mid
      lo = mid + 1
    } else hi = mid - 1
  }
  return found
}
