/**
 * The probe id a session uses for itself, to refresh what the peer holds when acks cannot
 * tell (see `AckLedger.untold`); verification probes (`Probes`) number from 1.
 */
export const REFRESH_PROBE = 0

/**
 * Refresh probes are costly frames for the peer (rate-limited to a few per second), so at
 * most one per second, and while a refresh changes nothing (the peer truly lacks what we
 * cannot stream it, e.g. below our compaction base), twice as rarely each time, up to 30 s.
 */
export const REFRESH_MIN_INTERVAL_MS = 1_000
export const REFRESH_MAX_INTERVAL_MS = 30_000

/**
 * When a session may next send its refresh probe: no earlier than the interval after the
 * last one, and the interval doubles while refreshes leave the peer's holdings untold.
 * Timing only; whether one is in flight is the session's {@link PendingProbes}.
 */
export class RefreshSchedule {
  /** The least interval (the limits may shorten it, as the simulation does). */
  readonly #min: number
  /** Earliest time of the next refresh probe. */
  #at = 0
  /** The interval after the next refresh probe. */
  #every: number

  constructor(refreshIntervalMs: number | undefined) {
    this.#min = refreshIntervalMs ?? REFRESH_MIN_INTERVAL_MS
    this.#every = this.#min
  }

  /** True when the interval since the last refresh probe has passed. */
  due(now: number): boolean {
    return now >= this.#at
  }

  /** A refresh probe went out at `now`. */
  sent(now: number): void {
    this.#at = now + this.#every
  }

  /** Its answer came; `stillUntold` when the peer's holdings are still not known (back off). */
  answered(stillUntold: boolean): void {
    this.#every = stillUntold ? Math.min(this.#every * 2, Math.max(this.#min, REFRESH_MAX_INTERVAL_MS)) : this.#min
  }
}
