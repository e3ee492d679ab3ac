import { EventEmitter } from 'node:events'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { KeyObject } from 'node:crypto'
import WebSocket, { WebSocketServer } from 'ws'
import { DEFAULT_BATCH_BYTES, DruError, countMissing, mergeVv, parseDruId, type Fingerprint, type VersionVector } from '@dru/core'
import type { EventStore } from '@dru/store-sqlite'
import { backoffDelay, type BackoffOptions } from './backoff.js'
import { DEFAULT_MAX_FRAME_BYTES, type ReportFrame } from './frames.js'
import { silentLogger, type Logger } from './logger.js'
import { PeerSession, type SessionHost, type SessionLimits, type SnapshotSource } from './session.js'
import { parsePrivateKey, parsePublicKey } from './signatures.js'

/** Default window of bytes sent but not yet acknowledged, per peer (8 MiB). */
export const DEFAULT_MAX_UNACKED_BYTES = 8 << 20
/** Default heartbeat interval: a ping when the link is otherwise idle. */
export const DEFAULT_HEARTBEAT_MS = 1000
/** Default silence after which a connection is declared dead (a blackholed link stays "open" otherwise). */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 5000
/** Shortest accepted cluster secret. */
export const MIN_SECRET_LENGTH = 16

export interface PeerConfig {
  readonly id: string
  /** `ws://host:port`; omit for a peer that only dials us. */
  readonly url?: string
}

export interface SyncOptions {
  readonly store: EventStore
  /** Our DRU id (must equal the store's). */
  readonly druId: string
  /** Where to accept peers; omit to only dial. Port 0 picks a free port. */
  readonly listen?: { host?: string; port?: number }
  /** Peers we dial (they may dial us too: one session per pair is kept). */
  readonly peers?: readonly PeerConfig[]
  /** Cluster credential, at least 16 characters. */
  readonly secret: string
  /**
   * Ed25519 keys in PEM: our private key (PKCS#8) and every member's public key (SPKI),
   * ours included. A DRU id without a public key is not a member: it cannot connect and
   * its events are refused.
   */
  readonly keys: { privateKey: string | KeyObject; publicKeys: Readonly<Record<string, string | KeyObject>> }
  /**
   * TLS (PEM strings). With `cert` and `key` the server listens as `wss://`; `ca` is the
   * authority we trust when dialing `wss://` peers (defaults to the system store). The
   * HMAC handshake runs inside TLS as well.
   */
  readonly tls?: { cert?: string; key?: string; ca?: string | string[] }
  readonly heartbeatMs?: number
  readonly heartbeatTimeoutMs?: number
  readonly maxFrameBytes?: number
  readonly maxBatchBytes?: number
  readonly maxUnackedBytes?: number
  readonly backoff?: BackoffOptions
  readonly logger?: Logger
  readonly now?: () => number
  /** Uniform [0, 1) source for backoff jitter. */
  readonly random?: () => number
  /**
   * Our materialised state digest, for peers' deep verification probes (the node passes
   * its documents' cluster digest). Without it, deep probes are answered with null.
   */
  readonly describe?: () => { digest: string; documents: number }
  /**
   * Document snapshots, to bootstrap a peer below our compaction base and to be
   * bootstrapped ourselves (the node passes its documents). Without it neither happens.
   */
  readonly snapshots?: SnapshotSource
  /** DRU ids removed from the cluster (`dru decommission`): never dialed, sessions refused. */
  readonly decommissioned?: readonly string[]
}

export interface QuarantineInfo {
  readonly code: string
  readonly message: string
  readonly at: number
}

