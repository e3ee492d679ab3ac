import { divergentOrigins, fingerprintDigest, summaryDigest, summaryMatches, type VersionVector } from '@dru/core'
import type { EventStore } from '@dru/store-sqlite'
import type { PeerStatus, SyncNode } from '@dru/sync'
import { assessPeers, type SyncAssessment } from './lifecycle-driver.js'
import type { PeerVerification } from './operations.js'

/**
 * Verification against peers: ask each connected peer for its log summary now (and, when
 * deep, its state digest) and compare. `dru verify` wants strict equality; the lifecycle's
 * `verifying` step asks the looser {@link peersAgree}.
 *
 * @module
 */

/** What verification reads: our log, our state digest, and the sync node to probe peers. */
export interface VerificationSources {
  readonly druId: string
  readonly store: EventStore
  readonly sync: SyncNode
  /** Digest of every document's materialised state (deep checks only). */
  readonly stateDigest: () => { digest: string }
}

/**
 * Asks every connected peer for its fingerprint now (and, when `deep`, its state digest)
 * and compares with ours. Unreachable peers are reported, not counted as different.
 */
export async function verifyPeers(
  s: VerificationSources,
  options: { deep: boolean; timeoutMs?: number },
): Promise<PeerVerification[]> {
  const ours = s.store.summary()
  const full = s.store.fingerprint()
  const local = options.deep ? s.stateDigest() : undefined
  return Promise.all(
    s.sync.peerStatus().map(async (p): Promise<PeerVerification> => {
      if (!p.connected) return { peer: p.id, reachable: false, equal: null }
      try {
        const r = await s.sync.probe(p.id, { deep: options.deep, timeoutMs: options.timeoutMs ?? 5_000 })
        // Equal logs, whatever each side has compacted (retired origins compare by their heads).
        const fpEqual = summaryMatches(full, r.summary)
        const stateEqual = !options.deep || (r.stateDigest !== null && r.stateDigest === local!.digest)
        return {
          peer: p.id,
          reachable: true,
          equal: fpEqual && stateEqual,
          // Equal logs show our (whole-log) digest; otherwise the peer's summary digest.
          remoteDigest: fpEqual ? fingerprintDigest(full) : summaryDigest(r.summary),
          ...(options.deep ? { remoteStateDigest: r.stateDigest, remoteDocuments: r.documents } : {}),
          divergentOrigins: divergentOrigins(ours.live, r.summary.live),
          ownEventsLacking: ownLack(s.druId, s.store.vv(), r.summary.live.vv),
        }
      } catch (err) {
        return { peer: p.id, reachable: false, equal: null, error: (err as Error).message }
      }
    }),
  )
}

/** Events of `druId`'s own origins (any incarnation) in `theirs` beyond `ours`. */
function ownLack(druId: string, ours: VersionVector, theirs: VersionVector): number {
  const prefix = `${druId}/`
  let n = 0
  for (const [origin, seq] of Object.entries(theirs))
    if (origin.startsWith(prefix)) n += Math.max(0, seq - (ours[origin] ?? 0))
  return n
}

/**
 * The `verifying` step's verdict: some peer was reached, no origin diverges (same seq,
 * different head: a fork), what either side lacks is within the live-write slack
 * (`inSync`), and, while restoring, no peer holds own events we still lack.
 */
export function peersAgree(
  results: readonly PeerVerification[],
  o: {
    ours: VersionVector
    live: VersionVector
    status: readonly PeerStatus[]
    restoring: boolean
    inSync: (a: SyncAssessment) => boolean
  },
): boolean {
  const status = new Map(o.status.map((p) => [p.id, p]))
  let reached = 0
  let ok = true
  for (const r of results) {
    if (!r.reachable) continue
    reached++
    if ((r.divergentOrigins?.length ?? 0) > 0) ok = false
    // A restore is over only when the peer, asked now, holds nothing of our own origins we lack.
    if (o.restoring && (r.ownEventsLacking ?? 0) > 0) ok = false
    const p = status.get(r.peer)
    if (p && !o.inSync(assessPeers(o.ours, [p], o.live))) ok = false
  }
  return ok && reached > 0
}
