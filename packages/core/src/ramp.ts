import { LifecycleState } from './lifecycle.js'

/**
 * The readiness weight a load balancer can follow to return traffic to a DRU gradually after
 * it rejoined: 0 while it is not `active`, then from `startPercent` when it became active up to
 * 100 once `windowMs` have passed. A DRU that just caught up has cold caches and may still be
 * folding a backlog into its documents; sending it a full share at once is how a recovered
 * region falls over again.
 *
 * @module
 */

/** How the weight grows after a DRU becomes `active`. */
export interface RampOptions {
  /** Weight (percent, 0–100) at the moment it becomes active. */
  readonly startPercent: number
  /** Time from `startPercent` to 100 %, in ms (0: full weight at once). */
  readonly windowMs: number
}

/** 10 % at once, full weight after five minutes. */
export const DEFAULT_RAMP: RampOptions = { startPercent: 10, windowMs: 300_000 }

/**
 * The weight (an integer percent) at `now` for a DRU in `state` since `since`. Never
 * decreases while it stays active, whatever the clock does (a clock stepping back holds the
 * weight at `startPercent`, never below).
 */
export function readyWeight(
  state: LifecycleState,
  since: number,
  now: number,
  ramp: RampOptions = DEFAULT_RAMP,
): number {
  if (state !== LifecycleState.ACTIVE) return 0
  if (ramp.windowMs <= 0) return 100
  const elapsed = Math.max(0, now - since)
  const share = Math.min(1, elapsed / ramp.windowMs)
  return Math.floor(ramp.startPercent + (100 - ramp.startPercent) * share)
}

/** Validates ramp options from configuration; returns an error message or undefined. */
export function checkRamp(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    return `must be an object { startPercent?, windowMs? } (got ${JSON.stringify(value)})`
  for (const [k, v] of Object.entries(value)) {
    if (k === 'startPercent') {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 100)
        return `.startPercent must be a number from 0 to 100 (got ${JSON.stringify(v)})`
    } else if (k === 'windowMs') {
      if (!Number.isSafeInteger(v) || (v as number) < 0)
        return `.windowMs must be a non-negative integer (got ${JSON.stringify(v)})`
    } else return `has an unknown field "${k}" (expected startPercent, windowMs)`
  }
  return undefined
}