/** One peer as seen from here (for `/status`, gap reports and tests). */
export interface PeerStatus {
  readonly id: string
  readonly url: string | null
  readonly connected: boolean
  /** When the current session was established (ms), or null. */
  readonly since: number | null
  /** Last frame received from this peer (ms), or null. */
  readonly lastSeen: number | null
  /** What the peer has durably acknowledged (from ack frames only). */
  readonly ackedVv: VersionVector
  /** What the peer claimed in its latest fingerprint. */
  readonly theirVv: VersionVector
  /** Events we hold that the peer has not acknowledged. */
  readonly lag: number
  readonly quarantined: boolean
  readonly quarantine: QuarantineInfo | null
  /** Removed from the cluster by `dru decommission`: never dialed, its sessions refused. */
  readonly decommissioned: boolean
  /** Why the last session or dial ended, e.g. AUTH_FAILED, HEARTBEAT_TIMEOUT. */
  readonly lastError: { code: string; message: string } | null
  /** Failed dial attempts since the last good session. */
  readonly attempts: number
  /** Byte and frame counters of the current (or last) session. */
  readonly bytesIn: number
  readonly bytesOut: number
  readonly framesIn: number
  readonly framesOut: number
  /** Events received from this peer in the current (or last) session, and those we already held. */
  readonly eventsIn: number
  readonly duplicatesIn: number
  /** Document snapshots received from this peer in the current (or last) session (bootstrap). */
  readonly snapshotDocsIn: number
  readonly unackedBytes: number
}

/** A peer's answer to {@link SyncNode.probe}. */
export interface ProbeResult {
  readonly fingerprint: Fingerprint
  readonly stateDigest: string | null
  readonly documents: number | null
}

/** Events a {@link SyncNode} emits. */
export interface SyncEvents {
  'peer-up': [peerId: string]
  'peer-down': [peerId: string, reason: { code: string; message: string }]
  /** A peer offered a forked or forged history and is now quarantined. */
  quarantine: [info: { peerId: string; code: string; message: string }]
  /** We were bootstrapped from a peer's snapshots and adopted its compaction base. */
  bootstrap: [info: { peerId: string; docs: number; origins: readonly string[] }]
  /** Alias of `quarantine` for FORK and CHAIN_BROKEN. */
  fork: [info: { peerId: string; code: string; message: string }]
  ack: [peerId: string, vv: VersionVector]
}

/** A running sync endpoint. */
export interface SyncNode {
  /** The listening port (0 when not listening). */
  readonly port: number
  peerStatus(): PeerStatus[]
  /**
   * Resolves once `k` distinct peers have durably acknowledged `(origin, seq)` (by `ack`
   * frames, never by fingerprint claims). Rejects with DruError ACK_TIMEOUT after
   * `timeoutMs`; the event stays committed and keeps replicating.
   */
  waitForAcks(event: { origin: string; seq: number }, k: number, timeoutMs: number): Promise<void>
  /**
   * Asks a connected peer for its fingerprint now (and, when `deep`, its state digest).
   * Rejects with DruError NOT_FOUND when no session with the peer is open, TIMEOUT when
   * it does not answer within `timeoutMs`.
   */
  probe(peerId: string, options?: { deep?: boolean; timeoutMs?: number }): Promise<ProbeResult>
  /** Lifts a quarantine (operator action) and lets the peer reconnect. */
  unquarantine(peerId: string): void
  /** Removes a DRU from the cluster: closes its session with a DECOMMISSIONED error, never dials it again, refuses it. */
  decommission(peerId: string): void
  on<E extends keyof SyncEvents>(event: E, listener: (...args: SyncEvents[E]) => void): this
  off<E extends keyof SyncEvents>(event: E, listener: (...args: SyncEvents[E]) => void): this
  once<E extends keyof SyncEvents>(event: E, listener: (...args: SyncEvents[E]) => void): this
  /** Closes every session and the server; pending waits reject with CLOSED. */
  close(): Promise<void>
}

interface PeerState {
  readonly id: string
  url: string | null
  session: PeerSession | undefined
  last: PeerSession | undefined
  since: number | null
  lastSeen: number | null
  ackedVv: VersionVector
  ackDirty: boolean
  quarantine: QuarantineInfo | null
  lastError: { code: string; message: string } | null
  attempts: number
  dialing: boolean
  timer: NodeJS.Timeout | undefined
}

interface Waiter {
  readonly origin: string
  readonly seq: number
  readonly k: number
  readonly resolve: () => void
  readonly reject: (err: Error) => void
  readonly timer: NodeJS.Timeout
}

const positive = (value: unknown, field: string, fallback: number): number => {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new DruError('CONFIG_INVALID', `${field} must be a positive number`, { details: { field } })
  }
  return value
}

