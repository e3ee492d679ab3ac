import {
  DruError,
  LifecycleState,
  countMissing,
  decodeHlc,
  divergentOrigins,
  equalFingerprints,
  fingerprintDigest,
  mergeVv,
  type LifecycleTransition,
} from '@dru/core'
import { clockIncarnation } from '@dru/store-sqlite'
import { startSync, type Logger, type PeerConfig, type PeerStatus, type SyncNode, type SyncOptions } from '@dru/sync'
import { LifecycleDriver, assessPeers, highestOwnIncarnation, staleOwnOrigin } from './lifecycle-driver.js'
import type { DruMetrics } from './metrics.js'
import type { Dru } from './dru.js'

/** Network settings of a DRU (the `listen`, `peers`, `secret`, `keys`, `sync` config fields). */
export interface NetworkConfig {
  readonly listen?: { host?: string; port?: number }
  readonly peers?: readonly PeerConfig[]
  readonly secret: string
  readonly keys: SyncOptions['keys']
  readonly tls?: SyncOptions['tls']
  readonly sync?: {
    heartbeatMs?: number
    heartbeatTimeoutMs?: number
    /** How long a starting DRU waits for a first peer before it calls itself isolated. */
    startupGraceMs?: number
    /** Unacknowledged live events tolerated when deciding "caught up". Default 1000. */
    slackEvents?: number
  }
}

/** One peer's answer to a verification (the admin API's PeerVerifyJson). */
export interface PeerVerification {
  readonly peer: string
  readonly reachable: boolean
  readonly equal: boolean | null
  readonly remoteDigest?: string
  readonly remoteStateDigest?: string | null
  readonly remoteDocuments?: number | null
  readonly divergentOrigins?: readonly string[]
  /** Events of this DRU's own origins (any incarnation) the peer holds and we lack. */
  readonly ownEventsLacking?: number
  readonly error?: string
}

/** Meta key: JSON list of DRU ids removed from the cluster by `dru decommission`. */
const DECOMMISSIONED_KEY = 'decommissioned'

/** How often the lifecycle is re-assessed (also on every peer up/down and ack). */
const EVALUATE_EVERY_MS = 100

/**
 * The networked half of a DRU: the sync node, the lifecycle driven by what it observes,
 * restore protection (no writes until the own origin's events are back), and the
 * metrics that follow peers and state.
 */
export class Network {
  readonly sync: SyncNode
  readonly driver: LifecycleDriver
  readonly #dru: Dru
  readonly #metrics: DruMetrics
  readonly #log: Logger
  readonly #timer: NodeJS.Timeout
  readonly #now: () => number
  readonly #configuredPeers: number
  #verifying = false

  private constructor(dru: Dru, sync: SyncNode, driver: LifecycleDriver, metrics: DruMetrics, log: Logger, now: () => number, peers: number) {
    this.#dru = dru
    this.sync = sync
    this.driver = driver
    this.#metrics = metrics
    this.#log = log
    this.#now = now
    this.#configuredPeers = peers
    const evaluate = () => this.evaluate()
    sync.on('peer-up', (id) => {
      log.info('peer up', { peer: id })
      evaluate()
    })
    sync.on('peer-down', (id, reason) => {
      log.warn('peer down', { peer: id, ...reason })
      evaluate()
    })
    sync.on('bootstrap', (info) => {
      log.warn('bootstrapped from document snapshots: a peer had compacted events this DRU lacked', { ...info })
      metrics.bootstraps.inc({ peer: info.peerId })
      evaluate()
    })
    sync.on('quarantine', (info) => {
      log.error('peer quarantined', info)
      metrics.quarantines.inc({ peer: info.peerId })
      if (info.code === 'FORK' || info.code === 'CHAIN_BROKEN') metrics.forks.inc({ peer: info.peerId })
    })
    // Our own earlier events arriving from a peer prove this log was an old copy. The
    // peer's vector is usually seen first (#detectStaleOrigin), but a short gap can arrive
    // in the same breath as the vector: say so either way, so the operator sees it.
    dru.store.onCommit((events, source) => {
      if (source !== 'remote' || this.driver.restoring || dru.closed) return
      const prefix = `${dru.id}/`
      const own = events.filter((e) => e.origin.startsWith(prefix) && e.origin !== dru.store.origin)
      if (own.length === 0) return
      evaluate()
      if (!this.driver.restoring) {
        log.warn('stale copy detected: events of an earlier incarnation came back from a peer (already caught up)', {
          origin: own[0]!.origin,
          events: own.length,
        })
      }
    })
    this.#timer = setInterval(evaluate, EVALUATE_EVERY_MS)
    this.#timer.unref()
    evaluate()
  }

