import { DruError } from '@dru/core'
import type { FrameType } from '../frames.js'

/**
 * Which frames a session accepts in which phase: the whole state machine of the protocol
 * as a table, kept pure so the model-based property test checks the session against it.
 *
 * - `hello`: nothing is known about the other side; only its `hello` (and an `error`, which
 *   closes the connection and changes nothing) may arrive.
 * - `auth`: its hello was acceptable; only its proofs may arrive.
 * - `open`: it proved the cluster secret and its DRU key. Sync frames flow; bootstrap frames
 *   (`snapshot`, `folded`, `bootstrap-end`) only while we are bootstrapping from it because
 *   we asked it to.
 * - `closed`: nothing.
 *
 * A frame outside the table is a PROTOCOL_VIOLATION: refused before it touches anything.
 * Within the table, the content is still checked against the session (acks only for origins
 * we hold, reports only for probes we sent, …) by the protocol itself.
 */
export type Phase = 'hello' | 'auth' | 'open' | 'closed'

export interface RuleState {
  readonly phase: Phase
  /** We sent `bootstrap` to this peer and it has not ended yet. */
  readonly bootstrapping: boolean
}

const OPEN: ReadonlySet<FrameType> = new Set<FrameType>([
  'vv',
  'expand',
  'events',
  'ack',
  'routes',
  'ping',
  'pong',
  'probe',
  'report',
  'tree-probe',
  'tree-report',
  'bootstrap',
  'error',
])
const BOOTSTRAP: ReadonlySet<FrameType> = new Set<FrameType>(['snapshot', 'folded', 'bootstrap-end'])

/** True when a frame of `type` may arrive in `state`. */
export function frameAllowed(state: RuleState, type: FrameType): boolean {
  switch (state.phase) {
    case 'hello':
      return type === 'hello' || type === 'error'
    case 'auth':
      return type === 'auth' || type === 'error'
    case 'open':
      return OPEN.has(type) || (state.bootstrapping && BOOTSTRAP.has(type))
    case 'closed':
      return false
  }
}

/** Refuses a frame of `type` that may not arrive in `state`: a PROTOCOL_VIOLATION saying where it came. */
export function checkFrameAllowed(state: RuleState, type: FrameType): void {
  if (!frameAllowed(state, type)) throw violation(`a ${type} frame is not allowed ${where(state)}`)
}

/** Where in the session a refused frame came, for the violation's message. */
function where(state: RuleState): string {
  if (state.phase === 'hello') return 'before the hello'
  if (state.phase === 'auth') return 'before authentication'
  if (state.phase === 'open') return state.bootstrapping ? 'during a bootstrap' : 'outside a bootstrap we asked for'
  return 'after close'
}

/** Frames whose handling costs work proportional to our whole state: rate-limited apart. */
export const COSTLY_FRAMES: ReadonlySet<FrameType> = new Set<FrameType>(['vv', 'expand', 'probe', 'bootstrap'])

/** Error codes after which a peer is quarantined: it offered a forked or forged history. */
export const QUARANTINE_CODES: ReadonlySet<string> = new Set(['FORK', 'CHAIN_BROKEN', 'HASH_MISMATCH', 'BAD_SIGNATURE'])

/** A PROTOCOL_VIOLATION: the peer sent something its proven role or the session's phase does not allow. */
export function violation(message: string): DruError {
  return new DruError('PROTOCOL_VIOLATION', message)
}
