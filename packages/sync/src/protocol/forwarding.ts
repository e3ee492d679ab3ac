import { parseOrigin, type VersionVector } from '@dru/core'
import { FORWARD_GRACE_HEARTBEATS } from '../limits.js'
import type { RouteBook } from './route-book.js'
import { violation } from './session-rules.js'

/** What the forwarding decisions of one session read. */
export interface ForwardingContext {
  readonly druId: string
  /** The peer's DRU id (proven by its auth). */
  readonly peerId: () => string | undefined
  readonly publicKeys: ReadonlyMap<string, unknown>
  readonly routes: RouteBook | undefined
  readonly heartbeatMs: number
  readonly now: () => number
}

/**
 * What one session forwards its peer, and how much at once: the sending side of "do not
 * forward what the peer already receives" (RouteBook is the receiving side).
 *
 * Two rules. An origin the peer gets by another path (its routes frame, or split horizon) is
 * held back while that copy keeps advancing, within a grace ({@link heldBack}). And a third
 * party's origin (written neither by us nor by the peer) goes through a small forward window
 * ({@link capped}): races between paths cannot be
 * predicted from session order (sessions open in any order after a heal, routes follow a
 * round trip later), so what such a race can cost is bounded instead, at most the forward
 * window per origin per path. The writer itself is never held back nor capped for its own
 * origin: one of the two always sends, so writer and forwarder never wait for each other.
 */
export class Forwarding {
  /**
   * The origins the peer receives by another session (its latest routes frame), with how
   * far it holds each: held back from it while that copy keeps up (see {@link heldBack}).
   */
  theirRoutes: VersionVector = {}
  /** The DRUs the peer has sessions with (its latest routes frame), besides us. */
  theirNeighbours: ReadonlySet<string> = new Set()

  readonly #c: ForwardingContext
  /** Per held-back origin: since when we hold more of it than the peer's copy, with no advance. */
  readonly #lagging = new Map<string, number>()
  /** When the peer's first vv arrived (ms); undefined before. */
  #firstVvAt: number | undefined
  /** True once the peer's first routes frame arrived (it has another session). */
  #routesSeen = false

  constructor(context: ForwardingContext) {
    this.#c = context
  }

  /** The peer's first vv arrived: for one heartbeat we do not know yet what it gets elsewhere. */
  started(): void {
    this.#firstVvAt ??= this.#c.now()
  }

  /**
   * The peer's routes: origins it receives by another session, and how far it holds them.
   * A claim about itself only: it can make us send *it* less (as a vv can), for a bounded
   * time while the copy it names stops advancing. Returns the origins with the seqs it holds.
   */
  onRoutes(vv: VersionVector, neighbours: readonly string[], ownOrigin: string): VersionVector {
    const next: Record<string, number> = {}
    for (const [origin, seq] of Object.entries(vv)) {
      if (!this.#c.publicKeys.has(parseOrigin(origin).druId))
        throw violation(`routes names ${origin}, whose DRU is not a member`)
      // Our own current origin comes from us alone: never held back.
      if (origin === ownOrigin) continue
      // Advanced (or newly named): its wait for the other path starts over.
      if (seq > (this.theirRoutes[origin] ?? -1)) this.#lagging.delete(origin)
      next[origin] = seq
    }
    for (const origin of this.#lagging.keys()) if (!Object.hasOwn(next, origin)) this.#lagging.delete(origin)
    this.theirRoutes = next
    this.theirNeighbours = new Set(neighbours)
    this.#routesSeen = true
    return next
  }

  /**
   * True while we do not know yet what the peer gets elsewhere: within one heartbeat of its
   * first vv (its routes may still be on their way), and until its first routes within the
   * grace. A peer sends routes once it has another session; after a heal on a loaded machine
   * that session may open more than a heartbeat after ours, and forwarding in between raced
   * its direct copy (bench:topologies, mesh of 3: whole origins arrived twice). A peer with no
   * other session gets third parties' origins {@link FORWARD_GRACE_HEARTBEATS} heartbeats after
   * its vv, not one.
   */
  #settling(): boolean {
    if (this.#firstVvAt === undefined) return true
    const since = this.#c.now() - this.#firstVvAt
    if (since < this.#c.heartbeatMs) return true
    return !this.#routesSeen && since < FORWARD_GRACE_HEARTBEATS * this.#c.heartbeatMs
  }

  /**
   * True when `origin` goes through the forward window: a third party's origin. Whether the
   * peer may get it by another path cannot be known for the future (a neighbour of the peer
   * whose session opens late, after a backoff, is the race this bounds), so every forwarded
   * origin is capped; our own origin and the peer's use the full window.
   */
  capped(origin: string): boolean {
    return this.thirdParty(origin)
  }

  /**
   * Origins not to send the peer now: those it receives by another session, while that copy
   * keeps up — we hold no more than it announced, or we do and it has not stopped advancing
   * for {@link FORWARD_GRACE_HEARTBEATS} of our heartbeats. Past that we forward: a slow or
   * dead path, or a false claim, costs a bounded delay, never an event.
   */
  heldBack(ours: VersionVector, known: VersionVector): Set<string> {
    const held = new Set<string>()
    const now = this.#c.now()
    const grace = FORWARD_GRACE_HEARTBEATS * this.#c.heartbeatMs
    // For one heartbeat after its vv we do not know yet what the peer gets elsewhere (its other
    // sessions may be opening at the same moment, as after a heal, and its routes follow):
    // every third party's origin waits, within the grace.
    const settling = this.#settling()
    const waiting = new Set(Object.keys(this.theirRoutes))
    // An origin that a neighbour of the peer brought us, that neighbour brings the peer too
    // (split horizon): forwarding it would race that path, so it waits like a routed one. We
    // learn the link from either end: the peer's routes name the supplier, or the supplier's
    // routes name the peer (after a heal one of the two often comes a heartbeat late).
    const book = this.#c.routes
    const peer = this.#c.peerId()
    // An origin whose writer itself brings it to us is alive: after a heal its session with
    // the peer may open a backoff later than ours, and then it sends the peer everything from
    // the peer's vector while our copy is in flight (bench:topologies, mesh of 5: 1.30–1.55
    // received per needed). So for the grace after the peer's first vv such an origin waits
    // even when the peer's routes name no other path; a line's far end gets it a grace late.
    const young = this.#firstVvAt !== undefined && now - this.#firstVvAt < grace
    for (const o of Object.keys(ours)) {
      if (!this.thirdParty(o)) continue
      const from = book?.suppliedBy(o)
      const linked =
        from !== undefined && (this.theirNeighbours.has(from) || (peer !== undefined && book!.supplierReaches(o, peer)))
      const writerAlive = young && from !== undefined && from === parseOrigin(o).druId
      if (settling || linked || writerAlive) waiting.add(o)
    }
    for (const origin of waiting) {
      if ((ours[origin] ?? 0) <= (known[origin] ?? 0)) {
        this.#lagging.delete(origin)
        continue
      }
      const since = this.#lagging.get(origin)
      if (since === undefined) this.#lagging.set(origin, now)
      if (now - (since ?? now) < grace) held.add(origin)
    }
    return held
  }

  /** An origin written neither by us nor by the peer (under any incarnation). */
  thirdParty(origin: string): boolean {
    const writer = parseOrigin(origin).druId
    return writer !== this.#c.druId && writer !== this.#c.peerId()
  }
}
