import { decodeHlc, parseOrigin, type DruEvent, type VersionVector } from '@dru/core'

/** What a DRU knew of its own writes when its process opened the database. */
export interface OpenedState {
  readonly druId: string
  /** The fresh origin this process writes as. */
  readonly origin: string
  /** Heads of this DRU's own origins in the database at open. */
  readonly ownAtOpen: VersionVector
  /** Wall-clock ms of the open. */
  readonly openedAt: number
}

/**
 * Pure: the events among `events` (stored remote events, each verified and signed by its
 * origin) that prove this DRU's database was an old copy — writes of its own that the
 * database did not hold when this process opened it. For an origin the database held, any
 * event past that head is proof. For an own origin it did not hold at all, only an event
 * stamped before the open: a later one is a concurrent process under the same id (a twin),
 * not lost history. Claims (vectors, acks) never get here: only stored events do.
 */
export function ownWritesMissingAtOpen(state: OpenedState, events: readonly DruEvent[]): DruEvent[] {
  return events.filter((e) => {
    if (e.origin === state.origin || parseOrigin(e.origin).druId !== state.druId) return false
    const held = state.ownAtOpen[e.origin]
    return held !== undefined ? e.seq > held : decodeHlc(e.hlc).wall < state.openedAt
  })
}
