import {
  countMissing,
  DruError,
  fingerprintDigest,
  readyWeight,
  type LifecycleState,
  type RampOptions,
} from '@dru/core'
import type { Conflict } from '@dru/documents'
import type { PeerStatus } from '@dru/sync'
import type { ConflictJson, GapsJson, PeerStatusJson, RepairJson, StatusJson, VerifyJson } from './admin-api.js'
import type { AdminSource } from './admin-routes.js'
import type { Dru } from './dru.js'
import { inboxAdmin, inboxSummary } from './inbox-admin.js'
import { eventLag, lagSeconds } from './lag.js'
import type { DruMetrics } from './metrics.js'
import type { Network } from './network.js'

/**
 * Adapts a running DRU to the admin HTTP server: maps its domain API to the JSON of
 * `admin-api.ts` for `/status`, `/gaps`, `/verify` and the CLI. No casts: when the DRU
 * reports something the contract does not declare, this file stops compiling.
 *
 * @module
 */

const iso = (ms: number | null | undefined): string | null =>
  ms === null || ms === undefined ? null : new Date(ms).toISOString()

function conflictJson(c: Conflict): ConflictJson {
  return {
    id: c.id,
    docId: c.docId,
    path: c.path,
    values: c.values.map((v) => ({ origin: v.origin, value: v.value, hlc: v.hlc ?? null, opId: v.opId })),
    detectedAt: c.detectedAt,
    status: c.status,
    ...(c.resolution !== undefined ? { resolution: c.resolution } : {}),
    ...(c.resolvedAt !== undefined ? { resolvedAt: c.resolvedAt } : {}),
    ...(c.resolvedBy !== undefined ? { resolvedBy: c.resolvedBy } : {}),
  }
}

function conflictId(id: string): number {
  const n = Number(id)
  if (!Number.isInteger(n) || n < 1) throw new DruError('NOT_FOUND', `no conflict ${JSON.stringify(id)}`)
  return n
}

/** One peer's line in `/status`: `lag` from {@link eventLag}, both directions together. */
function peerJson(p: PeerStatus, lag: { weLack: number; theyLack: number }, seconds: number | null): PeerStatusJson {
  return {
    id: p.id,
    ...(p.url ? { url: p.url } : {}),
    connected: p.connected,
    since: iso(p.since),
    lastSeen: iso(p.lastSeen),
    ...(p.lifecycle
      ? { lifecycle: { state: p.lifecycle.name, since: new Date(p.lifecycle.since).toISOString() } }
      : {}),
    lagEvents: lag.theyLack + lag.weLack,
    lagSeconds: seconds,
    membership: p.decommissioned ? 'decommissioned' : p.quarantined ? 'quarantined' : 'member',
    bytesIn: p.bytesIn,
    bytesOut: p.bytesOut,
    eventsIn: p.eventsIn,
    duplicatesIn: p.duplicatesIn,
    ...(p.snapshotDocsIn > 0 ? { snapshotDocsIn: p.snapshotDocsIn } : {}),
    ...(p.quarantine ? { quarantine: p.quarantine } : {}),
    ...(p.lastError ? { lastError: p.lastError } : {}),
    ...(p.origins.length > 1 ? { identityConflict: { origins: p.origins } } : {}),
    ...(p.violations > 0 ? { violations: p.violations } : {}),
  }
}

/** What {@link createAdminSource} serves from. */
export interface AdminSourceParts {
  readonly dru: Dru
  /** Absent for a standalone DRU. */
  readonly network: Network | undefined
  readonly metrics: DruMetrics
  readonly now: () => number
  readonly ramp: RampOptions
}

