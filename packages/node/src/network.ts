import { LifecycleState, type LifecycleTransition } from '@dru/core'
import type { DocumentStore } from '@dru/documents'
import { storageError, type EventStore } from '@dru/store-sqlite'
import { startSync, type Logger, type PeerConfig, type PeerStatus, type SyncNode, type SyncOptions } from '@dru/sync'
import { LifecycleDriver, assessPeers } from './lifecycle-driver.js'
import { createMembership, readDecommissioned, type Membership } from './membership.js'
import type { DruMetrics } from './metrics.js'
import type { OperationPeers, PeerVerification } from './operations.js'
import { refreshPeerMetrics } from './peer-metrics.js'
import { peersAgree, verifyPeers, type VerificationSources } from './peer-verification.js'
import { RestoreGuard, restoreAtOpen, restoreFinished } from './restore-guard.js'

/**
 * The networked half of a DRU: starts the sync node and wires what it observes (peers up
 * and down, bootstraps, quarantines, remote commits) into the lifecycle, the restore guard
 * and the metrics. The concerns themselves live apart: restore protection in
 * `restore-guard.ts`, membership in `membership.ts`, verification in
 * `peer-verification.ts`, gauges in `peer-metrics.ts`, lag in `lag.ts`.
 *
 * @module
 */

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
    /** Redial backoff bounds (ms); defaults in @dru/sync's backoff (100 and 1,000). */
    reconnectBaseMs?: number
    reconnectMaxMs?: number
    /** Third parties' unacknowledged bytes per session while another path may deliver them (default 256 KiB). */
    forwardWindowBytes?: number
  }
}

/**
 * The sync options the `sync` config sets (timing, rates, listener caps, backoff, forwarding
 * window); a field left out keeps @dru/sync's default. `startupGraceMs` and `slackEvents`
 * are the lifecycle's, not the sync node's.
 */
export function syncTuning(sync: NetworkConfig['sync']): Partial<SyncOptions> {
  if (!sync) return {}
  const backoff = {
    ...(sync.reconnectBaseMs !== undefined ? { baseMs: sync.reconnectBaseMs } : {}),
    ...(sync.reconnectMaxMs !== undefined ? { maxMs: sync.reconnectMaxMs } : {}),
  }
  return {
    ...(sync.heartbeatMs !== undefined ? { heartbeatMs: sync.heartbeatMs } : {}),
    ...(sync.heartbeatTimeoutMs !== undefined ? { heartbeatTimeoutMs: sync.heartbeatTimeoutMs } : {}),
    ...(sync.rates ? { rates: sync.rates } : {}),
    ...(Object.keys(backoff).length > 0 ? { backoff } : {}),
    ...(sync.listenerCaps ? { listenerCaps: sync.listenerCaps } : {}),
    ...(sync.forwardWindowBytes !== undefined ? { forwardWindowBytes: sync.forwardWindowBytes } : {}),
  }
}

/** The local replica a network serves: this DRU's id, log and documents. */
export interface LocalReplica {
  readonly id: string
  readonly store: EventStore
  readonly documents: DocumentStore
}

/** How often the lifecycle is re-assessed (also on every peer up/down and ack). */
const EVALUATE_EVERY_MS = 100
/**
 * How old a peer's session-opening summary may be for the `verifying` step to take it as
 * the peer's answer (when neither log moved since): a verification right after catch-up.
 */
export const RECENT_SUMMARY_MS = 2_000

/** Sync, lifecycle, restore guard and membership of a networked DRU, wired together. */
export class Network implements OperationPeers {
  readonly sync: SyncNode
  readonly driver: LifecycleDriver
  readonly restore: RestoreGuard
  readonly membership: Membership
  readonly #local: LocalReplica
  readonly #verification: VerificationSources
  readonly #metrics: DruMetrics
  readonly #log: Logger
  readonly #timer: NodeJS.Timeout
  readonly #now: () => number
  readonly #configuredPeers: number
  #verifying = false
  #closed = false