/**
 * Starts the peer protocol on an open EventStore: accepts peers on `listen`, dials
 * `peers` (reconnecting with backoff and jitter), streams what each side lacks, pushes
 * new commits live, and records durable acks. See docs/PROTOCOL.md.
 */
export async function startSync(options: SyncOptions): Promise<SyncNode> {
  const node = new SyncNodeImpl(options)
  await node.start()
  return node
}

class SyncNodeImpl extends EventEmitter implements SessionHost, SyncNode {
  readonly store: EventStore
  readonly druId: string
  readonly secret: string
  readonly publicKeys: ReadonlyMap<string, KeyObject>
  readonly limits: SessionLimits
  readonly log: Logger
  readonly #options: SyncOptions
  readonly #now: () => number
  readonly #random: () => number
  readonly #peers = new Map<string, PeerState>()
  readonly #decommissioned = new Set<string>()
  readonly #sessions = new Set<PeerSession>()
  readonly #waiters = new Set<Waiter>()
  readonly #probes = new Map<number, { peerId: string; resolve: (r: ProbeResult) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>()
  #probeIds = 0
  #server: WebSocketServer | undefined
  #https: HttpsServer | undefined
  #port = 0
  #closing = false
  #unsubscribe: (() => void) | undefined
  #ackFlush: NodeJS.Timeout | undefined