/** Adapts a running DRU to the admin HTTP server: what `/status`, `/gaps`, `/verify` and the CLI show. */
export function createAdminSource({ dru, network, metrics, now, ramp }: AdminSourceParts): AdminSource {
  const state = (): LifecycleState => dru.state()
  const weight = (): number => {
    const w = readyWeight(dru.state(), dru.stateSince(), now(), ramp)
    metrics.readyWeight.set(w)
    return w
  }
  return {
    state,
    readyWeight: weight,
    status(): StatusJson {
      const summary = dru.store.summary()
      const live = summary.live.vv
      const all = dru.store.vv()
      const peers = (network?.sync.peerStatus() ?? []).map((p) =>
        peerJson(p, eventLag(p, all, live), lagSeconds(dru.store, p.ackedVv, now())),
      )
      const open = dru.conflicts.list('open').length
      metrics.conflictsOpen.set(open)
      const resolved = dru.conflicts.counts().resolved
      for (const [by, n] of Object.entries(resolved)) metrics.conflictsResolved.set({ by }, n)
      const isolated = dru.isolatedDocuments()
      metrics.isolatedDocuments.set(isolated.count)
      const rejected = dru.documents.rejectedChanges(10)
      metrics.changesRejected.set(rejected.count)
      const inbox = inboxSummary(dru)
      if (inbox) metrics.setInboxCounts(inbox.handlers)
      const staleCopy = network?.restore.staleCopy
      return {
        id: dru.id,
        origin: dru.store.origin,
        state: state(),
        since: new Date(dru.stateSince()).toISOString(),
        readyWeight: weight(),
        // The digest covers the whole log (retired origins too), so equal digests mean equal logs
        // whatever each DRU has compacted; vv and heads list the live origins only.
        fingerprint: {
          digest: fingerprintDigest(dru.store.fingerprint()),
          vv: summary.live.vv,
          heads: summary.live.heads,
          retired: summary.retired,
        },
        peers,
        conflictsOpen: open,
        conflictsResolved: resolved,
        writable: !(network?.restore.restoring ?? false),
        skewedEvents: dru.store.skewedEvents,
        ...(staleCopy ? { staleCopy } : {}),
        ...(inbox ? { inbox } : {}),
        ...(isolated.count > 0
          ? {
              isolatedDocuments: {
                count: isolated.count,
                docs: isolated.docs.map((d) => ({ ...d, at: new Date(d.at).toISOString() })),
              },
            }
          : {}),
        ...(rejected.count > 0
          ? {
              rejectedChanges: {
                count: rejected.count,
                latest: rejected.changes.map((c) => ({ ...c, at: new Date(c.at).toISOString() })),
              },
            }
          : {}),
        log: { events: dru.store.count(), base: dru.store.baseVv(), floor: dru.compactionFloor().floor },
      }
    },
    async metrics() {
      network?.refreshPeerMetrics()
      metrics.conflictsOpen.set(dru.conflicts.list('open').length)
      weight()
      for (const [by, n] of Object.entries(dru.conflicts.counts().resolved)) metrics.conflictsResolved.set({ by }, n)
      metrics.isolatedDocuments.set(dru.isolatedDocuments().count)
      metrics.changesRejected.set(dru.documents.rejectedChanges(0).count)
      metrics.logEvents.set(dru.store.count())
      const floor = dru.compactionFloor().floor
      metrics.compactionFloorEvents.set(Object.values(floor).reduce((n, seq) => n + seq, 0))
      metrics.compactionHeldBackEvents.set(countMissing(dru.store.summary().live.vv, floor))
      metrics.setInboxCounts(dru.inbox.counts().handlers)
      return metrics.render()
    },
    // The domain reports have the wire's shape; the annotations make tsc hold them to it.
    gaps(): GapsJson {
      return dru.gaps()
    },
    async verify({ deep }, progress): Promise<VerifyJson> {
      return dru.verify({ deep, onProgress: progress })
    },
    async repair(docIds, progress): Promise<RepairJson> {
      return dru.repair(docIds, { onProgress: progress })
    },
    async compact(progress) {
      const r = await dru.compact({ onProgress: progress })
      metrics.compactedEvents.inc(r.eventsRemoved)
      return r
    },
    ...(network
      ? {
          decommission(id: string, force: boolean) {
            return dru.decommission(id, { force })
          },
          unquarantine(peerId: string) {
            const peer = network.sync.peerStatus().find((p) => p.id === peerId)
            if (!peer) throw new DruError('NOT_FOUND', `${peerId} is not a configured peer`)
            if (!peer.quarantined) return { peer: peerId, lifted: false }
            network.sync.unquarantine(peerId)
            return { peer: peerId, lifted: true }
          },
        }
      : {}),
    inbox: inboxAdmin(dru),
    conflicts: {
      list: (filter) => dru.conflicts.list(filter).map(conflictJson),
      get: (id) => {
        const c = dru.conflicts.get(conflictId(id))
        return c ? conflictJson(c) : undefined
      },
      resolve: async (id, value) => {
        const n = conflictId(id)
        if (!dru.conflicts.get(n)) throw new DruError('NOT_FOUND', `no conflict ${n}`)
        const { event } = await dru.conflicts.resolve(n, value)
        return { id: n, status: 'resolved', ...(event ? { event: { origin: event.origin, seq: event.seq } } : {}) }
      },
    },
  }
}
