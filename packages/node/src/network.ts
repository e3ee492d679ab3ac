import {
  DruError,
  LifecycleState,
  countMissing,
  decodeHlc,
  divergentOrigins,
  fingerprintDigest,
  summaryMatches,
  mergeVv,
  summaryDigest,
  type DruEvent,
  type LifecycleTransition,
  type VersionVector,
} from '@dru/core'
import { MetaKey } from '@dru/store-sqlite'
import { startSync, type Logger, type PeerConfig, type PeerStatus, type SyncNode, type SyncOptions } from '@dru/sync'
import { LifecycleDriver, assessPeers } from './lifecycle-driver.js'
import { ownWritesMissingAtOpen } from './stale-copy.js'
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
    /** Per-session frame rates and listener caps (defaults in @dru/sync's limits). */
    rates?: SyncOptions['rates']
    listenerCaps?: SyncOptions['listenerCaps']
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

/** What proved that this DRU started from an old copy of its database. */
export interface StaleCopyReport {
  /** An earlier origin of this DRU whose events written before this process started were missing here. */
  readonly origin: string
  /** Such events received so far from peers (all signed by this DRU's key). */
  readonly recovered: number
  /** When the first one arrived (ms). */
  readonly at: number
}

/** Meta key: JSON list of DRU ids removed from the cluster by `dru decommission`. */
const DECOMMISSIONED_KEY = MetaKey.DECOMMISSIONED

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
  /** Heads of this DRU's own origins when the process opened its database. */
  readonly #ownAtOpen: VersionVector
  readonly #openedAt: number
  #staleCopy: StaleCopyReport | undefined
  #verifying = false

  private constructor(
    dru: Dru,
    sync: SyncNode,
    driver: LifecycleDriver,
    metrics: DruMetrics,
    log: Logger,
    now: () => number,
    peers: number,
    opened: { ownAtOpen: VersionVector; at: number },
  ) {
    this.#ownAtOpen = opened.ownAtOpen
    this.#openedAt = opened.at
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
    sync.on('violation', (info) => {
      metrics.protocolViolations.inc({ peer: info.authenticated ? (info.peerId ?? '') : '', code: info.code })
    })
    sync.on('identity-conflict', (info) => {
      log.error('the same DRU id runs twice: both processes keep replicating under their own origins; stop one', { ...info })
      metrics.identityConflicts.inc({ peer: info.peerId })
    })
    // Proof, not claims: signed events of our own DRU, written before this process opened
    // its database, that the database did not hold. Only then is this an old copy.
    dru.store.onCommit((events, source) => {
      if (source === 'remote' && !dru.closed) this.#checkStaleCopy(events)
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
    const restore = deps.restore === true || store.getMeta(MetaKey.RESTORE_PENDING) === 1 || (store.isNew && peers.length > 0)
    if (restore) store.setMeta(MetaKey.RESTORE_PENDING, 1)
    const prefix = `${dru.id}/`
    const ownAtOpen = Object.fromEntries(Object.entries(store.vv()).filter(([o]) => o.startsWith(prefix)))
    const decommissioned = readDecommissioned(store)
    const sync = await startSync({
      decommissioned,
      // Bootstrap in both directions: serve our snapshots and folded envelopes to a peer
      // below our compaction base, and rebuild (and verify) a peer's when we are below its base.
      snapshots: {
        page: (after, maxBytes) => dru.documents.snapshotPage(after, maxBytes),
        changesOf: (docId, bytes) => dru.documents.changesOf(docId, bytes),
      },
      log: store,
      druId: dru.id,
      ...(config.listen ? { listen: config.listen } : {}),
      peers,
      secret: config.secret,
      keys: config.keys,
      ...(config.tls ? { tls: config.tls } : {}),
      ...(config.sync?.heartbeatMs ? { heartbeatMs: config.sync.heartbeatMs } : {}),
      ...(config.sync?.heartbeatTimeoutMs ? { heartbeatTimeoutMs: config.sync.heartbeatTimeoutMs } : {}),
      ...(config.sync?.rates ? { rates: config.sync.rates } : {}),
      ...(config.sync?.listenerCaps ? { listenerCaps: config.sync.listenerCaps } : {}),
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
        if (t.to === LifecycleState.ACTIVE && store.getMeta(MetaKey.RESTORE_PENDING) === 1 && !store.closed) store.setMeta(MetaKey.RESTORE_PENDING, 0)
      },
    })
    deps.metrics.setLifecycleState(driver.lifecycle.state())
    if (restore) driver.restorePending()
    const network = new Network(dru, sync, driver, deps.metrics, deps.log, deps.now, peers.length, {
      ownAtOpen,
      at: deps.now(),
    })
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
    const status = this.sync.peerStatus().filter((p) => !p.decommissioned)
    const assessment = assessPeers(this.#dru.store.vv(), status, this.#dru.store.summary().live.vv)
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
    const live = this.#dru.store.summary().live.vv
    const conns = this.sync.listenerStats()
    this.#metrics.syncConnections.set({ state: 'open' }, conns.connections - conns.handshaking)
    this.#metrics.syncConnections.set({ state: 'handshaking' }, conns.handshaking)
    this.#metrics.syncConnectionsRefused.set(conns.refused)
    for (const p of this.sync.peerStatus()) {
      // A decommissioned peer is gone for good: no series, so alerts on a peer that is down or
      // lagging stop for it (status and gaps still list it).
      if (p.decommissioned) {
        this.#metrics.peerConnected.remove({ peer: p.id })
        this.#metrics.lagEvents.remove({ peer: p.id, direction: 'outbound' })
        this.#metrics.lagEvents.remove({ peer: p.id, direction: 'inbound' })
        this.#metrics.lagSeconds.remove({ peer: p.id })
        continue
      }
      this.#metrics.peerConnected.set({ peer: p.id }, p.connected ? 1 : 0)
      this.#metrics.lagEvents.set({ peer: p.id, direction: 'outbound' }, countMissing(live, p.ackedVv))
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
    for (const [origin, seq] of Object.entries(store.summary().live.vv)) {
      const acked = p.ackedVv[origin] ?? 0
      if (acked >= seq) continue
      const e = store.getEvent(origin, acked + 1)
      if (!e) continue
      const wall = decodeHlc(e.hlc).wall
      if (oldest === undefined || wall < oldest) oldest = wall
    }
    return oldest === undefined ? null : Math.max(0, (this.#now() - oldest) / 1000)
  }

  /** What proved this DRU started from an old copy, if anything did (for `/status`). */
  get staleCopy(): StaleCopyReport | undefined {
    return this.#staleCopy
  }

  /**
   * Restore mode on proof (see {@link ownWritesMissingAtOpen}): signed events of this DRU's
   * own earlier writes that its database did not hold when this process opened it. A peer's
   * vector or ack naming such events is a claim and changes nothing.
   */
  #checkStaleCopy(events: readonly DruEvent[]): void {
    const store = this.#dru.store
    const missing = ownWritesMissingAtOpen({ druId: this.#dru.id, origin: store.origin, ownAtOpen: this.#ownAtOpen, openedAt: this.#openedAt }, events)
    const proof = missing[0]
    const n = missing.length
    if (!proof) return
    const first = this.#staleCopy === undefined
    this.#staleCopy = { origin: this.#staleCopy?.origin ?? proof.origin, recovered: (this.#staleCopy?.recovered ?? 0) + n, at: this.#staleCopy?.at ?? this.#now() }
    if (!first) return
    this.#metrics.staleCopies.inc()
    if (this.driver.restoring) {
      this.#log.warn('old copy: own events written before this start are coming back from peers (already restoring)', { origin: proof.origin, seq: proof.seq })
      return
    }
    // This DRU already writes under a fresh origin, so nothing forks; but until its own
    // earlier writes are back, the application would read stale data: refuse writes as
    // for a restore until caught up and verified.
    store.setMeta(MetaKey.RESTORE_PENDING, 1)
    this.driver.restorePending()
    this.#log.error('stale copy detected: signed events of this DRU written before it started were missing from its database; restoring', {
      origin: proof.origin,
      seq: proof.seq,
      heldAtOpen: this.#ownAtOpen[proof.origin] ?? 0,
    })
    this.evaluate()
  }

  #ownLack(ours: Readonly<Record<string, number>>, theirs: Readonly<Record<string, number>>): number {
    const prefix = `${this.#dru.id}/`
    let n = 0
    for (const [origin, seq] of Object.entries(theirs)) if (origin.startsWith(prefix)) n += Math.max(0, seq - (ours[origin] ?? 0))
    return n
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
      const live = this.#dru.store.summary().live.vv
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
        if (p && !this.driver.inSync(assessPeers(ours, [p], live))) ok = false
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
    const ours = this.#dru.store.summary()
    const full = this.#dru.store.fingerprint()
    const local = options.deep ? this.#dru.digest() : undefined
    return Promise.all(
      this.sync.peerStatus().map(async (p): Promise<PeerVerification> => {
        if (!p.connected) return { peer: p.id, reachable: false, equal: null }
        try {
          const r = await this.sync.probe(p.id, { deep: options.deep, timeoutMs: options.timeoutMs ?? 5_000 })
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
            ownEventsLacking: this.#ownLack(this.#dru.store.vv(), r.summary.live.vv),
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
