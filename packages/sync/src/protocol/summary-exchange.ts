import type { KeyObject } from 'node:crypto'
import { DruError, parseOrigin, retiredSummary, type LogSummary, type ReplicaLog } from '@dru/core'
import type { VvFrame } from '../frames.js'
import { violation } from './session-rules.js'

/**
 * The summary exchange: the `vv` frame each side sends after the handshake (and again on
 * `expand` or after a gap), and the checks a received one must pass before we stream
 * anything. Pure functions over the log port.
 */

/** A retired origin as a peer's summary names it. */
export type RetiredEntry = { origin: string; seq: number; hash: string }

/** Our summary as a vv frame; `full` lists every retired origin instead of their digest. */
export function vvFrame(log: ReplicaLog, full: boolean): VvFrame {
  const summary = log.summary()
  const base = log.base()
  const bases: Record<string, number> = {}
  for (const o of Object.keys(summary.live.vv)) if (base[o]) bases[o] = base[o].seq
  if (!full) return { type: 'vv', summary, bases, full }
  const vv: Record<string, number> = { ...summary.live.vv }
  const heads: Record<string, string> = { ...summary.live.heads }
  for (const r of log.retired()) {
    vv[r.origin] = r.seq
    heads[r.origin] = r.hash
    bases[r.origin] = r.seq
  }
  return { type: 'vv', summary: { live: { vv, heads }, retired: summary.retired }, bases, full }
}

/**
 * Checks a peer's summary against our log: every origin belongs to a member, none claims
 * more of our own current origin than we wrote, and where we hold the event it names, the
 * hashes agree (a fork shows here first). Throws PROTOCOL_VIOLATION or FORK.
 */
export function checkPeerSummary(
  log: ReplicaLog,
  publicKeys: ReadonlyMap<string, KeyObject>,
  frame: VvFrame,
  peerId: string | undefined,
): void {
  const { vv, heads } = frame.summary.live
  const ownHead = log.vv()[log.origin] ?? 0
  for (const origin of Object.keys(vv)) {
    if (!publicKeys.has(parseOrigin(origin).druId)) throw violation(`vv names ${origin}, whose DRU is not a member`)
    const theirs = vv[origin]!
    if (origin === log.origin && theirs > ownHead)
      throw violation(`vv claims ${origin}#${theirs}, beyond this process's own head #${ownHead}`)
    const held = log.hashAt(origin, theirs)
    if (held !== undefined && held !== heads[origin]) {
      throw new DruError(
        'FORK',
        `fork: ${origin}#${theirs} is ${heads[origin]!.slice(0, 12)}… at ${peerId} but ${held.slice(0, 12)}… here`,
        {
          details: { origin, seq: theirs },
        },
      )
    }
  }
}

/** Our origins that make up a peer's retired summary, or undefined when we cannot name them. */
export function namedRetired(log: ReplicaLog, theirs: LogSummary): RetiredEntry[] | undefined {
  const live = theirs.live.vv
  const matches = (list: RetiredEntry[]) => {
    const r = retiredSummary(list.map((e) => [e.origin, e.seq, e.hash] as const))
    return r.count === theirs.retired.count && r.digest === theirs.retired.digest
  }
  const retired = log.retired().filter((r) => !Object.hasOwn(live, r.origin))
  if (matches(retired)) return retired
  const fp = log.fingerprint()
  const besides = Object.keys(fp.vv)
    .filter((o) => !Object.hasOwn(live, o))
    .map((o) => ({ origin: o, seq: fp.vv[o]!, hash: fp.heads[o]! }))
  return matches(besides) ? besides : undefined
}
