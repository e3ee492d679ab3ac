/**
 * A token bucket: `rate` tokens a second up to `burst`. Pure apart from the injected clock,
 * so rate limits behave the same in simulations and on sockets.
 */
export class TokenBucket {
  readonly #rate: number
  readonly #burst: number
  readonly #now: () => number
  #tokens: number
  #at: number

  constructor(rate: number, burst: number, now: () => number) {
    this.#rate = rate
    this.#burst = burst
    this.#now = now
    this.#tokens = burst
    this.#at = now()
  }

  /** Takes `n` tokens if there are enough; false (nothing taken) otherwise. */
  take(n = 1): boolean {
    const now = this.#now()
    const elapsed = Math.max(0, now - this.#at)
    this.#at = now
    this.#tokens = Math.min(this.#burst, this.#tokens + (elapsed / 1000) * this.#rate)
    if (this.#tokens < n) return false
    this.#tokens -= n
    return true
  }
}
