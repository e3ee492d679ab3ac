import type { VersionVector } from '@dru/core'

interface InFlight {
  readonly bytes: number
  /** Per origin, the last seq the frame carried; empty for frames any ack frees (snapshots). */
  readonly tips: ReadonlyArray<readonly [string, number]>
  /** A frame of the forward stream (third parties' origins inside the forward window). */
  readonly forwarded: boolean
}

/**
 * The sender's side of streaming: what the peer holds or has in flight (`known`), and a
 * window of sent-but-unacknowledged stream frames bounded in bytes. `ws` buffers without
 * limit for a slow reader, so dru bounds what it sends by the peer's acks.
 */
export class SendWindow {
  /** Per origin, the highest seq the peer holds or has in flight. */
  known: Record<string, number> = {}
  #frames: InFlight[] = []
  #unacked = 0
  #forwarded = 0
  /** When the oldest unacknowledged frame was sent or last freed (ms). */
  lastProgressAt = 0

  get unackedBytes(): number {
    return this.#unacked
  }

  /** Bytes of unacknowledged forward-stream frames (bounded by the forward window). */
  get forwardedBytes(): number {
    return this.#forwarded
  }

  get inFlight(): number {
    return this.#frames.length
  }

  /** Starts over from what the peer says it holds (a vv frame). */
  reset(known: VersionVector): void {
    this.known = { ...known }
    this.#frames = []
    this.#unacked = 0
    this.#forwarded = 0
  }

  /** Records a sent stream frame. */
  sent(bytes: number, tips: ReadonlyMap<string, number>, now: number, forwarded = false): void {
    for (const [o, s] of tips) if ((this.known[o] ?? 0) < s) this.known[o] = s
    if (this.#frames.length === 0) this.lastProgressAt = now
    this.#frames.push({ bytes, tips: [...tips], forwarded })
    this.#unacked += bytes
    if (forwarded) this.#forwarded += bytes
  }

  /**
   * An ack arrived carrying what the peer durably holds (a delta is enough: frames are freed
   * in order once `holds` covers their tips). Returns how many frames were freed. With
   * `onlyTipped` (we learnt what it holds from events it sent, not from an ack), a frame
   * without tips (a snapshot) stays: only an ack frees it.
   */
  acked(holds: (origin: string) => number, now: number, options: { onlyTipped?: boolean } = {}): number {
    let i = 0
    const covered = (f: InFlight) =>
      (!options.onlyTipped || f.tips.length > 0) && f.tips.every(([o, s]) => holds(o) >= s)
    while (i < this.#frames.length && covered(this.#frames[i]!)) {
      this.#unacked -= this.#frames[i]!.bytes
      if (this.#frames[i]!.forwarded) this.#forwarded -= this.#frames[i]!.bytes
      i++
    }
    if (i > 0) {
      this.#frames.splice(0, i)
      this.lastProgressAt = now
    }
    return i
  }

  /** Raises `known` to what an ack says the peer holds. */
  learn(vv: VersionVector): void {
    for (const o of Object.keys(vv)) if ((this.known[o] ?? 0) < vv[o]!) this.known[o] = vv[o]!
  }
}