  private constructor(
    local: LocalReplica,
    sync: SyncNode,
    driver: LifecycleDriver,
    deps: { metrics: DruMetrics; log: Logger; now: () => number },
    peers: number,
    opened: { ownAtOpen: Readonly<Record<string, number>>; at: number; memberIds: readonly string[] },
  ) {
    const { metrics, log } = deps
    this.#local = local
    this.sync = sync
    this.driver = driver
    this.#metrics = metrics
    this.#log = log
    this.#now = deps.now
    this.#configuredPeers = peers
    const evaluate = () => this.evaluate()
    this.#verification = {
      druId: local.id,
      store: local.store,
      sync,
      tree: {
        refresh: () => typedStorage(() => local.documents.refreshDigests()),
        children: (level, index) => local.documents.digestTreeChildren(level, index),
        bucket: (index) => typedStorage(() => local.documents.digestBucket(index)),
      },
    }
    this.restore = new RestoreGuard({
      druId: local.id,
      store: local.store,
      driver,
      metrics,
      log,
      now: deps.now,
      ownAtOpen: opened.ownAtOpen,
      openedAt: opened.at,
      reassess: evaluate,
    })
    this.membership = createMembership({
      druId: local.id,
      store: local.store,
      sync,
      driver,
      memberIds: opened.memberIds,
      log,
      reassess: evaluate,
    })
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
      log.error('the same DRU id runs twice: both processes keep replicating under their own origins; stop one', {
        ...info,
      })
      metrics.identityConflicts.inc({ peer: info.peerId })
    })
    // Proof, not claims: signed events of our own DRU, written before this process opened
    // its database, that the database did not hold. Only then is this an old copy.
    local.store.onCommit((events, source) => {
      if (source === 'remote' && this.#open) this.restore.checkStaleCopy(events)
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
    local: LocalReplica,
    config: NetworkConfig,
    deps: { metrics: DruMetrics; log: Logger; now: () => number; restore?: boolean },
  ): Promise<Network> {
    const { store, documents } = local
    const peers = config.peers ?? []
    const opened = restoreAtOpen(store, local.id, { peers: peers.length, requested: deps.restore === true })
    const decommissioned = readDecommissioned(store)
    // The driver is made after sync starts (it needs the peer list sync checked); heartbeats
    // read it late, and a session cannot open before this function returns.
    const late: { driver?: LifecycleDriver } = {}
    const sync = await startSync({
      decommissioned,
      announce: () => ({
        name: late.driver?.lifecycle.state() ?? LifecycleState.STARTING,
        since: late.driver?.lifecycle.since() ?? deps.now(),
      }),
      // Bootstrap in both directions: serve our snapshots and folded envelopes to a peer
      // below our compaction base, and rebuild (and verify) a peer's when we are below its base.
      snapshots: {
        page: (after, maxBytes) => documents.snapshotPage(after, maxBytes),
        changesOf: (docId, bytes) => documents.changesOf(docId, bytes),
      },
      log: store,
      druId: local.id,
      ...(config.listen ? { listen: config.listen } : {}),
      peers,
      secret: config.secret,
      keys: config.keys,
      ...(config.tls ? { tls: config.tls } : {}),
      ...syncTuning(config.sync),
      logger: deps.log,
      now: deps.now,
      // A deep probe refreshes the digests and reports the tree's root; tree probes read that tree.
      describe: () =>
        typedStorage(() => {
          const t = documents.refreshDigests()
          return { digest: t.root, documents: t.documents }
        }),
      tree: {
        children: (level, index) => documents.digestTreeChildren(level, index),
        bucket: (index) => typedStorage(() => [...documents.digestBucket(index)]),
      },
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
        if (t.to === LifecycleState.ACTIVE) restoreFinished(store)
      },
    })
    late.driver = driver
    deps.metrics.setLifecycleState(driver.lifecycle.state())
    if (opened.restore) driver.restorePending()
    const memberIds = Object.keys(config.keys.publicKeys).filter((id) => id !== local.id)
    return new Network(local, sync, driver, deps, peers.length, {
      ownAtOpen: opened.ownAtOpen,
      at: deps.now(),
      memberIds,
    })
  }

  /** Re-assesses sync state and feeds the lifecycle (every 100 ms and on peer up/down). */
  evaluate(): void {
    if (!this.#open) return
    const status = this.sync.peerStatus().filter((p) => !p.decommissioned)
    const assessment = assessPeers(this.#local.store.vv(), status, this.#local.store.summary().live.vv)
    this.driver.observe(assessment)
    if (this.driver.lifecycle.state() === LifecycleState.VERIFYING && !this.#verifying) void this.#verify()
  }

  /** Sets the per-peer and connection gauges (on scrape). */
  refreshPeerMetrics(): void {
    if (this.#open) refreshPeerMetrics(this.#local.store, this.sync, this.#metrics, this.#now())
  }

  /** See {@link verifyPeers}. */
  verifyPeers(options: { deep: boolean; timeoutMs?: number; recentMs?: number }): Promise<PeerVerification[]> {
    return verifyPeers(this.#verification, options)
  }

  peerStatus(): readonly PeerStatus[] {
    return this.sync.peerStatus()
  }

  get configuredPeers(): number {
    return this.#configuredPeers
  }

  async close(): Promise<void> {
    this.#closed = true
    clearInterval(this.#timer)
    await this.sync.close()
  }

  /** Neither this network nor the log it serves has been closed. */
  get #open(): boolean {
    return !this.#closed && !this.#local.store.closed
  }

  /** The `verifying` step: probe every reachable peer's fingerprint (see {@link peersAgree}). */
  async #verify(): Promise<void> {
    this.#verifying = true
    try {
      // Right after a session opened, its summary is the answer a probe would bring, so an
      // in-sync reconnect costs no probe; a restore asks every peer now (see peersAgree).
      const results = await this.verifyPeers({
        deep: false,
        timeoutMs: 2_000,
        ...(this.driver.restoring ? {} : { recentMs: RECENT_SUMMARY_MS }),
      })
      const store = this.#local.store
      const ok = peersAgree(results, {
        ours: store.vv(),
        live: store.summary().live.vv,
        status: this.sync.peerStatus(),
        restoring: this.driver.restoring,
        inSync: (a) => this.driver.inSync(a),
      })
      if (this.#open) this.driver.verified(ok)
    } catch (err) {
      this.#log.warn('verification failed to run', { error: (err as Error).message })
      this.driver.verified(false)
    } finally {
      this.#verifying = false
    }
  }
}

/** Runs a read of the documents with SQLite's failures typed (STORAGE_FULL, DB_LOCKED, CORRUPTION). */
function typedStorage<T>(fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    throw storageError(err)
  }
}
