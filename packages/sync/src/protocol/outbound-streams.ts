import type { ReplicaLog, VersionVector } from '@dru/core'
import { DEFAULT_FORWARD_WINDOW_BYTES } from '../limits.js'
import type { Forwarding } from './forwarding.js'
import { signedBatches, type Outgoing } from './outbound-frames.js'
import type { SendWindow } from './send-window.js'
import type { ProtocolPlant, SessionLimits } from './session-config.js'

type Stream = Generator<Outgoing, void, undefined>

/** What the streams read. */
export interface StreamsContext {
  readonly log: ReplicaLog
  readonly window: SendWindow
  readonly forwarding: Forwarding
  readonly limits: SessionLimits
  readonly plant?: ProtocolPlant | undefined
}

/**
 * What a session streams its peer next, from two lazy streams over the log: the direct one
 * (a bootstrap being served, or every origin but the capped ones) inside the send window, and
 * the forward one (third parties' origins, see Forwarding.capped) inside the smaller forward
 * window. Both start from what the
 * peer holds or has in flight (the window's `known`) and skip what is held back; only one of
 * them is read from at a time, so an origin is never in both.
 */
export class OutboundStreams {
  readonly #c: StreamsContext
  #direct: Stream | null = null
  #directYielded = false
  #forward: Stream | null = null
  #forwardYielded = false
  /** True when the forward window was full at the last look: the next refill starts a new forward stream. */
  #forwardBlocked = false
  /** True while the direct stream is a bootstrap being served. */
  #serving = false

  constructor(context: StreamsContext) {
    this.#c = context
  }

  get serving(): boolean {
    return this.#serving
  }

  /** Serves a bootstrap: its frames go out first, then streaming resumes. */
  serve(frames: Stream): void {
    this.#serving = true
    this.#forward = null
    this.#direct = frames
    this.#directYielded = false
  }

  /** Streams start over from the window's view (nothing in flight is sent twice); a bootstrap being served goes on. */
  restart(): void {
    if (!this.#serving) this.#direct = null
    this.#forward = null
  }

  /** Nothing more is sent (the session closed). */
  stop(): void {
    this.#direct = null
    this.#forward = null
  }

  /** The next frame to send and whether it is a forward one, or undefined when there is nothing (or no room). */
  next(): { frame: Outgoing; forwarded: boolean } | undefined {
    const direct = this.#nextDirect()
    if (direct) return { frame: direct, forwarded: false }
    // Not while a bootstrap is served: it ends with the events above its base itself.
    const forwardWindow = this.#c.limits.forwardWindowBytes ?? DEFAULT_FORWARD_WINDOW_BYTES
    if (this.#serving) return undefined
    if (this.#c.window.forwardedBytes >= forwardWindow) {
      this.#forwardBlocked = true
      return undefined
    }
    // A stream reads the log lazily from where it was opened: one that waited for acks would
    // send what the peer got meanwhile by another path (its acks and routes raised `known`).
    if (this.#forwardBlocked) this.#forward = null
    this.#forwardBlocked = false
    const forward = this.#nextForward(forwardWindow)
    return forward && { frame: forward, forwarded: true }
  }

  /** True while something is held back from the peer that it may still need (the stream is not finished). */
  holdingBack(): boolean {
    return this.#c.forwarding.heldBack(this.#c.log.vv(), this.#c.window.known).size > 0
  }

  #nextDirect(): Outgoing | undefined {
    for (;;) {
      if (!this.#direct) {
        const ours = this.#c.log.vv()
        const { held, capped } = this.#plan(ours)
        const stream = this.#open(ours, (o) => held.has(o) || capped.has(o), this.#c.limits.maxBatchBytes)
        if (!stream) return undefined
        this.#direct = stream
        this.#directYielded = false
        // One stream at a time reads from what the peer holds or has in flight: the forward
        // stream starts over from there (an origin it was bringing may now be in this one).
        this.#forward = null
      }
      const next = this.#direct.next()
      if (!next.done) {
        this.#directYielded = true
        return next.value
      }
      const had = this.#directYielded
      this.#direct = null
      this.#serving = false
      if (!had) return undefined
    }
  }

  /** The capped origins only, in batches of a quarter of the forward window, so it stays busy while acks come back. */
  #nextForward(forwardWindow: number): Outgoing | undefined {
    for (;;) {
      if (!this.#forward) {
        const ours = this.#c.log.vv()
        const { held, capped } = this.#plan(ours)
        const batchBytes = Math.max(1, Math.min(this.#c.limits.maxBatchBytes, Math.floor(forwardWindow / 4)))
        const stream = this.#open(ours, (o) => !capped.has(o) || held.has(o), batchBytes)
        if (!stream) return undefined
        this.#forward = stream
        this.#forwardYielded = false
      }
      const next = this.#forward.next()
      if (!next.done) {
        this.#forwardYielded = true
        return next.value
      }
      const had = this.#forwardYielded
      this.#forward = null
      if (!had) return undefined
    }
  }

  /** Held back (the peer gets it elsewhere, see Forwarding.heldBack), and capped (third parties' origins). */
  #plan(ours: VersionVector): { held: Set<string>; capped: Set<string> } {
    const held = this.#c.forwarding.heldBack(ours, this.#c.window.known)
    const capped = new Set<string>()
    for (const o of Object.keys(ours)) if (!held.has(o) && this.#c.forwarding.capped(o)) capped.add(o)
    return { held, capped }
  }

  /** A stream of what the peer lacks but the skipped origins (they count as held by it), or null when there is none. */
  #open(ours: VersionVector, skip: (origin: string) => boolean, batchBytes: number): Stream | null {
    const base = this.#c.log.base()
    const known = this.#c.window.known
    // Tests only: the planted off-by-one (see ProtocolPlant).
    const slack = this.#c.plant === 'lack-off-by-one' ? 1 : 0
    const from: Record<string, number> = { ...known }
    let work = false
    for (const o of Object.keys(ours)) {
      if (skip(o)) {
        from[o] = Math.max(from[o] ?? 0, ours[o]!)
        continue
      }
      // Something the peer neither holds nor has in flight, and not below our base (it asks for a bootstrap).
      const k = known[o] ?? 0
      if (ours[o]! > k + slack && k >= (base[o]?.seq ?? 0)) work = true
    }
    return work ? signedBatches(this.#c.log, from, batchBytes) : null
  }
}
