import {
  LifecycleSignal,
  LifecycleState,
  countMissing,
  createLifecycle,
  mergeVv,
  type Lifecycle,
  type LifecycleTransition,
  type VersionVector,
} from '@dru/core'

/** What the driver needs to know about one configured peer. */
export interface PeerView {
  readonly id: string
  readonly connected: boolean
  /** The peer's vector as it claimed it in its latest fingerprint. */
  readonly theirVv: VersionVector
  /** What the peer has durably acknowledged. */
  readonly ackedVv: VersionVector
}

/** Sync position against the reachable peers. */
export interface SyncAssessment {
  readonly reachable: number
  /** Events some reachable peer holds (claimed or acknowledged) that we lack. */
  readonly weLack: number
  /** Events we hold that some reachable peer has not acknowledged. */
  readonly theyLack: number
}

/** Pure: where we stand against the peers that are connected now. */
export function assessPeers(ours: VersionVector, peers: readonly PeerView[]): SyncAssessment {
  let reachable = 0
  let weLack = 0
  let theyLack = 0
  for (const p of peers) {
    if (!p.connected) continue
    reachable++
    weLack += countMissing(mergeVv(p.theirVv, p.ackedVv), ours)
    theyLack += countMissing(ours, p.ackedVv)
  }
  return { reachable, weLack, theyLack }
}

/**
 * Pure: an earlier origin of DRU `druId` (`<druId>/<n>`, not `currentOrigin`) that a peer
 * holds more of than `ours` — proof that this log is an old copy. Undefined when none.
 */
export function staleOwnOrigin(
  druId: string,
  currentOrigin: string,
  ours: VersionVector,
  peerVectors: readonly VersionVector[],
): { origin: string; theirs: number; mine: number } | undefined {
  const prefix = `${druId}/`
  for (const vv of peerVectors) {
    for (const [origin, theirs] of Object.entries(vv)) {
      if (!origin.startsWith(prefix) || origin === currentOrigin) continue
      const mine = ours[origin] ?? 0
      if (theirs > mine) return { origin, theirs, mine }
    }
  }
  return undefined
}

/**
 * The highest incarnation of our own DRU id that any vector names (ours or a peer's), or
 * 0. A DRU writing under a lower incarnation than one it took before (an empty disk under
 * a clock that runs behind) must move above it: incarnations only grow.
 */
export function highestOwnIncarnation(druId: string, vectors: readonly VersionVector[]): number {
  const prefix = `${druId}/`
  let max = 0
  for (const vv of vectors) {
    for (const origin of Object.keys(vv)) {
      if (!origin.startsWith(prefix)) continue
      const n = Number(origin.slice(prefix.length))
      if (Number.isSafeInteger(n) && n > max) max = n
    }
  }
  return max
}

export interface LifecycleDriverOptions {
  /** Configured peers; none means a standalone DRU (active at once). */
  readonly peerCount: number
  /** How long `starting` waits for a first peer before going `isolated`. */
  readonly startupGraceMs: number
  /**
   * Unacknowledged events tolerated when declaring "caught up": live writes are always a
   * few events ahead of their acks, and must not keep a busy DRU out of `active`.
   */
  readonly slackEvents: number
  readonly now: () => number
  readonly onTransition: (t: LifecycleTransition) => void
}

/**
 * Turns observations (peers up or down, how much each side lacks) into lifecycle signals.
 * `observe()` is called on a timer and on sync events; it is cheap and idempotent.
 */
export class LifecycleDriver {
  readonly lifecycle: Lifecycle
  readonly #options: LifecycleDriverOptions
  readonly #startedAt: number
  #restorePending = false
  #peerCount: number

  constructor(options: LifecycleDriverOptions) {
    this.#options = options
    this.#peerCount = options.peerCount
    this.#startedAt = options.now()
    this.lifecycle = createLifecycle({ now: options.now, onTransition: options.onTransition })
    if (options.peerCount === 0) this.lifecycle.signal(LifecycleSignal.NO_PEERS)
  }

  /** Own origin must come back from peers first (restore / empty disk / stale copy). */
  restorePending(): void {
    this.#restorePending = true
    this.lifecycle.signal(LifecycleSignal.RESTORE_PENDING)
  }

  /** True until a restore has caught up with at least one peer. */
  get restoring(): boolean {
    return this.#restorePending
  }

  /** Peers that count after a decommission; when none is left the DRU goes standalone (active). */
  setPeerCount(n: number): void {
    this.#peerCount = n
    if (n === 0) this.lifecycle.signal(LifecycleSignal.LAST_PEER_REMOVED)
  }

  observe(a: SyncAssessment): void {
    const lc = this.lifecycle
    if (this.#peerCount === 0) return
    if (a.reachable === 0) {
      // Right after start no peer has had time to answer yet: give them the grace period
      // before calling ourselves isolated (also when a restore already moved us on).
      if (this.#options.now() - this.#startedAt >= this.#options.startupGraceMs) lc.signal(LifecycleSignal.ALL_PEERS_LOST)
      return
    }
    lc.signal(LifecycleSignal.PEERS_REACHABLE)
    if (lc.state() === LifecycleState.CATCHING_UP && this.inSync(a)) lc.signal(LifecycleSignal.CAUGHT_UP)
  }

  /** Nothing missing here, and at most the live-write slack missing at the peers. */
  inSync(a: SyncAssessment): boolean {
    return a.weLack === 0 && a.theyLack <= this.#options.slackEvents
  }

  /** The outcome of the verification run while `verifying` (fingerprints probed from the peers). */
  verified(ok: boolean): void {
    if (this.lifecycle.state() !== LifecycleState.VERIFYING) return
    if (ok) {
      this.#restorePending = false
      this.lifecycle.signal(LifecycleSignal.VERIFIED)
    } else {
      this.lifecycle.signal(LifecycleSignal.VERIFY_FAILED)
    }
  }
}
