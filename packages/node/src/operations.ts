import { fingerprintDigest, missingRanges, mergeVv } from '@dru/core'
import type { DocumentStore } from '@dru/documents'
import type { EventStore } from '@dru/store-sqlite'
import type { PeerStatus } from '@dru/sync'

/**
 * What a DRU's long operations report and return: progress, gaps, verification. These are
 * domain results; the admin API maps them to its JSON (`admin-api.ts`), so the HTTP
 * contract and `Dru`'s own API can each change knowingly, never by accident.
 *
 * @module
 */

/** Progress of a long operation (compaction, verification). */
export interface Progress {
  /** What is happening, e.g. `verify-log`, `snapshot`, `delete`. */
  readonly phase: string
  readonly done: number
  readonly total?: number
  /** What `done` counts, e.g. `events`, `docs`. */
  readonly unit?: string
}

/** Reports progress; cheap to call often (nobody throttles it). */
export type ProgressFn = (p: Progress) => void

/** What one side lacks of one origin, against one peer. */
export interface OriginGap {
  readonly origin: string
  /** Highest contiguous seq we hold. */
  readonly local: number
  /** Highest contiguous seq the peer holds (as last reported or acknowledged). */
  readonly remote: number
  /** Events the peer holds that we lack. */
  readonly weLack: number
  /** Events we hold that the peer lacks. */
  readonly theyLack: number
}

/** Gaps against one peer: totals, and the origins where a side lacks something. */
export interface PeerGaps {
  readonly peer: string
  readonly connected: boolean
  readonly weLack: number
  readonly theyLack: number
  readonly origins: readonly OriginGap[]
}

/** What {@link Dru.gaps} returns. */
export interface GapReport {
  readonly peers: readonly PeerGaps[]
}

/** One peer's answer to a verification. */
export interface PeerVerification {
  readonly peer: string
  readonly reachable: boolean
  /** Fingerprints (and, when deep, state digests) equal; null when unreachable. */
  readonly equal: boolean | null
  readonly remoteDigest?: string
  readonly remoteStateDigest?: string | null
  readonly remoteDocuments?: number | null
  /** Origins with the same seq but different heads: a fork or corruption. */
  readonly divergentOrigins?: readonly string[]
  /** Events of this DRU's own origins (any incarnation) the peer holds and we lack. */
  readonly ownEventsLacking?: number
  readonly error?: string
}

/** What {@link Dru.verify} returns. */
export interface VerifyReport {
  /** True when no reachable peer differs, some peer was reached (if any is configured) and no document is isolated. */
  readonly ok: boolean
  readonly deep: boolean
  readonly local: {
    readonly digest: string
    readonly documents?: number
    readonly stateDigest?: string
    readonly isolatedDocuments?: number
    readonly isolated?: readonly string[]
  }
  readonly peers: readonly PeerVerification[]
}

/** The implementations behind {@link Dru.gaps} and {@link Dru.verify}. */
export interface DruOperations {
  gaps(): GapReport
  verify(options: { deep: boolean }, progress: ProgressFn): Promise<VerifyReport>
}

/** What the operations need of the network (absent for a standalone DRU). */
export interface OperationPeers {
  peerStatus(): readonly PeerStatus[]
  verifyPeers(options: { deep: boolean }): Promise<PeerVerification[]>
  readonly configuredPeers: number
}

/** Gaps and verification over a DRU's log, documents and (when networked) peers. */
export function createOperations(
  store: EventStore,
  documents: DocumentStore,
  peers: OperationPeers | undefined,
): DruOperations {
  return {
    gaps(): GapReport {
      // Retired origins (folded into snapshots) are never acknowledged again: compare the live ones.
      const live = store.summary().live.vv
      const all = store.vv()
      return {
        peers: (peers?.peerStatus() ?? []).map((p) => {
          const theirs = mergeVv(p.theirVv, p.ackedVv)
          const origins = new Map<string, OriginGap>()
          for (const r of [...missingRanges(live, theirs), ...missingRanges(theirs, all)]) {
            origins.set(r.origin, {
              origin: r.origin,
              local: all[r.origin] ?? 0,
              remote: theirs[r.origin] ?? 0,
              weLack: Math.max(0, (theirs[r.origin] ?? 0) - (all[r.origin] ?? 0)),
              theyLack: Math.max(0, (live[r.origin] ?? 0) - (theirs[r.origin] ?? 0)),
            })
          }
          const list = [...origins.values()].sort((a, b) => (a.origin < b.origin ? -1 : 1))
          return {
            peer: p.id,
            connected: p.connected,
            weLack: list.reduce((n, o) => n + o.weLack, 0),
            theyLack: list.reduce((n, o) => n + o.theyLack, 0),
            origins: list,
          }
        }),
      }
    },
    async verify({ deep }, progress): Promise<VerifyReport> {
      progress({ phase: 'verify-log', done: 0, total: store.count(), unit: 'events' })
      const log = store.verifyLog((p) => progress({ phase: 'verify-log', done: p.checked, unit: 'events' }))
      progress({ phase: 'verify-log', done: log.events, total: log.events, unit: 'events' })
      const local = deep ? documents.clusterDigest() : undefined
      const results = peers ? await peers.verifyPeers({ deep }) : []
      const isolated = documents.isolated()
      // An isolated document is a local fault, whatever the peers say.
      const ok =
        isolated.count === 0 &&
        results.every((p) => p.equal !== false) &&
        (peers === undefined || results.some((p) => p.equal === true) || peers.configuredPeers === 0)
      return {
        ok,
        deep,
        local: {
          digest: fingerprintDigest(store.fingerprint()),
          ...(local ? { documents: local.documents, stateDigest: local.digest } : {}),
          ...(isolated.count > 0
            ? { isolatedDocuments: isolated.count, isolated: isolated.docs.map((d) => d.docId) }
            : {}),
        },
        peers: results,
      }
    },
  }
}
