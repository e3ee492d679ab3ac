import type { EventStore } from '@dru/store-sqlite'
import type { SyncNode } from '@dru/sync'
import { eventLag, lagSeconds } from './lag.js'
import type { DruMetrics } from './metrics.js'

/**
 * Sets the per-peer gauges (connected, lag in events and seconds) and the listener's
 * connection gauges. Called when metrics are scraped, not on the 100 ms lifecycle tick:
 * the lag in seconds reads the oldest unacknowledged event of every lagging origin, which
 * nobody needs between scrapes.
 */
export function refreshPeerMetrics(store: EventStore, sync: SyncNode, metrics: DruMetrics, now: number): void {
  const ours = store.vv()
  const live = store.summary().live.vv
  const conns = sync.listenerStats()
  metrics.syncConnections.set({ state: 'open' }, conns.connections - conns.handshaking)
  metrics.syncConnections.set({ state: 'handshaking' }, conns.handshaking)
  metrics.syncConnectionsRefused.set(conns.refused)
  for (const p of sync.peerStatus()) {
    // A decommissioned peer is gone for good: no series, so alerts on a peer that is down or
    // lagging stop for it (status and gaps still list it).
    if (p.decommissioned) {
      metrics.peerConnected.remove({ peer: p.id })
      metrics.lagEvents.remove({ peer: p.id, direction: 'outbound' })
      metrics.lagEvents.remove({ peer: p.id, direction: 'inbound' })
      metrics.lagSeconds.remove({ peer: p.id })
      continue
    }
    const lag = eventLag(p, ours, live)
    metrics.peerConnected.set({ peer: p.id }, p.connected ? 1 : 0)
    metrics.lagEvents.set({ peer: p.id, direction: 'outbound' }, lag.theyLack)
    metrics.lagEvents.set({ peer: p.id, direction: 'inbound' }, lag.weLack)
    metrics.lagSeconds.set({ peer: p.id }, lagSeconds(store, p.ackedVv, now) ?? 0)
  }
}
