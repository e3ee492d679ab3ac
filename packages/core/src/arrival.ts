import { DruError } from './errors.js'

/**
 * The one decision every arriving event goes through, against what we hold of its origin:
 * already held (a duplicate, harmless), the next link of the chain (new), or one of the
 * three ways a log can refuse it — FORK (another content at a position we hold), SEQ_GAP (a
 * hole after our head) or CHAIN_BROKEN (the right position, but not linked to our head).
 * Pure: the answer depends on its arguments only.
 *
 * @module
 */

/** What an arriving event is to a log. */
export type Arrival = 'new' | 'duplicate'

/** The part of an event the decision reads. */
export interface ArrivingEvent {
  readonly origin: string
  readonly seq: number
  readonly prev: string
  readonly hash: string
}

/** Our head of the event's origin (seq 0 and the genesis hash when we hold none). */
export interface HeldHead {
  readonly seq: number
  readonly hash: string
}

/**
 * Classifies `e` against `head`. `heldHashAt(seq)` answers for a position below the head:
 * the hash we hold there, or undefined when it is no longer known (compacted away), in
 * which case a repeat cannot be checked and counts as a duplicate.
 */
export function classifyArrival(
  e: ArrivingEvent,
  head: HeldHead,
  heldHashAt: (seq: number) => string | undefined,
): Arrival {
  if (e.seq <= head.seq) {
    const held = e.seq === head.seq ? head.hash : heldHashAt(e.seq)
    if (held !== undefined && held !== e.hash) {
      throw new DruError(
        'FORK',
        `fork: ${e.origin}#${e.seq} arrived with hash ${e.hash.slice(0, 12)}… but we hold ${held.slice(0, 12)}…`,
        {
          details: { origin: e.origin, seq: e.seq, held, offered: e.hash },
        },
      )
    }
    return 'duplicate'
  }
  if (e.seq > head.seq + 1) {
    throw new DruError('SEQ_GAP', `${e.origin}#${e.seq} arrived but we hold only up to seq ${head.seq}`, {
      details: { origin: e.origin, seq: e.seq, held: head.seq },
    })
  }
  if (e.prev !== head.hash) {
    throw new DruError(
      'CHAIN_BROKEN',
      `${e.origin}#${e.seq} does not link to our ${e.origin}#${head.seq} (a forked history)`,
      {
        details: { origin: e.origin, seq: e.seq },
      },
    )
  }
  return 'new'
}
