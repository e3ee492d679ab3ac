import type { DruEvent } from '@dru/core'
import { changeHeaderOf, readChangeOpCount, readChangePosition } from './change-header.js'
import { checkedChange } from './change-validation.js'
import type { CachedDoc } from './doc-cache.js'

/** Events a cached document remembers for naming conflict writers: a heal's burst, bounded per document. */
export const RECENT_WRITERS = 64

/** Estimated bytes one remembered event costs its cache entry (the object, its numbers, the HLC string). */
export const RECENT_WRITER_BYTES = 112

interface Written {
  readonly hlc: string
  /** Automerge seq and op counters [start, end) of the change; end undefined until needed. */
  seq: number
  start: number
  end: number | undefined
  /** The change, kept only on an origin's newest entry while its end is unknown (read if a lookup needs it). */
  change: Uint8Array | undefined
}

/**
 * Which of a cached document's recent events wrote an operation, without the log. The
 * materializer and local changes add every event they apply to the document, in the order
 * they apply them; the oldest are forgotten past {@link RECENT_WRITERS}. A lookup answers only
 * when it is exact: the op lies in the op range of a remembered change of its origin. A
 * remote change's range is the one ingest read when it checked it (free); a local change's
 * seq and start are read from the front of its header when it is added (about a
 * microsecond), its end is the start of the actor's next change (seq + 1: an actor's later
 * change starts after every op of its earlier one), and only the origin's newest change is
 * kept to read its full header if a lookup needs that end. Anything else — the op is older
 * than the window, a change that cannot be read — is left to the caller's search of the log
 * (conflict-tracker.ts).
 */
export class RecentWriters {
  readonly #byOrigin = new Map<string, Written[]>()
  /** Insertion order across origins, to forget the oldest first. */
  readonly #order: string[] = []
  #size = 0

  /** Remembered events (at most {@link RECENT_WRITERS}). */
  get size(): number {
    return this.#size
  }

  /**
   * Remembers `e` as applied to the document (an origin's events come in its seq order).
   * Returns the bytes this added to the document's cache estimate (0 once the window is full).
   */
  add(e: DruEvent): number {
    const checked = checkedChange(e.change)
    let w: Written
    if (checked) w = { hlc: e.hlc, seq: checked.seq, start: checked.startOp, end: checked.endOp, change: undefined }
    else {
      const pos = readChangePosition(e.change)
      // Start 0 marks a change whose header we cannot read: lookups of its origin give up.
      w = { hlc: e.hlc, seq: pos?.seq ?? 0, start: pos?.startOp ?? 0, end: undefined, change: pos && e.change }
    }
    let list = this.#byOrigin.get(e.origin)
    if (!list) this.#byOrigin.set(e.origin, (list = []))
    const previous = list[list.length - 1]
    if (previous) previous.change = undefined
    list.push(w)
    this.#order.push(e.origin)
    if (++this.#size <= RECENT_WRITERS) return RECENT_WRITER_BYTES
    this.#forgetOldest()
    return 0
  }

  /** HLC of the remembered event of `origin` whose change holds op `counter`; undefined if none is known to. */
  hlcOf(origin: string, counter: number): string | undefined {
    const list = this.#byOrigin.get(origin)
    if (!list) return undefined
    // The change with the largest start at or below the op is the only one that can hold it
    // (an actor's changes hold disjoint op ranges).
    let at = -1
    for (let i = 0; i < list.length; i++) {
      const w = list[i]!
      if (w.start === 0) return undefined
      if (w.start <= counter && (at < 0 || w.start > list[at]!.start)) at = i
    }
    if (at < 0) return undefined
    const end = this.#endOf(list, at)
    return end !== undefined && counter < end ? list[at]!.hlc : undefined
  }

  /** End of the op range of `list[at]`: known, the start of the actor's next change, or read from its full header. */
  #endOf(list: Written[], at: number): number | undefined {
    const w = list[at]!
    if (w.end !== undefined) return w.end
    const next = list.find((n) => n.seq === w.seq + 1)
    if (next && next.start > w.start) return (w.end = next.start)
    if (!w.change) return undefined
    try {
      // The op count alone (its action column) is enough here: the full header cost ten
      // times more, once per cached document in a heal.
      w.end = w.start + (readChangeOpCount(w.change) ?? changeHeaderOf(w.change, { ignoreChecksum: true }).opCount)
    } catch {
      return undefined
    }
    w.change = undefined
    return w.end
  }

  #forgetOldest(): void {
    const origin = this.#order.shift()!
    const list = this.#byOrigin.get(origin)!
    list.shift()
    if (list.length === 0) this.#byOrigin.delete(origin)
    this.#size--
  }
}

/**
 * Adds events just applied to a cached document to its {@link RecentWriters}, and what they
 * cost to its size. Only the last {@link RECENT_WRITERS} of them are added: the window keeps
 * the newest events whatever came before, so adding the older ones would only forget them
 * again (an apply can hold up to 256 queued events, a load a whole tail).
 */
export function remember(entry: CachedDoc, events: readonly DruEvent[]): void {
  const writers = (entry.writers ??= new RecentWriters())
  for (let i = Math.max(0, events.length - RECENT_WRITERS); i < events.length; i++)
    entry.bytes += writers.add(events[i]!)
}
