/**
 * The DRU lifecycle as a pure transition table (ARCHITECTURE §2, §7).
 *
 * The runtime turns what it observes (peers connect or vanish, catch-up finishes,
 * fingerprints compare equal or not) into {@link LifecycleSignal}s and feeds them to
 * {@link transition}. Keeping the table pure lets tests enumerate it and lets the
 * node log and count every edge without re-deriving the rules.
 */

/** Where a DRU stands after (or during) a regional failure. */
export const LifecycleState = {
  /** Opening the log; no peer contacted yet. Not ready. */
  STARTING: 'starting',
  /** Streaming missing events both ways with at least one peer. Not ready. */
  CATCHING_UP: 'catching-up',
  /** Caught up; comparing fingerprints (and, if asked, document digests). Not ready. */
  VERIFYING: 'verifying',
  /** In sync with every reachable peer, or standalone. The only ready state. */
  ACTIVE: 'active',
  /** No configured peer is reachable; local writes continue (availability first). */
  ISOLATED: 'isolated',
} as const

export type LifecycleState = (typeof LifecycleState)[keyof typeof LifecycleState]

/** Every lifecycle state, in the order of a normal start. */
export const LIFECYCLE_STATES: readonly LifecycleState[] = Object.freeze([
  LifecycleState.STARTING,
  LifecycleState.CATCHING_UP,
  LifecycleState.VERIFYING,
  LifecycleState.ACTIVE,
  LifecycleState.ISOLATED,
])

/** What the runtime observed. Signals that do not apply to the current state are ignored. */
export const LifecycleSignal = {
  /** The log is open and no peer is configured: a standalone DRU is ready at once. */
  NO_PEERS: 'no-peers',
  /** At least one peer answered (handshake done). */
  PEERS_REACHABLE: 'peers-reachable',
  /** No configured peer answers heartbeats any more (or none answered at start). */
  ALL_PEERS_LOST: 'all-peers-lost',
  /** Every reachable peer reports nothing we lack and lacks nothing we hold. */
  CAUGHT_UP: 'caught-up',
  /** Fingerprints (and deep digests, if asked) equal with every reachable peer. */
  VERIFIED: 'verified',
  /** Verification found a difference: go back and catch up again. */
  VERIFY_FAILED: 'verify-failed',
  /** A gap appeared (a peer holds events we lack, or lacks ours beyond the live window). */
  GAP_FOUND: 'gap-found',
  /** Opened from a stale backup or empty disk: own origin's events must come back first. */
  RESTORE_PENDING: 'restore-pending',
  /** The last peer was decommissioned: nobody is left to catch up or verify with. */
  LAST_PEER_REMOVED: 'last-peer-removed',
} as const

export type LifecycleSignal = (typeof LifecycleSignal)[keyof typeof LifecycleSignal]

/** Every lifecycle signal. */
export const LIFECYCLE_SIGNALS: readonly LifecycleSignal[] = Object.freeze(Object.values(LifecycleSignal))

const S = LifecycleState
const G = LifecycleSignal

/**
 * The table: state -> signal -> next state. A missing entry means "no change".
 *
 * Design notes:
 * - `active` is entered only from `verifying`, except a standalone DRU (`no-peers` while
 *   `starting`), which has nobody to verify against.
 * - `isolated` is left only to `catching-up`, so a healed partition always passes
 *   through catch-up and verification before reporting ready again.
 * - The one exception to both: `last-peer-removed` (every peer decommissioned) makes the
 *   DRU standalone from any state: there is nobody left to catch up or verify with.
 * - `all-peers-lost` wins from every state but `isolated` (already there): availability first.
 */
export const LIFECYCLE_TABLE: Readonly<
  Record<LifecycleState, Readonly<Partial<Record<LifecycleSignal, LifecycleState>>>>
