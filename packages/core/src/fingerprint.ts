import { createHash } from 'node:crypto'
import { GENESIS_HASH } from './event.js'
import { equalVv, normalizeVv, type VersionVector } from './version-vector.js'

/**
 * What a log holds, provably: its version vector plus, per origin, the hash of the last
 * event held. Because each hash chains to the one before, equal fingerprints mean
 * identical logs, event for event.
 */
export interface Fingerprint {
  readonly vv: VersionVector
  /** origin -> hash of the event at vv[origin]. */
  readonly heads: Readonly<Record<string, string>>
}

/** Same origins, same seqs, same chain heads. */
export function equalFingerprints(a: Fingerprint, b: Fingerprint): boolean {
  if (!equalVv(a.vv, b.vv)) return false
  for (const origin of Object.keys(normalizeVv(a.vv))) {
    if ((a.heads[origin] ?? GENESIS_HASH) !== (b.heads[origin] ?? GENESIS_HASH)) return false
  }
  return true
}

/** Short, stable digest of a fingerprint for display and logs (16 hex characters). */
export function fingerprintDigest(f: Fingerprint): string {
  const h = createHash('sha256')
  const vv = normalizeVv(f.vv)
  for (const origin of Object.keys(vv)) h.update(`${origin}\u0000${vv[origin]}\u0000${f.heads[origin] ?? ''}\n`)
  return h.digest('hex').slice(0, 16)
}

/**
 * Origins where both hold the same seq but different heads: the logs forked, or one
 * side is corrupt. Always empty between honest, healthy DRUs.
 */
export function divergentOrigins(a: Fingerprint, b: Fingerprint): string[] {
  return Object.keys(a.vv)
    .filter((o) => a.vv[o] === b.vv[o] && a.heads[o] !== b.heads[o])
    .sort()
}

/**
 * The origins a log holds only as a compaction base (head == base: every event folded into
 * document snapshots), summarised so that handshakes, acks and status stay small however many
 * incarnations a DRU went through. Two logs with equal summaries hold the same retired
 * origins at the same heads.
 */
export interface RetiredSummary {
  readonly count: number
  /** sha256 hex over the sorted `origin\0seq\0hash\n` lines. */
  readonly digest: string
}

/** What a log holds, for the wire and for status: the live origins' fingerprint and the retired ones' summary. */
export interface LogSummary {
  readonly live: Fingerprint
  readonly retired: RetiredSummary
}

/** The summary of a set of retired origins (any order in, canonical out). */
export function retiredSummary(
  entries: Iterable<readonly [origin: string, seq: number, hash: string]>,
): RetiredSummary {
  const lines = [...entries].map(([o, s, h]) => `${o}\u0000${s}\u0000${h}\n`).sort()
  const h = createHash('sha256')
  for (const line of lines) h.update(line)
  return { count: lines.length, digest: h.digest('hex') }
}

/** The summary of no retired origins. */
export const NO_RETIRED: RetiredSummary = retiredSummary([])

/** Equal live fingerprints and equal retired summaries: identical logs. */
export function equalSummaries(a: LogSummary, b: LogSummary): boolean {
  return (
    equalFingerprints(a.live, b.live) && a.retired.count === b.retired.count && a.retired.digest === b.retired.digest
  )
}

/** Short, stable digest of a summary for display and logs (16 hex characters). */
export function summaryDigest(s: LogSummary): string {
  if (s.retired.count === 0) return fingerprintDigest(s.live)
  return createHash('sha256').update(fingerprintDigest(s.live)).update(s.retired.digest).digest('hex').slice(0, 16)
}

/**
 * True when a peer whose summary is `theirs` holds exactly the log `ours` describes (our
 * full fingerprint, retired origins included), whatever each side has compacted: its live
 * origins match ours, and every other origin of ours is one of its retired origins at the
 * same head. Two DRUs that compacted differently still compare equal when their logs are.
 */
export function summaryMatches(ours: Fingerprint, theirs: LogSummary): boolean {
  const live = theirs.live.vv
  for (const origin of Object.keys(live)) {
    if (ours.vv[origin] !== live[origin] || ours.heads[origin] !== theirs.live.heads[origin]) return false
  }
  const rest: Array<[string, number, string]> = []
  for (const origin of Object.keys(ours.vv))
    if (!Object.hasOwn(live, origin) && ours.vv[origin]! > 0) rest.push([origin, ours.vv[origin]!, ours.heads[origin]!])
  const r = retiredSummary(rest)
  return r.count === theirs.retired.count && r.digest === theirs.retired.digest
}
