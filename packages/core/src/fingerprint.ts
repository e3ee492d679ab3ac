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
