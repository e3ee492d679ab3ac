import { DruError, fingerprintDigest, missingRanges, mergeVv, parseDocId } from '@dru/core'
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
  /** Deep check only: the logs are equal (when not, the documents are not compared: catch up first). */
  readonly logsEqual?: boolean
  /** Deep check only: the documents whose digests differ (at most `MAX_DIFFERENCES_LISTED`), by id. */
  readonly docsDiffering?: readonly string[]
  /** The same documents with both sides' digests and heads (null: that side lacks the document). */
  readonly differences?: readonly DocumentDifference[]
  /** How many documents differ (exact, even beyond the list). */
  readonly differingDocuments?: number
  /** What the tree walk cost: round trips (the deep probe included) and bytes of tree frames. */
  readonly tree?: { readonly roundTrips: number; readonly bytes: number }
  readonly error?: string
}

/** One document whose materialised state differs between us and a peer. */
export interface DocumentDifference {
  readonly docId: string
  readonly local: { readonly digest: string; readonly heads: readonly string[] } | null
  readonly remote: { readonly digest: string; readonly heads: readonly string[] } | null
}

/** What {@link Dru.verify} returns. */
export interface VerifyReport {
  /** True when no reachable peer differs, some peer was reached (if any is configured) and no document is isolated. */
  readonly ok: boolean
  readonly deep: boolean
  readonly local: {
    readonly digest: string
    readonly documents?: number
    /** Deep check only: the root of the document-digest tree. */
    readonly stateDigest?: string
    readonly isolatedDocuments?: number
    readonly isolated?: readonly string[]
  }
  readonly peers: readonly PeerVerification[]
}

/** One document rebuilt by {@link Dru.repair}. */
export interface RepairedDocument {
  readonly docId: string
  /** Digest and heads of its materialised state before and after (digest `isolated`: it could not be read). */
  readonly before: { readonly digest: string; readonly heads: readonly string[] } | null
  readonly after: { readonly digest: string; readonly heads: readonly string[] } | null
  /** Changes of the old snapshot that neither an event nor a folded envelope proves: dropped. */
  readonly droppedChanges: number
  /** Changes kept from the old snapshot because compaction folded them (proven by their envelopes). */
  readonly foldedChanges: number
  /** Events of the document in the log, replayed. */
  readonly logEvents: number
}

/** What {@link Dru.repair} returns. */
export interface RepairReport {
  /** Documents were rebuilt and no reachable peer still differs on any of them. */
  readonly ok: boolean
  /** Peers whose log differs from ours: nothing was repaired (catch up first: `dru gaps`). */
  readonly logsDiffer: readonly string[]
  readonly repaired: readonly RepairedDocument[]
  /** The deep verify run after the repair (absent when nothing was repaired or there are no peers). */
  readonly verify?: VerifyReport
  /** Of the repaired documents, those some reachable peer still holds differently. */
  readonly stillDiffering: readonly string[]
}

/** Most documents one repair may name. */
export const MAX_REPAIR_DOCS = 1000

/** The implementations behind {@link Dru.gaps}, {@link Dru.verify} and {@link Dru.repair}. */
export interface DruOperations {
  gaps(): GapReport
  verify(options: { deep: boolean }, progress: ProgressFn): Promise<VerifyReport>
  repair(docIds: readonly string[], progress: ProgressFn): Promise<RepairReport>
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
  function gaps(): GapReport {
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
  }

  async function verify({ deep }: { deep: boolean }, progress: ProgressFn): Promise<VerifyReport> {
    progress({ phase: 'verify-log', done: 0, total: store.count(), unit: 'events' })
    const log = store.verifyLog((p) => progress({ phase: 'verify-log', done: p.checked, unit: 'events' }))
    progress({ phase: 'verify-log', done: log.events, total: log.events, unit: 'events' })
    const local = deep ? documents.refreshDigests() : undefined
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
        ...(local ? { documents: local.documents, stateDigest: local.root } : {}),
        ...(isolated.count > 0
          ? { isolatedDocuments: isolated.count, isolated: isolated.docs.map((d) => d.docId) }
          : {}),
      },
      peers: results,
    }
  }

  const operations: DruOperations = {
    gaps,
    verify,
    async repair(docIds, progress): Promise<RepairReport> {
      // Every id is checked before anything changes: a bad list changes nothing.
      if (!Array.isArray(docIds) || docIds.length === 0 || docIds.length > MAX_REPAIR_DOCS)
        throw new DruError('INVALID_ARGUMENT', `name 1 to ${MAX_REPAIR_DOCS} documents to repair`)
      const ids = [...new Set(docIds.map((d) => parseDocId(d)))]
      const unknown = ids.filter((d) => !documents.exists(d))
      if (unknown.length > 0)
        throw new DruError('NOT_FOUND', `no document ${unknown.slice(0, 5).join(', ')} in the log or in a snapshot`, {
          details: { docIds: unknown.slice(0, 100) },
        })
      // A log that differs from a peer's is not a materialisation fault: catch-up is the answer.
      progress({ phase: 'compare-logs', done: 0 })
      const logs = peers ? await peers.verifyPeers({ deep: false }) : []
      const logsDiffer = logs.filter((p) => p.equal === false).map((p) => p.peer)
      if (logsDiffer.length > 0) return { ok: false, logsDiffer, repaired: [], stillDiffering: [] }
      const repaired: RepairedDocument[] = []
      for (const id of ids) {
        const r = documents.repair(id)
        const side = (e: typeof r.before) => (e ? { digest: e.digest, heads: [...e.heads] } : null)
        repaired.push({
          docId: r.docId,
          before: side(r.before),
          after: side(r.after),
          droppedChanges: r.droppedChanges,
          foldedChanges: r.foldedChanges,
          logEvents: r.logEvents,
        })
        progress({ phase: 'repair', done: repaired.length, total: ids.length, unit: 'docs' })
      }
      const check = peers && peers.configuredPeers > 0 ? await verify({ deep: true }, progress) : undefined
      const named = new Set<string>(ids)
      const still = new Set<string>()
      for (const p of check?.peers ?? []) for (const d of p.docsDiffering ?? []) if (named.has(d)) still.add(d)
      return {
        ok: still.size === 0,
        logsDiffer: [],
        repaired,
        ...(check ? { verify: check } : {}),
        stillDiffering: [...still].sort(),
      }
    },
  }
  return operations
}
