/**
 * Reconnect delays: exponential growth from `baseMs`, capped at `maxMs`, with jitter so
 * that peers cut off together do not redial in lockstep. Pure; randomness is injected.
 */
export interface BackoffOptions {
  /** First delay (ms). Default 100. */
  baseMs?: number
  /**
   * Largest delay (ms). Default 1 000: after a partition heals a DRU must be back within a
   * second, not after a backoff that grew while the other side refused connections (a refused
   * dial costs next to nothing; one held open is cut by the handshake timeout).
   */
  maxMs?: number
  /** Growth per failed attempt. Default 2. */
  factor?: number
  /** Fraction of the delay that is randomised (0 = none, 1 = "full jitter"). Default 0.5. */
  jitter?: number
}

/** The longest delay a Node timer holds (about 24.8 days). */
export const MAX_TIMER_MS = 2_147_483_647

/** Delay before attempt `attempt` (0-based), given a random number in [0, 1). */
export function backoffDelay(attempt: number, random: () => number, options: BackoffOptions = {}): number {
  const base = options.baseMs ?? 100
  const max = options.maxMs ?? 1_000
  const factor = options.factor ?? 2
  const jitter = Math.min(1, Math.max(0, options.jitter ?? 0.5))
  const ceiling = Math.min(max, base * factor ** Math.min(attempt, 60))
  const delay = Math.round(ceiling * (1 - jitter) + ceiling * jitter * random())
  // A Node timer longer than 2^31 − 1 ms fires after 1 ms: never hand one out.
  return Math.min(delay, MAX_TIMER_MS)
}