> = Object.freeze({
  [S.STARTING]: Object.freeze({
    [G.NO_PEERS]: S.ACTIVE,
    [G.PEERS_REACHABLE]: S.CATCHING_UP,
    [G.ALL_PEERS_LOST]: S.ISOLATED,
    [G.RESTORE_PENDING]: S.CATCHING_UP,
    [G.GAP_FOUND]: S.CATCHING_UP,
    [G.LAST_PEER_REMOVED]: S.ACTIVE,
  }),
  [S.CATCHING_UP]: Object.freeze({
    [G.CAUGHT_UP]: S.VERIFYING,
    [G.ALL_PEERS_LOST]: S.ISOLATED,
    [G.LAST_PEER_REMOVED]: S.ACTIVE,
  }),
  [S.VERIFYING]: Object.freeze({
    [G.VERIFIED]: S.ACTIVE,
    [G.VERIFY_FAILED]: S.CATCHING_UP,
    [G.GAP_FOUND]: S.CATCHING_UP,
    [G.RESTORE_PENDING]: S.CATCHING_UP,
    [G.ALL_PEERS_LOST]: S.ISOLATED,
    [G.LAST_PEER_REMOVED]: S.ACTIVE,
  }),
  [S.ACTIVE]: Object.freeze({
    [G.GAP_FOUND]: S.CATCHING_UP,
    [G.VERIFY_FAILED]: S.CATCHING_UP,
    [G.RESTORE_PENDING]: S.CATCHING_UP,
    [G.ALL_PEERS_LOST]: S.ISOLATED,
  }),
  [S.ISOLATED]: Object.freeze({
    [G.PEERS_REACHABLE]: S.CATCHING_UP,
    [G.LAST_PEER_REMOVED]: S.ACTIVE,
  }),
})

/** True when `value` is one of the five lifecycle states. */
export function isLifecycleState(value: unknown): value is LifecycleState {
  return typeof value === 'string' && (LIFECYCLE_STATES as readonly string[]).includes(value)
}

/** True when `value` is a known lifecycle signal. */
export function isLifecycleSignal(value: unknown): value is LifecycleSignal {
  return typeof value === 'string' && (LIFECYCLE_SIGNALS as readonly string[]).includes(value)
}

/**
 * The state after `signal` in `state`. Signals that do not apply leave the state
 * unchanged (the runtime emits them from many places and need not know the table).
 */
export function transition(state: LifecycleState, signal: LifecycleSignal): LifecycleState {
  return LIFECYCLE_TABLE[state][signal] ?? state
}

/** Ready for traffic (what `/readyz` reports): only `active`. */
export function isReady(state: LifecycleState): boolean {
  return state === S.ACTIVE
}

/** One edge taken, for structured logs and the transitions counter. */
export interface LifecycleTransition {
  readonly from: LifecycleState
  readonly to: LifecycleState
  readonly signal: LifecycleSignal
  /** Wall-clock ms when the edge was taken. */
  readonly at: number
}

/** Options for {@link createLifecycle}. */
export interface LifecycleOptions {
  /** Defaults to `starting`. */
  readonly initial?: LifecycleState
  /** Injected clock (ms); defaults to `Date.now`. */
  readonly now?: () => number
  /** Called after each state change (not for ignored signals). Must not throw. */
  readonly onTransition?: (t: LifecycleTransition) => void
}

/** A small holder of the current state, so the runtime has one place that changes it. */
export interface Lifecycle {
  /** Current state. */
  state(): LifecycleState
  /** Wall-clock ms when the current state was entered. */
  since(): number
  /** Applies a signal; returns the edge taken, or `undefined` when the signal was ignored. */
  signal(signal: LifecycleSignal): LifecycleTransition | undefined
}

/**
 * A lifecycle tracker around {@link transition}: remembers the state and since when,
 * and reports each edge to `onTransition` (the node logs and counts it there).
 */
export function createLifecycle(options: LifecycleOptions = {}): Lifecycle {
  const now = options.now ?? Date.now
  let current: LifecycleState = options.initial ?? S.STARTING
  let since = now()
  return {
    state: () => current,
    since: () => since,
    signal(signal) {
      const next = transition(current, signal)
      if (next === current) return undefined
      const t: LifecycleTransition = { from: current, to: next, signal, at: now() }
      current = next
      since = t.at
      options.onTransition?.(t)
      return t
    },
  }
}