  constructor(options: SyncOptions) {
    super()
    if (!options || typeof options !== 'object') throw new DruError('CONFIG_INVALID', 'startSync() needs an options object')
    this.#options = options
    this.store = options.store
    this.druId = parseDruId(options.druId, 'druId')
    if (options.store.druId !== this.druId) {
      throw new DruError('CONFIG_INVALID', `druId ${this.druId} does not match the store's ${options.store.druId}`, { details: { field: 'druId' } })
    }
    if (typeof options.secret !== 'string' || options.secret.length < MIN_SECRET_LENGTH) {
      throw new DruError('CONFIG_INVALID', `secret must be a string of at least ${MIN_SECRET_LENGTH} characters`, { details: { field: 'secret' } })
    }
    this.secret = options.secret
    if (!options.keys || typeof options.keys.publicKeys !== 'object' || options.keys.publicKeys === null) {
      throw new DruError('CONFIG_INVALID', 'keys must be { privateKey, publicKeys: { [druId]: publicKeyPem } }', { details: { field: 'keys' } })
    }
    parsePrivateKey(options.keys.privateKey)
    const keys = new Map<string, KeyObject>()
    for (const [id, pem] of Object.entries(options.keys.publicKeys)) {
      keys.set(parseDruId(id, `keys.publicKeys.${id}`), parsePublicKey(pem, `keys.publicKeys.${id}`))
    }
    this.publicKeys = keys
    for (const id of options.decommissioned ?? []) this.#decommissioned.add(parseDruId(id, 'decommissioned[]'))
    const heartbeatMs = positive(options.heartbeatMs, 'heartbeatMs', DEFAULT_HEARTBEAT_MS)
    const maxFrameBytes = positive(options.maxFrameBytes, 'maxFrameBytes', DEFAULT_MAX_FRAME_BYTES)
    const maxBatchBytes = positive(options.maxBatchBytes, 'maxBatchBytes', DEFAULT_BATCH_BYTES)
    if (maxBatchBytes * 2 > maxFrameBytes) {
      throw new DruError('CONFIG_INVALID', 'maxBatchBytes must be at most half of maxFrameBytes (a batch may run on to the next signed event)', {
        details: { field: 'maxBatchBytes' },
      })
    }
    this.limits = {
      heartbeatMs,
      heartbeatTimeoutMs: positive(options.heartbeatTimeoutMs, 'heartbeatTimeoutMs', Math.max(DEFAULT_HEARTBEAT_TIMEOUT_MS, heartbeatMs * 3)),
      maxFrameBytes,
      maxBatchBytes,
      maxUnackedBytes: positive(options.maxUnackedBytes, 'maxUnackedBytes', DEFAULT_MAX_UNACKED_BYTES),
    }
    this.log = options.logger ?? silentLogger
    this.#now = options.now ?? Date.now
    this.#random = options.random ?? Math.random
    for (const p of options.peers ?? []) {
      const id = parseDruId(p?.id, 'peers[].id')
      if (id === this.druId) throw new DruError('CONFIG_INVALID', 'peers must not include this DRU itself', { details: { field: 'peers' } })
      if (!keys.has(id)) throw new DruError('CONFIG_INVALID', `peer ${id} has no public key in keys.publicKeys`, { details: { field: 'peers' } })
      if (p.url !== undefined && (typeof p.url !== 'string' || !/^wss?:\/\//.test(p.url))) {
        throw new DruError('CONFIG_INVALID', `peers[${id}].url must be a ws:// or wss:// URL`, { details: { field: 'peers' } })
      }
      this.#peerState(id).url = p.url ?? null
    }
  }

  now(): number {
    return this.#now()
  }

  get port(): number {
    return this.#port
  }

  async start(): Promise<void> {
    if (this.#options.listen) {
      const host = this.#options.listen.host ?? '127.0.0.1'
      const port = this.#options.listen.port ?? 0
      const tls = this.#options.tls
      if (tls && (tls.cert === undefined) !== (tls.key === undefined)) {
        throw new DruError('CONFIG_INVALID', 'tls.cert and tls.key must be given together', { details: { field: 'tls' } })
      }
      // A hard guard only: our own check at maxFrameBytes answers with an error frame first.
      const wsOptions = { maxPayload: this.limits.maxFrameBytes * 2 + 1024, perMessageDeflate: false }
      let server: WebSocketServer
      if (tls?.cert && tls.key) {
        const https = createHttpsServer({ cert: tls.cert, key: tls.key })
        this.#https = https
        server = new WebSocketServer({ server: https, ...wsOptions })
        await new Promise<void>((resolve, reject) => {
          https.once('error', (err) => reject(new DruError('CONFIG_INVALID', `cannot listen on ${host}:${port}: ${err.message}`, { cause: err })))
          https.listen(port, host, () => resolve())
        })
        this.#port = (https.address() as AddressInfo).port
      } else {
        server = new WebSocketServer({ host, port, ...wsOptions })
        await new Promise<void>((resolve, reject) => {
          server.once('listening', resolve)
          server.once('error', (err) => reject(new DruError('CONFIG_INVALID', `cannot listen on ${host}:${port}: ${err.message}`, { cause: err })))
        })
        this.#port = (server.address() as AddressInfo).port
      }
      server.on('error', (err) => this.log.error(`sync: server error: ${err.message}`))
      server.on('connection', (ws) => {
        if (this.#closing) return ws.terminate()
        this.#sessions.add(new PeerSession(this, ws, 'acceptor'))
      })
      this.#server = server
    }
    this.#unsubscribe = this.store.onCommit((_events, source) => {
      for (const p of this.#peers.values()) {
        p.session?.schedulePump()
        // Tell every peer, not just the sender, that we now durably hold these events.
        if (source === 'remote') p.session?.scheduleAck()
      }
    })
    this.#ackFlush = setInterval(() => this.#flushAcks(), 200)
    this.#ackFlush.unref()
    for (const p of this.#peers.values()) if (p.url) this.#dial(p)
  }

  // ---- SessionHost ----------------------------------------------------------------------

  get snapshots(): SnapshotSource | undefined {
    return this.#options.snapshots
  }

  isDecommissioned(peerId: string): boolean {
    return this.#decommissioned.has(peerId)
  }

  bootstrapped(session: PeerSession, info: { docs: number; origins: readonly string[] }): void {
    this.log.info(`sync: bootstrapped from ${session.peerId}: ${info.docs} document snapshots, base adopted for ${info.origins.length} origin(s)`, {
      peer: session.peerId,
    })
    this.emit('bootstrap', { peerId: session.peerId!, ...info })
  }

  quarantineReason(peerId: string): string | undefined {
    const q = this.#peers.get(peerId)?.quarantine
    return q ? `${q.code}: ${q.message}` : undefined
  }

  authenticated(session: PeerSession): boolean {
    const p = this.#peerState(session.peerId!)
    const existing = p.session
    if (existing && existing !== session && existing.isOpen) {
      // Exactly one session per pair, chosen the same way on both sides: the one dialed by
      // the smaller DRU id wins; between two of the same dialer, the newer (the old is likely dead).
      const dialerOf = (s: PeerSession) => (s.role === 'dialer' ? this.druId : p.id)
      const preferred = this.druId < p.id ? this.druId : p.id
      const keepNew = dialerOf(existing) === dialerOf(session) || dialerOf(session) === preferred
      if (!keepNew) {
        session.fail('DUPLICATE_SESSION', `a session with ${p.id} is already open`)
        return false
      }
      p.session = session
      existing.fail('DUPLICATE_SESSION', `replaced by a newer session with ${p.id}`)
    }
    p.session = session
    p.last = session
    p.since = this.#now()
    p.lastSeen = this.#now()
    p.attempts = 0
    p.lastError = null
    if (p.timer) clearTimeout(p.timer)
    p.timer = undefined
    this.log.info(`sync: connected to ${p.id} (${session.role})`, { peer: p.id })
    this.emit('peer-up', p.id)
    return true
  }

  describe(deep: boolean): { digest: string; documents: number } | undefined {
    return deep ? this.#options.describe?.() : undefined
  }

  reported(session: PeerSession, report: ReportFrame): void {
    const pending = this.#probes.get(report.id)
    // An answer we did not ask for (or from another peer) is ignored, not trusted.
    if (!pending || pending.peerId !== session.peerId) return
    this.#probes.delete(report.id)
    clearTimeout(pending.timer)
    pending.resolve({ fingerprint: report.fingerprint, stateDigest: report.stateDigest, documents: report.documents })
  }

  probe(peerId: string, options: { deep?: boolean; timeoutMs?: number } = {}): Promise<ProbeResult> {
    const session = this.#peers.get(peerId)?.session
    if (!session?.isOpen) return Promise.reject(new DruError('NOT_FOUND', `no open session with ${peerId}`))
    const id = (this.#probeIds = (this.#probeIds + 1) % 0xffffffff)
    const timeoutMs = options.timeoutMs ?? 5_000
    return new Promise<ProbeResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#probes.delete(id)
        reject(new DruError('TIMEOUT', `${peerId} did not answer a verification probe within ${timeoutMs} ms`))
      }, timeoutMs)
      timer.unref()
      this.#probes.set(id, { peerId, resolve, reject, timer })
      session.probe(id, options.deep === true)
    })
  }

  acked(session: PeerSession, vv: VersionVector): void {
    const p = this.#peerState(session.peerId!)
    p.ackedVv = mergeVv(p.ackedVv, vv)
    p.ackDirty = true
    p.lastSeen = this.#now()
    this.emit('ack', p.id, vv)
    for (const w of this.#waiters) if (this.#ackCount(w.origin, w.seq) >= w.k) this.#settle(w)
  }

  quarantine(peerId: string, code: string, message: string): void {
    const p = this.#peerState(peerId)
    if (p.quarantine) return
    p.quarantine = { code, message, at: this.#now() }
    if (p.timer) clearTimeout(p.timer)
    p.timer = undefined
    this.log.error(`sync: QUARANTINED ${peerId}: ${code}: ${message}. No reconnect until an operator lifts it.`, { peer: peerId, code })
    try {
      this.store.recordPeer(peerId, { state: `quarantined: ${code}` })
    } catch {
      // Recording is best effort; the in-memory quarantine is what blocks the peer.
    }
    const info = { peerId, code, message }
    this.emit('quarantine', info)
    if (code === 'FORK' || code === 'CHAIN_BROKEN') this.emit('fork', info)
  }

  closed(session: PeerSession, reason: { code: string; message: string }): void {
    this.#sessions.delete(session)
    const id = session.peerId
    if (id === undefined) return
    const p = this.#peers.get(id)
    if (!p) return
    // An unauthenticated caller may claim any id in its hello: it must not touch that peer's state.
    if (session.role === 'acceptor' && !session.wasAuthenticated) return
    if (reason.code !== 'DUPLICATE_SESSION' && reason.code !== 'CLOSED') p.lastError = reason
    if (session.role === 'dialer') p.dialing = false
    if (p.session === session) {
      p.session = undefined
      p.since = null
      this.log.info(`sync: disconnected from ${id}: ${reason.code}`, { peer: id, code: reason.code })
      this.emit('peer-down', id, reason)
      this.#scheduleDial(p, 0)
    } else if (session.role === 'dialer' && !session.wasAuthenticated) {
      p.attempts++
      this.#scheduleDial(p, p.attempts)
    } else if (session.role === 'dialer') {
      this.#scheduleDial(p, 0)
    }
  }

  // ---- dialing --------------------------------------------------------------------------

  #scheduleDial(p: PeerState, attempt: number): void {
    if (this.#closing || !p.url || p.quarantine || p.session || p.dialing || p.timer || this.#decommissioned.has(p.id)) return
    const delay = backoffDelay(attempt, this.#random, this.#options.backoff)
    p.timer = setTimeout(() => {
      p.timer = undefined
      this.#dial(p)
    }, delay)
    p.timer.unref()
  }

  #dial(p: PeerState): void {
    if (this.#closing || !p.url || p.quarantine || p.session || p.dialing || this.#decommissioned.has(p.id)) return
    p.dialing = true
    let ws: WebSocket
    try {
      ws = new WebSocket(p.url, {
        perMessageDeflate: false,
        maxPayload: this.limits.maxFrameBytes * 2 + 1024,
        handshakeTimeout: this.limits.heartbeatTimeoutMs,
        ...(this.#options.tls?.ca !== undefined ? { ca: this.#options.tls.ca } : {}),
      })
    } catch (err) {
      p.dialing = false
      p.lastError = { code: 'CONNECTION_FAILED', message: (err as Error).message }
      p.attempts++
      this.#scheduleDial(p, p.attempts)
      return
    }
    const s = new PeerSession(this, ws, 'dialer', p.id)
    p.last = s
    this.#sessions.add(s)
  }

  // ---- public API -----------------------------------------------------------------------

  peerStatus(): PeerStatus[] {
    const vv = this.store.vv()
    return [...this.#peers.values()]
      .sort((a, b) => (a.id < b.id ? -1 : 1))
      .map((p) => {
        const s = p.session ?? p.last
        return {
          id: p.id,
          url: p.url,
          connected: p.session?.isOpen === true,
          since: p.since,
          lastSeen: Math.max(p.lastSeen ?? 0, s?.wasAuthenticated ? s.lastFrameAt : 0) || null,
          ackedVv: p.ackedVv,
          theirVv: s?.theirVv ?? {},
          lag: countMissing(vv, p.ackedVv),
          quarantined: p.quarantine !== null,
          quarantine: p.quarantine,
          decommissioned: this.#decommissioned.has(p.id),
          lastError: p.lastError,
          attempts: p.attempts,
          bytesIn: s?.bytesIn ?? 0,
          bytesOut: s?.bytesOut ?? 0,
          framesIn: s?.framesIn ?? 0,
          framesOut: s?.framesOut ?? 0,
          eventsIn: s?.eventsIn ?? 0,
          duplicatesIn: s?.duplicatesIn ?? 0,
          snapshotDocsIn: s?.snapshotDocsIn ?? 0,
          unackedBytes: p.session?.unackedBytes ?? 0,
        }
      })
  }

  waitForAcks(event: { origin: string; seq: number }, k: number, timeoutMs: number): Promise<void> {
    if (!event || typeof event.origin !== 'string' || !Number.isInteger(event.seq) || event.seq < 1) {
      return Promise.reject(new DruError('INVALID_ARGUMENT', 'waitForAcks needs an event { origin, seq }'))
    }
    if (!Number.isInteger(k) || k < 0) return Promise.reject(new DruError('INVALID_ARGUMENT', 'k must be a non-negative integer'))
    if (this.#closing) return Promise.reject(new DruError('CLOSED', 'sync is closed'))
    if (this.#ackCount(event.origin, event.seq) >= k) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = {
        origin: event.origin,
        seq: event.seq,
        k,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(w)
          const have = this.#ackCount(event.origin, event.seq)
          reject(
            new DruError('ACK_TIMEOUT', `${event.origin}#${event.seq} was acknowledged by ${have} of ${k} peers within ${timeoutMs} ms; it stays committed and keeps replicating`, {
              details: { origin: event.origin, seq: event.seq, k, acked: have },
            }),
          )
        }, timeoutMs),
      }
      this.#waiters.add(w)
    })
  }

  unquarantine(peerId: string): void {
    const p = this.#peers.get(peerId)
    if (!p?.quarantine) return
    p.quarantine = null
    this.log.warn(`sync: quarantine of ${peerId} lifted by operator`, { peer: peerId })
    this.store.recordPeer(peerId, { state: 'active' })
    this.#scheduleDial(p, 0)
  }

  decommission(peerId: string): void {
    const id = parseDruId(peerId, 'peerId')
    if (id === this.druId) throw new DruError('INVALID_ARGUMENT', 'a DRU cannot decommission itself')
    if (this.#decommissioned.has(id)) return
    this.#decommissioned.add(id)
    const p = this.#peers.get(id)
    if (p?.timer) clearTimeout(p.timer)
    if (p) p.timer = undefined
    this.log.warn(`sync: ${id} decommissioned: no longer dialed, its sessions refused`, { peer: id })
    for (const s of [...this.#sessions]) if (s.peerId === id) s.fail('DECOMMISSIONED', `${id} was decommissioned from this cluster by ${this.druId}`)
  }

  async close(): Promise<void> {
    if (this.#closing) return
    this.#closing = true
    this.#unsubscribe?.()
    clearInterval(this.#ackFlush)
    for (const p of this.#peers.values()) if (p.timer) clearTimeout(p.timer)
    for (const w of this.#waiters) {
      clearTimeout(w.timer)
      w.reject(new DruError('CLOSED', 'sync closed before enough peers acknowledged'))
    }
    this.#waiters.clear()
    for (const p of this.#probes.values()) {
      clearTimeout(p.timer)
      p.reject(new DruError('CLOSED', 'sync closed before the peer answered'))
    }
    this.#probes.clear()
    for (const s of [...this.#sessions]) s.close('CLOSED', 'this DRU is shutting down')
    if (!this.store.closed) this.#flushAcks()
    const server = this.#server
    if (server) {
      for (const client of server.clients) client.terminate()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
    const https = this.#https
    if (https) {
      https.closeAllConnections()
      await new Promise<void>((resolve) => https.close(() => resolve()))
    }
  }

  // ---- internals ------------------------------------------------------------------------

  #peerState(id: string): PeerState {
    let p = this.#peers.get(id)
    if (!p) {
      const record = this.store.peer(id)
      p = {
        id,
        url: null,
        session: undefined,
        last: undefined,
        since: null,
        lastSeen: record?.lastSeen ?? null,
        // Persisted acks came from ack frames of earlier sessions, so they still count.
        ackedVv: record?.ackedVv ?? {},
        ackDirty: false,
        quarantine: null,
        lastError: null,
        attempts: 0,
        dialing: false,
        timer: undefined,
      }
      this.#peers.set(id, p)
    }
    return p
  }

  #ackCount(origin: string, seq: number): number {
    let n = 0
    for (const p of this.#peers.values()) if ((p.ackedVv[origin] ?? 0) >= seq) n++
    return n
  }

  #settle(w: Waiter): void {
    clearTimeout(w.timer)
    this.#waiters.delete(w)
    w.resolve()
  }

  /** Persists acked vectors at most every 200 ms (one small write instead of one per batch). */
  #flushAcks(): void {
    if (this.store.closed) return
    for (const p of this.#peers.values()) {
      if (!p.ackDirty) continue
      p.ackDirty = false
      try {
        this.store.recordPeerAck(p.id, p.ackedVv, p.lastSeen ?? this.#now())
      } catch (err) {
        this.log.warn(`sync: could not record acks of ${p.id}: ${(err as Error).message}`)
      }
    }
  }
}
