import { decodeHlc, compareHlc } from '@dru/core'

/** One of the concurrent values of a conflicted field. */
export interface ConflictValue {
  /** Automerge op id `counter@actor`; the actor is the hex of the writing origin. */
  readonly opId: string
  /** The origin (`<dru-id>/<incarnation>`) that wrote this value. */
  readonly origin: string
  /** HLC of the event that carried the value, or null if it could not be found. */
  readonly hlc: string | null
  /** The value in canonical form (see `canonicalValue`). */
  readonly value: unknown
}

/** A field that holds concurrent values after reconciliation. */
export interface Conflict {
  readonly id: number
  readonly docId: string
  /** Path from the document root to the field (map keys and list indexes). */
  readonly path: ReadonlyArray<string | number>
  readonly values: readonly ConflictValue[]
  readonly detectedAt: number
  readonly status: 'open' | 'resolved'
  /** The value that settled the field (canonical form), when resolved. */
  readonly resolution?: unknown
  readonly resolvedAt?: number
  /** `operator`, `policy`, or `replicated` (the field stopped being conflicted by changes from elsewhere). */
  readonly resolvedBy?: string
}

/**
 * How conflicts are settled. `keep-visible` records the value the document already shows
 * (Automerge's deterministic pick, the same on every DRU) as the resolution and writes
 * nothing; conflicted counters stay open. `manual` leaves every conflict open for an operator.
 * `newest-hlc-wins` writes the value whose event has the highest HLC. `{ priority }` writes
 * the value written by the DRU listed first (then newest HLC). A function may pick an op id
 * to write, or return undefined to leave the conflict open. The writing policies write on
 * every DRU that finds the conflict, when it finds it (see docs/ARCHITECTURE.md, *Conflicts*).
 */
export type ConflictPolicy =
  | 'keep-visible'
  | 'manual'
  | 'newest-hlc-wins'
  | { readonly priority: readonly string[] }
  | ((conflict: Conflict) => string | undefined)

/** The op id the policy picks, or undefined to leave the conflict for an operator. */
export function chooseWinner(policy: ConflictPolicy, conflict: Conflict): string | undefined {
  if (policy === 'manual' || policy === 'keep-visible') return undefined
  if (typeof policy === 'function') return policy(conflict)
  const newest = [...conflict.values].sort(byNewest)
  if (policy === 'newest-hlc-wins') return newest[0]?.opId
  const rank = (v: ConflictValue): number => {
    const i = policy.priority.indexOf(v.origin.slice(0, v.origin.lastIndexOf('/')))
    return i < 0 ? Number.MAX_SAFE_INTEGER : i
  }
  return [...newest].sort((a, b) => rank(a) - rank(b))[0]?.opId
}

/** Newest HLC first; ties (and unknown HLCs) broken by op id so every DRU picks the same. */
function byNewest(a: ConflictValue, b: ConflictValue): number {
  if (a.hlc && b.hlc) {
    const c = compareHlc(decodeHlc(b.hlc), decodeHlc(a.hlc))
    if (c !== 0) return c
  } else if (a.hlc || b.hlc) {
    return a.hlc ? -1 : 1
  }
  return a.opId < b.opId ? 1 : a.opId > b.opId ? -1 : 0
}

/** Validates a policy from configuration; returns an error message or undefined. */
export function checkConflictPolicy(value: unknown): string | undefined {
  if (value === 'manual' || value === 'keep-visible' || value === 'newest-hlc-wins' || typeof value === 'function')
    return undefined
  if (value && typeof value === 'object' && Array.isArray((value as { priority?: unknown }).priority)) {
    const p = (value as { priority: unknown[] }).priority
    if (p.every((x) => typeof x === 'string' && x.length > 0) && Object.keys(value).length === 1) return undefined
  }
  return `must be 'keep-visible', 'manual', 'newest-hlc-wins', { priority: [dru ids] } or a function (got ${JSON.stringify(value)})`
}
