import { countMissing, decodeHlc, mergeVv, type DruEvent, type LogSummary, type VersionVector } from '@dru/core'

/**
 * How far apart this DRU and one peer are: in events each side lacks, and in the age of the
 * oldest event the peer has not acknowledged. The lifecycle (caught up?), `/status` and the
 * `dru_lag_*` gauges all read lag here, so they always agree.
 *
 * @module
 */

/** What lag is measured from, about one peer. */
export interface PeerPosition {
  /** What the peer holds as far as its sessions told us (its vv, raised by what it sent and acked). */
  readonly theirVv: VersionVector
  /** What the peer has durably acknowledged. */
  readonly ackedVv: VersionVector
}

/** Events each side lacks against one peer. */
export interface EventLag {
  /** Events the peer holds (claimed or acknowledged) that we lack: inbound lag. */
  readonly weLack: number
  /** Events we hold that the peer has not acknowledged: outbound lag. */
  readonly theyLack: number
}

/**
 * Pure: the events each side lacks. `ours` is everything we hold (what the peer may have
 * that we lack is measured against it); `live` leaves out retired origins, whose events are
 * folded into snapshots and never acknowledged again.
 */
export function eventLag(peer: PeerPosition, ours: VersionVector, live: VersionVector = ours): EventLag {
  return {
    weLack: countMissing(mergeVv(peer.theirVv, peer.ackedVv), ours),
    theyLack: countMissing(live, peer.ackedVv),
  }
}

/** The part of the log {@link lagSeconds} reads. */
export interface LagLog {
  summary(): LogSummary
  getEvent(origin: string, seq: number): DruEvent | undefined
}

/**
 * Age in seconds of the oldest of our events the peer has not acknowledged (by its HLC),
 * or null when it holds everything. Never negative, whatever the clocks say. It reads the
 * oldest unacknowledged event of every lagging origin: call it on demand, not on a tick.
 */
export function lagSeconds(log: LagLog, ackedVv: VersionVector, now: number): number | null {
  let oldest: number | undefined
  for (const [origin, seq] of Object.entries(log.summary().live.vv)) {
    const acked = ackedVv[origin] ?? 0
    if (acked >= seq) continue
    const e = log.getEvent(origin, acked + 1)
    if (!e) continue
    const wall = decodeHlc(e.hlc).wall
    if (oldest === undefined || wall < oldest) oldest = wall
  }
  return oldest === undefined ? null : Math.max(0, (now - oldest) / 1000)
}
