import {
  TREE_FANOUT,
  TREE_LEVELS,
  diffEntries,
  divergentOrigins,
  fingerprintDigest,
  summaryDigest,
  summaryMatches,
  walkTrees,
  type TreeDifference,
  type TreeEntry,
  type VersionVector,
} from '@dru/core'
import type { EventStore } from '@dru/store-sqlite'
import { MAX_TREE_NODES, type PeerStatus, type SyncNode } from '@dru/sync'
import { assessPeers, type SyncAssessment } from './lifecycle-driver.js'
import type { DocumentDifference, PeerVerification } from './operations.js'

/**
 * Verification against peers: ask each connected peer for its log summary now (and, when
 * deep, the root of its document-digest tree) and compare. `dru verify` wants strict
 * equality; the lifecycle's `verifying` step asks the looser {@link peersAgree}.
 *
 * A deep verify whose logs are equal but whose roots differ walks the two trees (core's
 * `walkTrees`): one round trip per level asks the peer for the children of the nodes that
 * still differ, then one for the documents of the differing buckets, and names the
 * documents whose digests differ with both sides' heads. Round trips: the probe plus
 * TREE_LEVELS + 1; bytes: ~2 KiB per differing document plus its bucket's entries. When the
 * logs differ the walk is skipped: the documents are expected to differ, catch-up is the answer.
 *
 * @module
 */

/** Most differing documents one peer's result lists (the count is always exact). */
export const MAX_DIFFERENCES_LISTED = 1000

/** What verification reads: our log, our state digest, and the sync node to probe peers. */
export interface VerificationSources {
  readonly druId: string
  readonly store: EventStore
  readonly sync: SyncNode
  /** Our document-digest tree (deep checks only): refreshed once per verify, then read. */
  readonly tree: {
    refresh(): { root: string; documents: number }
    children(level: number, index: number): Uint8Array[]
    bucket(index: number): TreeEntry[]
  }
}

/**
 * Asks every connected peer for its fingerprint now (and, when `deep`, its state digest)
 * and compares with ours. Unreachable peers are reported, not counted as different.
 */
export async function verifyPeers(
  s: VerificationSources,
  options: { deep: boolean; timeoutMs?: number; recentMs?: number },
): Promise<PeerVerification[]> {
  const ours = s.store.summary()
  const full = s.store.fingerprint()
  const local = options.deep ? s.tree.refresh() : undefined
  const timeoutMs = options.timeoutMs ?? 5_000
  return Promise.all(
    s.sync.peerStatus().map(async (p): Promise<PeerVerification> => {
      if (!p.connected) return { peer: p.id, reachable: false, equal: null }
      try {
        const r = await s.sync.probe(p.id, {
          deep: options.deep,
          timeoutMs,
          ...(options.recentMs !== undefined ? { recentMs: options.recentMs } : {}),
        })
        // Equal logs, whatever each side has compacted (retired origins compare by their heads).
        const fpEqual = summaryMatches(full, r.summary)
        const stateEqual = !options.deep || (r.stateDigest !== null && r.stateDigest === local!.root)
        const walk =
          options.deep && fpEqual && !stateEqual && r.stateDigest !== null
            ? await walkPeer(s, p.id, timeoutMs)
            : undefined
        return {
          peer: p.id,
          reachable: true,
          equal: fpEqual && stateEqual,
          ...(options.deep ? { logsEqual: fpEqual } : {}),
          ...(walk ?? {}),
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

/**
 * Walks our digest tree against `peerId`'s (whose root differs from ours) and names the
 * documents that differ, with the round trips and tree-frame bytes it took.
 */
async function walkPeer(
  s: VerificationSources,
  peerId: string,
  timeoutMs: number,
): Promise<Pick<PeerVerification, 'docsDiffering' | 'differences' | 'differingDocuments' | 'tree'>> {
  let bytes = 0
  const { buckets, rounds } = await walkTrees(
    (level, index) => s.tree.children(level, index),
    async (level, nodes) => {
      const r = await s.sync.treeProbe(peerId, level, nodes, { timeoutMs })
      bytes += r.bytes
      return nodes.map((_, i) => r.hashes.slice(i * TREE_FANOUT, (i + 1) * TREE_FANOUT))
    },
    MAX_TREE_NODES,
  )
  const chunks: number[][] = []
  for (let i = 0; i < buckets.length; i += MAX_TREE_NODES) chunks.push(buckets.slice(i, i + MAX_TREE_NODES))
  const answers = await Promise.all(chunks.map((c) => s.sync.treeProbe(peerId, TREE_LEVELS, c, { timeoutMs })))
  // One answer may list up to MAX_TREE_DOCS entries, more than a spread's arguments can hold.
  const theirs: TreeEntry[] = []
  for (const a of answers) {
    bytes += a.bytes
    for (const d of a.docs) theirs.push(d)
  }
  const ours = buckets.flatMap((b) => s.tree.bucket(b))
  const diffs = diffEntries(ours, theirs)
  const listed = diffs.slice(0, MAX_DIFFERENCES_LISTED).map(toDifference)
  return {
    docsDiffering: listed.map((d) => d.docId),
    differences: listed,
    differingDocuments: diffs.length,
    // The deep probe that brought the root, one question per level, one for the buckets.
    tree: { roundTrips: 1 + rounds + (chunks.length > 0 ? 1 : 0), bytes },
  }
}

function toDifference(d: TreeDifference): DocumentDifference {
  const side = (e: TreeEntry | undefined) => (e ? { digest: e.digest, heads: [...e.heads] } : null)
  return { docId: d.docId, local: side(d.local), remote: side(d.remote) }
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
