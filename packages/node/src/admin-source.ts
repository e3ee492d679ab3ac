import { DruError, countMissing, fingerprintDigest, mergeVv, missingRanges, type LifecycleState } from '@dru/core'
import type { Conflict } from '@dru/documents'
import type { ConflictJson, GapsJson, OriginGapJson, PeerStatusJson, StatusJson, VerifyJson } from './admin-api.js'
import type { AdminSource } from './admin-routes.js'
import type { Dru } from './dru.js'
import { inboxAdmin, inboxSummary } from './inbox-admin.js'
import type { DruMetrics } from './metrics.js'
import type { Network } from './network.js'

const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString())

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

/** Adapts a running DRU to the admin HTTP server: what `/status`, `/gaps`, `/verify` and the CLI show. */
export function createAdminSource(dru: Dru, network: Network | undefined, metrics: DruMetrics): AdminSource {
  const state = (): LifecycleState => dru.state()
  return {
    state,
    status(): StatusJson {
      const summary = dru.store.summary()
      const ours = summary.live.vv
      const all = dru.store.vv()
      const peers: PeerStatusJson[] = (network?.sync.peerStatus() ?? []).map((p) => ({
        id: p.id,
        ...(p.url ? { url: p.url } : {}),
        connected: p.connected,
        since: iso(p.since),
        lastSeen: iso(p.lastSeen),
        lagEvents: countMissing(ours, p.ackedVv) + countMissing(mergeVv(p.theirVv, p.ackedVv), all),
        lagSeconds: network!.lagSeconds(p),
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
      }))
      const open = dru.conflicts.list('open').length
      metrics.conflictsOpen.set(open)
      const isolated = dru.isolatedDocuments()
      metrics.isolatedDocuments.set(isolated.count)
      const rejected = dru.documents.rejectedChanges(10)
      metrics.changesRejected.set(rejected.count)
      const inbox = inboxSummary(dru)
      if (inbox) metrics.setInboxCounts(inbox.handlers)
      return {
        id: dru.id,
        origin: dru.store.origin,
        state: state(),
        since: new Date(dru.stateSince()).toISOString(),
        // The digest covers the whole log (retired origins too), so equal digests mean equal logs
        // whatever each DRU has compacted; vv and heads list the live origins only.
        fingerprint: { digest: fingerprintDigest(dru.store.fingerprint()), vv: summary.live.vv, heads: summary.live.heads, retired: summary.retired },
        peers,
        conflictsOpen: open,
        writable: !(network?.restoring ?? false),
        skewedEvents: dru.store.skewedEvents,
        ...(network?.staleCopy ? { staleCopy: network.staleCopy } : {}),
        ...(inbox ? { inbox } : {}),
        ...(isolated.count > 0 ? { isolatedDocuments: { count: isolated.count, docs: isolated.docs.map((d) => ({ ...d, at: iso(d.at) })) } } : {}),
        ...(rejected.count > 0 ? { rejectedChanges: { count: rejected.count, latest: rejected.changes.map((c) => ({ ...c, at: iso(c.at) })) } } : {}),
        log: { events: dru.store.count(), base: dru.store.baseVv(), floor: dru.compactionFloor().floor },
      } as StatusJson
    },
    async metrics() {
      network?.refreshPeerMetrics()
      metrics.conflictsOpen.set(dru.conflicts.list('open').length)
      metrics.isolatedDocuments.set(dru.isolatedDocuments().count)
      metrics.changesRejected.set(dru.documents.rejectedChanges(0).count)
      metrics.logEvents.set(dru.store.count())
      metrics.setInboxCounts(dru.inbox.counts().handlers)
      return metrics.render()
    },
    gaps(): GapsJson {
      // Retired origins (folded into snapshots) are never acknowledged again: compare the live ones.
      const live = dru.store.summary().live.vv
      const all = dru.store.vv()
      return {
        peers: (network?.sync.peerStatus() ?? []).map((p) => {
          const theirs = mergeVv(p.theirVv, p.ackedVv)
          const origins = new Map<string, OriginGapJson>()
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
    async verify({ deep }, progress): Promise<VerifyJson> {
      progress({ phase: 'verify-log', done: 0, total: dru.store.count(), unit: 'events' })
      const log = dru.store.verifyLog((p) => progress({ phase: 'verify-log', done: p.checked, unit: 'events' }))
      progress({ phase: 'verify-log', done: log.events, total: log.events, unit: 'events' })
      const local = deep ? dru.digest() : undefined
      const peers = network ? await network.verifyPeers({ deep }) : []
      const isolated = dru.isolatedDocuments()
      // An isolated document is a local fault, whatever the peers say.
      const ok = isolated.count === 0 && peers.every((p) => p.equal !== false) && (network === undefined || peers.some((p) => p.equal === true) || network.configuredPeers === 0)
      return {
        ok,
        deep,
        local: {
          digest: fingerprintDigest(dru.store.fingerprint()),
          ...(local ? { documents: local.documents, stateDigest: local.digest } : {}),
          ...(isolated.count > 0 ? { isolatedDocuments: isolated.count, isolated: isolated.docs.map((d) => d.docId) } : {}),
        },
        peers,
      } as VerifyJson
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
