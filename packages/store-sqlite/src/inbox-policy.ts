import { DruError } from '@dru/core'

/**
 * How often a failed inbox handler is tried again before its event becomes a dead letter.
 * The first call is the one made when the event is stored; then `immediateRetries` calls as
 * soon as the retry worker gets a turn, then `delayedRetries` calls after `backoffMs`,
 * `2 × backoffMs`, `4 × backoffMs` … (capped at `maxBackoffMs`). A handler that still fails
 * after `1 + immediateRetries + delayedRetries` calls has its event dead-lettered.
 */
export interface InboxPolicy {
  readonly immediateRetries: number
  readonly delayedRetries: number
  readonly backoffMs: number
  readonly maxBackoffMs: number
  /** Most retries run by one worker turn (bounded work per tick). */
  readonly batch: number
}

export const DEFAULT_INBOX_POLICY: InboxPolicy = {
  immediateRetries: 2,
  delayedRetries: 5,
  backoffMs: 1_000,
  maxBackoffMs: 60_000,
  batch: 100,
}

/** Upper bounds that keep a typo from meaning "retry forever" or "block the event loop". */
const LIMITS: Record<keyof InboxPolicy, { min: number; max: number }> = {
  immediateRetries: { min: 0, max: 100 },
  delayedRetries: { min: 0, max: 1_000 },
  backoffMs: { min: 1, max: 86_400_000 },
  maxBackoffMs: { min: 1, max: 86_400_000 },
  batch: { min: 1, max: 10_000 },
}

/** The fields {@link InboxPolicy} accepts, for messages. */
export const INBOX_POLICY_FIELDS = Object.keys(LIMITS) as ReadonlyArray<keyof InboxPolicy>

/**
 * Checks a partial policy; returns a message (without the field name) naming the first bad
 * field, or undefined. Unknown fields are refused: a typo must not fall back to a default.
 */
export function checkInboxPolicy(v: unknown): string | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    return `must be an object { ${INBOX_POLICY_FIELDS.join(', ')} } (all optional)`
  for (const [k, x] of Object.entries(v)) {
    const limit = LIMITS[k as keyof InboxPolicy]
    if (!limit) return `has an unknown field "${k}" (expected ${INBOX_POLICY_FIELDS.join(', ')})`
    if (typeof x !== 'number' || !Number.isInteger(x) || x < limit.min || x > limit.max) {
      return `.${k} must be an integer in ${limit.min}..${limit.max} (got ${JSON.stringify(x)})`
    }
  }
  return undefined
}

/** The full policy from a partial one; CONFIG_INVALID naming the bad field. */
export function inboxPolicy(partial: Partial<InboxPolicy> = {}): InboxPolicy {
  const problem = checkInboxPolicy(partial)
  if (problem !== undefined) throw new DruError('CONFIG_INVALID', `inbox ${problem}`, { details: { field: 'inbox' } })
  return { ...DEFAULT_INBOX_POLICY, ...partial }
}

/**
 * After the handler failed its `attempts`-th call (counting the first, at ingest), when to
 * call it again: a time in ms, or `'dead'` when the retries are used up.
 */
export function nextAttempt(policy: InboxPolicy, attempts: number, now: number): number | 'dead' {
  const retriesDone = attempts - 1
  if (retriesDone < policy.immediateRetries) return now
  const delayed = retriesDone - policy.immediateRetries
  if (delayed >= policy.delayedRetries) return 'dead'
  // 2 ** delayed overflows to Infinity for absurd counts; min() caps it either way.
  return now + Math.min(policy.maxBackoffMs, policy.backoffMs * 2 ** delayed)
}
