import {
  LifecycleSignal,
  LifecycleState,
  createLifecycle,
  type Lifecycle,
  type LifecycleTransition,
  type VersionVector,
} from '@dru/core'
import { eventLag } from './lag.js'

/** What the driver needs to know about one configured peer. */
export interface PeerView {
  readonly id: string
  readonly connected: boolean
  /** What the peer holds as far as its sessions told us (its vv, raised by what it sent and acked). */
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

/**
 * Pure: where we stand against the peers that are connected now. `ours` is everything we
 * hold (what they may have that we lack is measured against it); `live` leaves out retired
 * origins, whose events are folded into snapshots and never acknowledged again.
 */
export function assessPeers(
  ours: VersionVector,
  peers: readonly PeerView[],
  live: VersionVector = ours,
): SyncAssessment {
  let reachable = 0
  let weLack = 0
  let theyLack = 0
  for (const p of peers) {
    if (!p.connected) continue
    reachable++
    const lag = eventLag(p, ours, live)
    weLack += lag.weLack
    theyLack += lag.theyLack
  }
  return { reachable, weLack, theyLack }
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
      if (this.#options.now() - this.#startedAt >= this.#options.startupGraceMs)
        lc.signal(LifecycleSignal.ALL_PEERS_LOST)
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