  /**
   * Starts sync for an open DRU. Before any write: a DRU whose log cannot prove it is the
   * newest copy of its origin (crash, live backup, empty disk) takes a new incarnation,
   * so `(origin, seq)` is never reused; a new or restored DRU refuses writes until its
   * earlier events are back from a peer (`restore`), unless `allowWritesWhileRestoring`.
   */
  static async attach(
    dru: Dru,
    config: NetworkConfig,
    deps: { metrics: DruMetrics; log: Logger; now: () => number; restore?: boolean },
  ): Promise<Network> {
    const store = dru.store
    const peers = config.peers ?? []
    const restore = deps.restore === true || store.getMeta('restore_pending') === 1 || (store.isNew && peers.length > 0)
    if (restore) store.setMeta('restore_pending', 1)
    if (!store.openedClean && peers.length > 0) {
      const before = store.origin
      const origin = store.bumpIncarnation(clockIncarnation(deps.now()))
      deps.log.info('new incarnation: this log cannot prove it is the newest copy of its origin', { from: before, to: origin })
    }
    const decommissioned = readDecommissioned(store)
    const sync = await startSync({
      decommissioned,
      // Bootstrap in both directions: serve our snapshots to a peer below our compaction
      // base, and merge a peer's when we are below its base.
      snapshots: {
        page: (after, maxBytes) => dru.documents.snapshotPage(after, maxBytes),
        merge: (docs) => dru.documents.mergeSnapshots(docs),
      },
      store,
      druId: dru.id,
      ...(config.listen ? { listen: config.listen } : {}),
      peers,
      secret: config.secret,
      keys: config.keys,
      ...(config.tls ? { tls: config.tls } : {}),
      ...(config.sync?.heartbeatMs ? { heartbeatMs: config.sync.heartbeatMs } : {}),
      ...(config.sync?.heartbeatTimeoutMs ? { heartbeatTimeoutMs: config.sync.heartbeatTimeoutMs } : {}),
      logger: deps.log,
      now: deps.now,
      describe: () => dru.digest(),
    })
    const heartbeatTimeout = config.sync?.heartbeatTimeoutMs ?? 5_000
    const driver = new LifecycleDriver({
      peerCount: peers.filter((p) => !decommissioned.includes(p.id)).length,
      startupGraceMs: config.sync?.startupGraceMs ?? heartbeatTimeout,
      slackEvents: config.sync?.slackEvents ?? 1_000,
      now: deps.now,
      onTransition: (t: LifecycleTransition) => {
        deps.metrics.recordTransition(t)
        deps.log.info(`lifecycle ${t.from} -> ${t.to}`, { from: t.from, to: t.to, signal: t.signal })
        if (t.to === LifecycleState.ACTIVE && store.getMeta('restore_pending') === 1 && !store.closed) store.setMeta('restore_pending', 0)
      },
    })
    deps.metrics.setLifecycleState(driver.lifecycle.state())
    if (restore) driver.restorePending()
    const network = new Network(dru, sync, driver, deps.metrics, deps.log, deps.now, peers.length)
    const memberIds = Object.keys(config.keys.publicKeys).filter((id) => id !== dru.id)
    dru.useMembership({
      members: () => {
        const gone = new Set(readDecommissioned(store))
        const live = new Map(sync.peerStatus().map((p) => [p.id, p.ackedVv]))
        return memberIds
          .filter((id) => !gone.has(id))
          .map((id) => ({ id, acked: mergeVv(store.peer(id)?.ackedVv ?? {}, live.get(id) ?? {}) }))
      },
      decommission: (id, { force }) => network.decommission(id, memberIds, force),
    })
    return network
  }

