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

  /** What the peer holds as far as we know (a copy). */
  get holdings(): VersionVector {
    return { ...this.#holdings }
  }

  /** Starts over from the peer's vv. */
  resetHoldings(vv: VersionVector): void {
    this.#holdings = { ...vv }
  }

  /** The peer sent us `origin` up to `seq`: it holds it. */
  raise(origin: string, seq: number): void {
    if ((this.#holdings[origin] ?? 0) < seq) this.#holdings[origin] = seq
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
}
