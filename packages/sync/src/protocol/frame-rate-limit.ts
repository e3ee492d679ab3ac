import { DruError } from '@dru/core'
import type { FrameType } from '../frames.js'
import type { SessionLimits } from './session-config.js'
import { COSTLY_FRAMES } from './session-rules.js'
import { TokenBucket } from './token-bucket.js'

/**
 * How fast an open session's peer may send: every frame draws on one bucket, and frames
 * whose handling costs work proportional to our whole state (COSTLY_FRAMES) on a second,
 * smaller one, so a flood of cheap frames and a trickle of costly ones are both bounded.
 */
export class FrameRateLimit {
  readonly #limits: SessionLimits
  readonly #frames: TokenBucket
  readonly #costly: TokenBucket

  constructor(limits: SessionLimits, now: () => number) {
    this.#limits = limits
    this.#frames = new TokenBucket(limits.framesPerSecond, limits.frameBurst, now)
    this.#costly = new TokenBucket(limits.costlyFramesPerSecond, limits.costlyFrameBurst, now)
  }

  /** Takes the tokens a frame of `type` from `peerId` needs; RATE_LIMITED when it came too fast. */
  admit(type: FrameType, peerId: string | undefined): void {
    if (!this.#frames.take())
      throw new DruError('RATE_LIMITED', `${peerId} sent frames faster than ${this.#limits.framesPerSecond}/s`)
    if (COSTLY_FRAMES.has(type) && !this.#costly.take()) {
      throw new DruError(
        'RATE_LIMITED',
        `${peerId} sent ${type} frames faster than ${this.#limits.costlyFramesPerSecond}/s`,
      )
    }
  }
}
