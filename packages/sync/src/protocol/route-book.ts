import type { VersionVector } from '@dru/core'

/** What the route book needs of a session: its identity and a way to tell it routes changed. */
export interface RoutedSession {
  /** The peer's DRU id and the origin it writes as (proven by its auth). */
  readonly peerId: string | undefined
  readonly peerOrigin: string | undefined
  /** The DRUs the peer says it has sessions with (its routes frames); absent: none known. */
  readonly peerNeighbours?: ReadonlySet<string>
  /** Our supplier choices changed: announce them to the peer if what it should skip changed. */
  routesChanged(): void
}

/**
 * Which session brings this DRU each origin, shared by all of a DRU's sessions: the
 * receiving side of "do not forward what the peer already receives". For every origin we
 * pick one supplier: the session with the origin's writer when one is open (it holds every
 * event of its current origin), otherwise the first session that brought new events of it.
 * Each session then tells its peer, in a `routes` frame, which origins come by another
 * session; that peer holds them back while they keep arriving here. A supplier that closes
 * frees its origins at once, so the others forward them again.
 *
 * Only what we receive is decided here; what we send a peer is decided by that peer's
 * routes and by our own check that its copy keeps advancing (Replication).
 */
export class RouteBook {
  readonly #supplier = new Map<string, RoutedSession>()
  readonly #sessions = new Set<RoutedSession>()

  /** An admitted session: a new neighbour, and it supplies its peer's own origin from now on. */
  opened(session: RoutedSession): void {
    this.#sessions.add(session)
    const origin = session.peerOrigin
    if (origin !== undefined) this.#supplier.set(origin, session)
    this.#changed()
  }

  /** A closed session: a neighbour less, and whatever it supplied is open to every peer again. */
  closed(session: RoutedSession): void {
    if (!this.#sessions.delete(session)) return
    for (const [origin, s] of this.#supplier) if (s === session) this.#supplier.delete(origin)
    this.#changed()
  }

  /** The DRU ids we have sessions with, but `session`'s own peer. */
  neighbours(session: RoutedSession): string[] {
    const ids = new Set<string>()
    for (const s of this.#sessions) if (s !== session && s.peerId !== undefined) ids.add(s.peerId)
    ids.delete(session.peerId ?? '')
    return [...ids]
  }

  /** The DRU that brings us `origin` (its supplier's peer), if any. */
  suppliedBy(origin: string): string | undefined {
    return this.#supplier.get(origin)?.peerId
  }

  /**
   * True when the session that brings us `origin` says it has a session with `peerId` too:
   * it brings that peer the origin itself (its writer always sends its own), so forwarding it
   * there would race that path.
   */
  supplierReaches(origin: string, peerId: string): boolean {
    return this.#supplier.get(origin)?.peerNeighbours?.has(peerId) ?? false
  }

  /** The session stored new events of `origins`: it supplies those nobody supplies yet. */
  delivered(session: RoutedSession, origins: Iterable<string>): void {
    if (!this.#sessions.has(session)) return
    let any = false
    for (const origin of origins) {
      if (this.#supplier.has(origin)) continue
      this.#supplier.set(origin, session)
      any = true
    }
    if (any) this.#changed()
  }

  /**
   * What `session`'s peer need not send us: the origins another session supplies, each with
   * how far we hold it (`ours`), so the peer can see it advance.
   */
  elsewhere(session: RoutedSession, ours: VersionVector): VersionVector {
    const out: Record<string, number> = {}
    for (const [origin, s] of this.#supplier) if (s !== session) out[origin] = ours[origin] ?? 0
    return out
  }

  #changed(): void {
    for (const s of this.#sessions) s.routesChanged()
  }
}
