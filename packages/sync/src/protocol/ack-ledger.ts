import type { VersionVector } from '@dru/core'
import { violation } from './session-rules.js'

/**
 * A session's acknowledgements in both directions: what the peer holds as far as we know
 * (its vv, raised by what it sent and acked), what we acknowledged to it (acks carry only
 * what grew), and what it acknowledged to us (its acks may be deltas).
 */
export class AckLedger {
  #holdings: Record<string, number> = {}
  #acked: Record<string, number> = {}
  #peerAcked: Record<string, number> = {}
  /**
   * Origins the peer's summary names as retired, each up to where it folded them: it holds
   * that much but never acknowledges it, and we need not acknowledge it (its retired origins
   * count for nobody's lag). Held apart from {@link holdings} so acks do not name them.
   */
  #retiredThere = new Map<string, number>()

  /** What the peer holds as far as we know (a copy). */
  get holdings(): VersionVector {
    return { ...this.#holdings }
  }

  /** Starts over from the peer's vv (and the origins it retired, with their seqs). */
  resetHoldings(vv: VersionVector, retired: ReadonlyArray<{ origin: string; seq: number }> = []): void {
    this.#holdings = { ...vv }
    this.#retiredThere = new Map(retired.map((r) => [r.origin, r.seq]))
  }

  /**
   * The peer's fresh summary (a report to our refresh probe): raises what it holds. Only
   * origins we hold or it named before are kept (its report cannot grow our memory), and
   * never our own current origin beyond our head (a claim that would hold us catching up).
   */
  learnHoldings(vv: VersionVector, ours: VersionVector, ownOrigin: string): void {
    for (const [origin, seq] of Object.entries(vv)) {
      if (!Object.hasOwn(ours, origin) && !Object.hasOwn(this.#holdings, origin)) continue
      this.raise(origin, origin === ownOrigin ? Math.min(seq, ours[origin] ?? 0) : seq)
    }
  }

  /**
   * True when we hold events (of our live vector `ours`) that we never told the peer we
   * hold and do not know it holds: acks cannot say so (an ack names only what the receiver
   * holds), so neither side would learn it. Happens when both got them by other paths, also
   * past where the peer had folded an origin (both then hold it live again).
   */
  untold(ours: VersionVector): boolean {
    for (const [origin, seq] of Object.entries(ours)) {
      if (seq <= (this.#retiredThere.get(origin) ?? 0)) continue
      if (seq > (this.#acked[origin] ?? 0) && seq > (this.#holdings[origin] ?? 0)) return true
    }
    return false
  }

  /**
   * Our vv told the peer we hold `vv`, and our next ack acknowledges it whole (`withVv`): of
   * the origins the peer holds, that much counts as acknowledged, so {@link grown} names
   * only what grew since. True when that acknowledges anything not acknowledged before.
   */
  told(vv: VersionVector): boolean {
    let any = false
    for (const [origin, theirs] of Object.entries(this.#holdings)) {
      const v = Math.min(vv[origin] ?? 0, theirs)
      if (v > (this.#acked[origin] ?? 0)) {
        this.#acked[origin] = v
        any = true
      }
    }
    return any
  }

  /** The peer sent us `origin` up to `seq`: it holds it. */
  raise(origin: string, seq: number): void {
    if ((this.#holdings[origin] ?? 0) < seq) this.#holdings[origin] = seq
  }

  /**
   * We sent the peer `origin` up to `seq`: the frame itself tells it we hold them (it counts
   * what a peer sent as held), so they are never acknowledged to it again.
   */
  sent(origin: string, seq: number): void {
    if ((this.#acked[origin] ?? 0) < seq) this.#acked[origin] = seq
  }

  /**
   * The ack to send now: of the origins the peer holds, what we hold (`ours`) beyond what we
   * already acknowledged. Undefined when nothing grew; recorded as acknowledged otherwise.
   */
  grown(ours: VersionVector): Record<string, number> | undefined {
    const delta: Record<string, number> = {}
    let any = false
    for (const [origin, theirs] of Object.entries(this.#holdings)) {
      const v = Math.min(ours[origin] ?? 0, theirs)
      if (v > (this.#acked[origin] ?? 0)) {
        delta[origin] = v
        this.#acked[origin] = v
        any = true
      }
    }
    return any ? delta : undefined
  }

  /**
   * The peer's ack of `vv`, checked against what we hold (`ours`): it cannot acknowledge an
   * origin we do not hold or beyond our head. Throws PROTOCOL_VIOLATION before recording
   * anything.
   */
  peerAcked(ours: VersionVector, vv: VersionVector): void {
    for (const origin of Object.keys(vv)) {
      const held = ours[origin]
      if (held === undefined) throw violation(`ack names ${origin}, which this DRU does not hold`)
      if (vv[origin]! > held)
        throw violation(`ack claims ${origin}#${vv[origin]}, but this DRU holds only up to #${held}`)
    }
    for (const origin of Object.keys(vv)) {
      if ((this.#peerAcked[origin] ?? 0) < vv[origin]!) this.#peerAcked[origin] = vv[origin]!
      if ((this.#holdings[origin] ?? 0) < vv[origin]!) this.#holdings[origin] = vv[origin]!
    }
  }

  /** How far the peer acknowledged `origin` in this session. */
  ackedBy(origin: string): number {
    return this.#peerAcked[origin] ?? 0
  }

  /** How far the peer holds `origin` as far as we know (said, sent or acknowledged). */
  heldBy(origin: string): number {
    return this.#holdings[origin] ?? 0
  }
}