  /** See {@link Dru.decommission}: persisted first, so a restart keeps the peer out. */
  decommission(id: string, memberIds: readonly string[], force: boolean): { id: string; removed: boolean } {
    const store = this.#dru.store
    if (id === this.#dru.id) throw new DruError('INVALID_ARGUMENT', `${id} cannot decommission itself`)
    if (!memberIds.includes(id)) throw new DruError('NOT_FOUND', `${id} is not a member of this cluster (no public key for it)`)
    const gone = readDecommissioned(store)
    if (gone.includes(id)) return { id, removed: false }
    const peer = this.sync.peerStatus().find((p) => p.id === id)
    if (peer?.connected && !force) {
      throw new DruError('INVALID_ARGUMENT', `${id} is connected right now, so it is not lost; stop it first, or pass force to remove a live DRU`)
    }
    store.setMeta(DECOMMISSIONED_KEY, JSON.stringify([...gone, id].sort()))
    this.sync.decommission(id)
    const left = this.sync.peerStatus().filter((p) => !p.decommissioned).length
    this.driver.setPeerCount(left)
    this.#log.warn('peer decommissioned: removed from membership; its replicated events stay', { peer: id })
    this.evaluate()
    return { id, removed: true }
  }

  /** True while a restored or new DRU waits for its own earlier events. */
  get restoring(): boolean {
    return this.driver.restoring
  }

  /** Re-assesses sync state and feeds the lifecycle (every 100 ms and on peer up/down). */
  evaluate(): void {
    if (this.#dru.closed) return
    const ours = this.#dru.store.vv()
    const status = this.sync.peerStatus().filter((p) => !p.decommissioned)
    this.#detectStaleOrigin(status)
    this.#keepIncarnationAbove(status)
    const assessment = assessPeers(ours, status)
    this.driver.observe(assessment)
    if (this.driver.lifecycle.state() === LifecycleState.VERIFYING && !this.#verifying) void this.#verify()
  }

  /**
   * Sets the per-peer gauges (connected, lag in events and seconds). Called when metrics
   * are scraped, not on the 100 ms lifecycle tick: the lag in seconds reads and re-hashes
   * the oldest unacknowledged event of every lagging origin, which nobody needs between scrapes.
   */
  refreshPeerMetrics(): void {
    if (this.#dru.closed) return
    const ours = this.#dru.store.vv()
    for (const p of this.sync.peerStatus()) {
      this.#metrics.peerConnected.set({ peer: p.id }, p.connected ? 1 : 0)
      this.#metrics.lagEvents.set({ peer: p.id, direction: 'outbound' }, countMissing(ours, p.ackedVv))
      this.#metrics.lagEvents.set({ peer: p.id, direction: 'inbound' }, countMissing(mergeVv(p.theirVv, p.ackedVv), ours))
      const lag = this.lagSeconds(p)
      this.#metrics.lagSeconds.set({ peer: p.id }, lag ?? 0)
    }
  }

  /**
   * Age in seconds of the oldest of our events the peer has not acknowledged (by its HLC),
   * or null when it holds everything. Never negative, whatever the clocks say.
   */
  lagSeconds(p: PeerStatus): number | null {
    const store = this.#dru.store
    let oldest: number | undefined
    for (const [origin, seq] of Object.entries(store.vv())) {
      const acked = p.ackedVv[origin] ?? 0
      if (acked >= seq) continue
      const e = store.getEvent(origin, acked + 1)
      if (!e) continue
      const wall = decodeHlc(e.hlc).wall
      if (oldest === undefined || wall < oldest) oldest = wall
    }
    return oldest === undefined ? null : Math.max(0, (this.#now() - oldest) / 1000)
  }

  /**
   * A peer holding more of our *current* origin than we do means this log is an old copy
   * (a backup restored after a clean stop): take a new incarnation before writing again.
   */
  /**
   * Incarnations only grow: if our log or a peer names an incarnation of our own id above
   * the one we write as (an empty disk under a clock running behind took a lower clock
   * incarnation), move above it before writing more.
   */
  #keepIncarnationAbove(status: readonly PeerStatus[]): void {
    const store = this.#dru.store
    const highest = highestOwnIncarnation(this.#dru.id, [store.vv(), ...status.flatMap((p) => [p.theirVv, p.ackedVv])])
    if (highest <= store.incarnation) return
    const before = store.origin
    const origin = store.bumpIncarnation(highest + 1)
    this.#log.warn('incarnation raised above one taken before (was this DRU\'s clock behind?)', { from: before, to: origin, seen: highest })
  }

  #detectStaleOrigin(status: readonly PeerStatus[]): void {
    const store = this.#dru.store
    const mine = store.head(store.origin)?.seq ?? 0
    for (const p of status) {
      const theirs = Math.max(p.theirVv[store.origin] ?? 0, p.ackedVv[store.origin] ?? 0)
      const older = this.#staleOlderOrigin(p)
      if (older && !this.driver.restoring) {
        // An earlier incarnation of ours is further ahead at a peer: this log is an old copy
        // (a live backup restored, or a machine crash that lost a tail). It already writes
        // under a new incarnation, so no fork; but until those events are back, the
        // application would read stale data, so refuse writes as for a restore.
        store.setMeta('restore_pending', 1)
        this.driver.restorePending()
        this.#log.error('stale copy detected: a peer holds newer events of an earlier incarnation; restoring', {
          peer: p.id,
          ...older,
        })
        return
      }
      if (theirs > mine) {
        const before = store.origin
        const origin = store.bumpIncarnation(clockIncarnation(this.#now()))
        store.setMeta('restore_pending', 1)
        this.driver.restorePending()
        this.#log.error('stale copy detected: a peer holds newer events of our origin; new incarnation, restoring', {
          peer: p.id,
          origin: before,
          theirs,
          mine,
          newOrigin: origin,
        })
        return
      }
    }
  }

  #ownLack(ours: Readonly<Record<string, number>>, theirs: Readonly<Record<string, number>>): number {
    const prefix = `${this.#dru.id}/`
    let n = 0
    for (const [origin, seq] of Object.entries(theirs)) if (origin.startsWith(prefix)) n += Math.max(0, seq - (ours[origin] ?? 0))
    return n
  }

  /** An earlier origin of this DRU (`<id>/<n>`, not the current one) the peer holds more of than we do. */
  #staleOlderOrigin(p: PeerStatus): { origin: string; theirs: number; mine: number } | undefined {
    const store = this.#dru.store
    return staleOwnOrigin(this.#dru.id, store.origin, store.vv(), [p.theirVv, p.ackedVv])
  }

  /**
   * The `verifying` step: probe every reachable peer's fingerprint. It passes when no
   * origin diverges (same seq, different head: a fork) and what either side lacks is
   * within the live-write slack; a strict equality check is `dru verify`'s job.
   */
  async #verify(): Promise<void> {
    this.#verifying = true
    try {
      const results = await this.verifyPeers({ deep: false, timeoutMs: 2_000 })
      const ours = this.#dru.store.vv()
      const status = new Map(this.sync.peerStatus().map((p) => [p.id, p]))
      let reached = 0
      let ok = true
      for (const r of results) {
        if (!r.reachable) continue
        reached++
        if ((r.divergentOrigins?.length ?? 0) > 0) ok = false
        // A restore is over only when the peer, asked now, holds nothing of our own origins we lack.
        if (this.driver.restoring && (r.ownEventsLacking ?? 0) > 0) ok = false
        const p = status.get(r.peer)
        if (p && !this.driver.inSync(assessPeers(ours, [p]))) ok = false
      }
      if (!this.#dru.closed) this.driver.verified(ok && reached > 0)
    } catch (err) {
      this.#log.warn('verification failed to run', { error: (err as Error).message })
      this.driver.verified(false)
    } finally {
      this.#verifying = false
    }
  }

  /**
   * Asks every connected peer for its fingerprint now (and, when `deep`, its state digest)
   * and compares with ours. Unreachable peers are reported, not counted as different.
   */
  async verifyPeers(options: { deep: boolean; timeoutMs?: number }): Promise<PeerVerification[]> {
    const ours = this.#dru.store.fingerprint()
    const local = options.deep ? this.#dru.digest() : undefined
    return Promise.all(
      this.sync.peerStatus().map(async (p): Promise<PeerVerification> => {
        if (!p.connected) return { peer: p.id, reachable: false, equal: null }
        try {
          const r = await this.sync.probe(p.id, { deep: options.deep, timeoutMs: options.timeoutMs ?? 5_000 })
          const fpEqual = equalFingerprints(ours, r.fingerprint)
          const stateEqual = !options.deep || (r.stateDigest !== null && r.stateDigest === local!.digest)
          return {
            peer: p.id,
            reachable: true,
            equal: fpEqual && stateEqual,
            remoteDigest: fingerprintDigest(r.fingerprint),
            ...(options.deep ? { remoteStateDigest: r.stateDigest, remoteDocuments: r.documents } : {}),
            divergentOrigins: divergentOrigins(ours, r.fingerprint),
            ownEventsLacking: this.#ownLack(ours.vv, r.fingerprint.vv),
          }
        } catch (err) {
          return { peer: p.id, reachable: false, equal: null, error: (err as Error).message }
        }
      }),
    )
  }

  /** Throws NOT_WRITABLE while restoring (see {@link attach}). */
  assertWritable(allowWhileRestoring: boolean): void {
    if (this.driver.restoring && !allowWhileRestoring) {
      throw new DruError(
        'NOT_WRITABLE',
        `DRU ${this.#dru.id} is restoring: writes wait until its earlier events are back from a peer (state ${this.driver.lifecycle.state()}); see docs/RUNBOOK.md`,
      )
    }
  }

  get configuredPeers(): number {
    return this.#configuredPeers
  }

  async close(): Promise<void> {
    clearInterval(this.#timer)
    await this.sync.close()
  }
}

/** The DRU ids removed by `dru decommission`, from the log's meta table. */
function readDecommissioned(store: Dru['store']): string[] {
  const raw = store.getMeta(DECOMMISSIONED_KEY)
  if (typeof raw !== 'string') return []
  const list = JSON.parse(raw) as unknown
  return Array.isArray(list) ? list.filter((x): x is string => typeof x === 'string') : []
}
