import { EventEmitter } from 'node:events'
import type { KeyObject } from 'node:crypto'
import WebSocket from 'ws'
import { DEFAULT_BATCH_BYTES, DruError, parseDruId, type PeerBook, type ReplicaLog, type VersionVector } from '@dru/core'
import { AckWaiters } from './ack-waiters.js'
import { backoffDelay, type BackoffOptions } from './backoff.js'
import {
  COSTLY_FRAME_BURST,
  COSTLY_FRAMES_PER_SECOND,
  DEFAULT_MAX_FRAME_BYTES,
  FRAME_BURST,
  FRAMES_PER_SECOND,
  HANDSHAKE_TIMEOUT_MS,
  PRE_AUTH_MAX_FRAME_BYTES,
} from './limits.js'
import { silentLogger, type Logger } from './logger.js'
import { PeerRegistry, type PeerState, type PeerStatus } from './peer-registry.js'
import { Probes, type ProbeResult } from './probes.js'
import type { PeerProtocol } from './protocol/peer-protocol.js'
import type { ProtocolConfig, ProtocolHooks, SessionLimits, SnapshotSource } from './protocol/session-config.js'
import { parsePrivateKey, parsePublicKey } from './signatures.js'
import { listen, type Listener, type ListenerCaps } from './transport/ws-listener.js'
import { WsSession, type Session } from './transport/ws-session.js'

export type { PeerStatus, QuarantineInfo } from './peer-registry.js'
export type { ProbeResult } from './probes.js'

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
  /** The event log (the port; `EventStore` implements it) and where peers are remembered. */
  readonly log: ReplicaLog & PeerBook
  /** Our DRU id (must equal the log's). */
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
   * its events are refused. Each side signs the handshake with its key.
   */
  readonly keys: { privateKey: string | KeyObject; publicKeys: Readonly<Record<string, string | KeyObject>> }
  /**
   * TLS (PEM strings). With `cert` and `key` the server listens as `wss://`; `ca` is the
   * authority we trust when dialing `wss://` peers (defaults to the system store). The
   * handshake runs inside TLS as well.
   */
  readonly tls?: { cert?: string; key?: string; ca?: string | string[] }
  readonly heartbeatMs?: number
  readonly heartbeatTimeoutMs?: number
  readonly maxFrameBytes?: number
  readonly maxBatchBytes?: number
  readonly maxUnackedBytes?: number
  /** Per-session rate limits (defaults in limits.ts). */
  readonly rates?: Partial<Pick<SessionLimits, 'framesPerSecond' | 'frameBurst' | 'costlyFramesPerSecond' | 'costlyFrameBurst'>>
  /** The listener's caps on connections and handshakes (defaults in limits.ts). */
  readonly listenerCaps?: Partial<ListenerCaps>
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
  /** Document snapshots, to bootstrap a peer below our compaction base and to be bootstrapped. */
  readonly snapshots?: SnapshotSource
  /** DRU ids removed from the cluster (`dru decommission`): never dialed, sessions refused. */
  readonly decommissioned?: readonly string[]
}

/** Events a {@link SyncNode} emits. */
export interface SyncEvents {
  'peer-up': [peerId: string]
  'peer-down': [peerId: string, reason: { code: string; message: string }]
  /** A peer offered a forked or forged history and is now quarantined. */
  quarantine: [info: { peerId: string; code: string; message: string }]
  /** We were bootstrapped from a peer: folded events rebuilt from its snapshots and verified. */
  bootstrap: [info: { peerId: string; docs: number; events: number }]
  /** Alias of `quarantine` for FORK and CHAIN_BROKEN. */
  fork: [info: { peerId: string; code: string; message: string }]
  ack: [peerId: string, vv: VersionVector]
  /** A peer broke the protocol (PROTOCOL_VIOLATION) or its rate limit (RATE_LIMITED). */
  violation: [info: { peerId: string | undefined; code: string; message: string; authenticated: boolean }]
  /** Two processes are connected under one DRU id (each with its own origin). */
  'identity-conflict': [info: { peerId: string; origins: readonly string[] }]
}

/** A running sync endpoint. */
export interface SyncNode {
  /** The listening port (0 when not listening). */
  readonly port: number
  peerStatus(): PeerStatus[]
  /** Inbound connection counters of the listener (all 0 when not listening). */
  listenerStats(): { connections: number; handshaking: number; refused: number }
  /**
   * Resolves once `k` distinct peers have durably acknowledged `(origin, seq)` (by `ack`
   * frames, never by claims). Rejects with DruError ACK_TIMEOUT after `timeoutMs`; the
   * event stays committed and keeps replicating.
   */
  waitForAcks(event: { origin: string; seq: number }, k: number, timeoutMs: number): Promise<void>
  /**
   * Asks a connected peer for its summary now (and, when `deep`, its state digest).
   * Rejects with NOT_FOUND when no session with the peer is open, TIMEOUT when it does not
   * answer within `timeoutMs`.
   */
  probe(peerId: string, options?: { deep?: boolean; timeoutMs?: number }): Promise<ProbeResult>
  /** Lifts a quarantine (operator action) and lets the peer reconnect. */
  unquarantine(peerId: string): void
  /** Removes a DRU from the cluster: closes its sessions with DECOMMISSIONED, never dials it again, refuses it. */
  decommission(peerId: string): void
  on<E extends keyof SyncEvents>(event: E, listener: (...args: SyncEvents[E]) => void): this
  off<E extends keyof SyncEvents>(event: E, listener: (...args: SyncEvents[E]) => void): this
  once<E extends keyof SyncEvents>(event: E, listener: (...args: SyncEvents[E]) => void): this
  /** Closes every session and the server; pending waits reject with CLOSED. */
  close(): Promise<void>
}

const positive = (value: unknown, field: string, fallback: number): number => {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new DruError('CONFIG_INVALID', `${field} must be a positive number`, { details: { field } })
  }
  return value
}

/**
 * Starts the peer protocol on an open log: accepts peers on `listen`, dials `peers`
 * (reconnecting with backoff and jitter), streams what each side lacks, pushes new commits
 * live, and records durable acks. See docs/PROTOCOL.md.
 */
export async function startSync(options: SyncOptions): Promise<SyncNode> {
  const node = new SyncNodeImpl(options)
  await node.start()
  return node
}

class SyncNodeImpl extends EventEmitter implements SyncNode {
  readonly #options: SyncOptions
  readonly #log: ReplicaLog & PeerBook
  readonly #config: ProtocolConfig
  readonly #registry: PeerRegistry
  readonly #waiters: AckWaiters
  readonly #probes = new Probes()
  readonly #now: () => number
  readonly #random: () => number
  readonly #sessions = new Set<Session>()
  readonly #bySession = new Map<PeerProtocol, Session>()
  #bootstrapper: PeerProtocol | undefined
  #listener: Listener | undefined
  #closing = false
  #unsubscribe: (() => void) | undefined
  #ackFlush: NodeJS.Timeout | undefined

  constructor(options: SyncOptions) {
    super()
    if (!options || typeof options !== 'object') throw new DruError('CONFIG_INVALID', 'startSync() needs an options object')
    this.#options = options
    this.#log = options.log
    const druId = parseDruId(options.druId, 'druId')
    if (options.log.druId !== druId) {
      throw new DruError('CONFIG_INVALID', `druId ${druId} does not match the log's ${options.log.druId}`, { details: { field: 'druId' } })
    }
    if (typeof options.secret !== 'string' || options.secret.length < MIN_SECRET_LENGTH) {
      throw new DruError('CONFIG_INVALID', `secret must be a string of at least ${MIN_SECRET_LENGTH} characters`, { details: { field: 'secret' } })
    }
    if (!options.keys || typeof options.keys.publicKeys !== 'object' || options.keys.publicKeys === null) {
      throw new DruError('CONFIG_INVALID', 'keys must be { privateKey, publicKeys: { [druId]: publicKeyPem } }', { details: { field: 'keys' } })
    }
    const privateKey = parsePrivateKey(options.keys.privateKey)
    const keys = new Map<string, KeyObject>()
    for (const [id, pem] of Object.entries(options.keys.publicKeys)) {
      keys.set(parseDruId(id, `keys.publicKeys.${id}`), parsePublicKey(pem, `keys.publicKeys.${id}`))
    }
    const heartbeatMs = positive(options.heartbeatMs, 'heartbeatMs', DEFAULT_HEARTBEAT_MS)
    const maxFrameBytes = positive(options.maxFrameBytes, 'maxFrameBytes', DEFAULT_MAX_FRAME_BYTES)
    const maxBatchBytes = positive(options.maxBatchBytes, 'maxBatchBytes', DEFAULT_BATCH_BYTES)
    if (maxBatchBytes * 2 > maxFrameBytes) {
      throw new DruError('CONFIG_INVALID', 'maxBatchBytes must be at most half of maxFrameBytes (a batch may run on to the next signed event)', {
        details: { field: 'maxBatchBytes' },
      })
    }
    const heartbeatTimeoutMs = positive(options.heartbeatTimeoutMs, 'heartbeatTimeoutMs', Math.max(DEFAULT_HEARTBEAT_TIMEOUT_MS, heartbeatMs * 3))
    const limits: SessionLimits = {
      heartbeatMs,
      heartbeatTimeoutMs,
      maxFrameBytes,
      maxBatchBytes,
      maxUnackedBytes: positive(options.maxUnackedBytes, 'maxUnackedBytes', DEFAULT_MAX_UNACKED_BYTES),
      preAuthMaxFrameBytes: PRE_AUTH_MAX_FRAME_BYTES,
      handshakeTimeoutMs: Math.min(HANDSHAKE_TIMEOUT_MS, heartbeatTimeoutMs),
      framesPerSecond: positive(options.rates?.framesPerSecond, 'rates.framesPerSecond', FRAMES_PER_SECOND),
      frameBurst: positive(options.rates?.frameBurst, 'rates.frameBurst', FRAME_BURST),
      costlyFramesPerSecond: positive(options.rates?.costlyFramesPerSecond, 'rates.costlyFramesPerSecond', COSTLY_FRAMES_PER_SECOND),
      costlyFrameBurst: positive(options.rates?.costlyFrameBurst, 'rates.costlyFrameBurst', COSTLY_FRAME_BURST),
    }
    this.#now = options.now ?? Date.now
    this.#random = options.random ?? Math.random
    this.#config = {
      log: options.log,
      druId,
      secret: options.secret,
      privateKey,
      publicKeys: keys,
      limits,
      logger: options.logger ?? silentLogger,
      now: this.#now,
      snapshots: options.snapshots,
      describe: options.describe,
    }
    this.#registry = new PeerRegistry(druId, options.log, this.#now)
    this.#waiters = new AckWaiters((origin, seq) => this.#registry.ackCount(origin, seq))
    for (const id of options.decommissioned ?? []) this.#registry.decommissioned.add(parseDruId(id, 'decommissioned[]'))
    const seen = new Set<string>()
    for (const p of options.peers ?? []) {
      const id = parseDruId(p?.id, 'peers[].id')
      if (id === druId) throw new DruError('CONFIG_INVALID', 'peers must not include this DRU itself', { details: { field: 'peers' } })
      if (seen.has(id)) throw new DruError('CONFIG_INVALID', `peers lists ${id} twice`, { details: { field: 'peers' } })
      seen.add(id)
      if (!keys.has(id)) throw new DruError('CONFIG_INVALID', `peer ${id} has no public key in keys.publicKeys`, { details: { field: 'peers' } })
      if (p.url !== undefined && (typeof p.url !== 'string' || !/^wss?:\/\//.test(p.url))) {
        throw new DruError('CONFIG_INVALID', `peers[${id}].url must be a ws:// or wss:// URL`, { details: { field: 'peers' } })
      }
      this.#registry.state(id).url = p.url ?? null
    }
  }

  get #logger(): Logger {
    return this.#config.logger
  }

  get port(): number {
    return this.#listener?.port ?? 0
  }

  async start(): Promise<void> {
    if (this.#options.listen) {
      this.#listener = await listen({
        host: this.#options.listen.host ?? '127.0.0.1',
        port: this.#options.listen.port ?? 0,
        tls: this.#options.tls,
        preAuthMaxFrameBytes: this.#config.limits.preAuthMaxFrameBytes,
        logger: this.#logger,
        now: this.#now,
        ...(this.#options.listenerCaps ? { caps: this.#options.listenerCaps } : {}),
        onSocket: (ws, slot) => {
          if (this.#closing) return ws.terminate()
          this.#attach(new WsSession(ws, this.#config, this.#hooks(slot), 'acceptor'))
        },
      })
    }
    this.#unsubscribe = this.#log.onCommit(
      (_events, source) => {
        for (const s of this.#sessions) {
          s.schedulePump()
          // Tell every peer, not just the sender, that we now durably hold these events.
          if (source === 'remote') s.scheduleAck()
        }
      },
      { phase: 'notify' },
    )
    this.#ackFlush = setInterval(() => this.#registry.flushAcks((peer, err) => this.#logger.warn(`sync: could not record acks of ${peer}: ${err.message}`)), 200)
    this.#ackFlush.unref()
    for (const p of this.#registry.peers.values()) if (p.url) this.#dial(p)
  }

  #attach(session: Session): void {
    this.#sessions.add(session)
    this.#bySession.set(session.protocol, session)
  }

  /** The node's side of every session: admission, acks, quarantine, bootstrap slot, closing. */
  #hooks(slot?: { authenticated(): void }): ProtocolHooks {
    return {
      admit: (p) => {
        slot?.authenticated()
        const session = this.#bySession.get(p)!
        const { admission, replaced, twin } = this.#registry.admit(session)
        if (!admission.ok) return admission
        replaced?.protocol.fail('DUPLICATE_SESSION', `replaced by a newer session with ${p.peerId}`)
        this.#logger.info(`sync: connected to ${p.peerId} (${p.role}, ${p.peerOrigin})`, { peer: p.peerId })
        if (twin) {
          const origins = [...this.#registry.state(p.peerId!).sessions.keys()].sort()
          this.#logger.error(`sync: ${p.peerId} runs twice: processes ${origins.join(' and ')} are both connected; stop one of them`, { peer: p.peerId, origins })
          this.emit('identity-conflict', { peerId: p.peerId!, origins })
        }
        this.emit('peer-up', p.peerId!)
        return admission
      },
      acked: (p, vv) => {
        this.#registry.acked(p.peerId!, vv)
        this.emit('ack', p.peerId!, vv)
        this.#waiters.check()
      },
      quarantine: (peerId, code, message) => this.#quarantine(peerId, code, message),
      reported: (p, report) => this.#probes.answered(p, report),
      claimBootstrap: (p) => {
        if (this.#bootstrapper && this.#bootstrapper !== p && this.#bootstrapper.isOpen) return false
        this.#bootstrapper = p
        return true
      },
      releaseBootstrap: (p) => {
        if (this.#bootstrapper === p) this.#bootstrapper = undefined
      },
      bootstrapped: (p, info) => this.emit('bootstrap', { peerId: p.peerId!, ...info }),
      violation: (p, code, message) => {
        if (p.wasAuthenticated && p.peerId) this.#registry.state(p.peerId).violations++
        this.emit('violation', { peerId: p.peerId, code, message, authenticated: p.wasAuthenticated })
      },
      closed: (p, reason) => this.#closed(p, reason),
    }
  }

  #quarantine(peerId: string, code: string, message: string): void {
    const p = this.#registry.state(peerId)
    if (p.quarantine) return
    p.quarantine = { code, message, at: this.#now() }
    if (p.timer) clearTimeout(p.timer)
    p.timer = undefined
    this.#logger.error(`sync: QUARANTINED ${peerId}: ${code}: ${message}. No reconnect until an operator lifts it.`, { peer: peerId, code })
    try {
      this.#log.recordPeer(peerId, { state: `quarantined: ${code}` })
    } catch {
      // Recording is best effort; the in-memory quarantine is what blocks the peer.
    }
    const info = { peerId, code, message }
    this.emit('quarantine', info)
    if (code === 'FORK' || code === 'CHAIN_BROKEN') this.emit('fork', info)
  }

  #closed(p: PeerProtocol, reason: { code: string; message: string }): void {
    const session = this.#bySession.get(p)
    this.#bySession.delete(p)
    if (session) this.#sessions.delete(session)
    if (this.#bootstrapper === p) this.#bootstrapper = undefined
    const id = p.peerId
    if (id === undefined) return
    // An unauthenticated caller may claim any id in its hello: it must not touch that peer's state.
    if (p.role === 'acceptor' && !p.wasAuthenticated) return
    const state = this.#registry.peers.get(id)
    if (!state) return
    if (reason.code !== 'DUPLICATE_SESSION' && reason.code !== 'CLOSED') state.lastError = reason
    if (p.role === 'dialer') state.dialing = false
    const down = session !== undefined && this.#registry.removed(session)
    if (down) {
      this.#logger.info(`sync: disconnected from ${id}: ${reason.code}`, { peer: id, code: reason.code })
      this.emit('peer-down', id, reason)
      this.#scheduleDial(state, 0)
    } else if (p.role === 'dialer' && !p.wasAuthenticated) {
      state.attempts++
      this.#scheduleDial(state, state.attempts)
    } else if (p.role === 'dialer') {
      this.#scheduleDial(state, 0)
    }
  }

  // ---- dialing --------------------------------------------------------------------------

  #scheduleDial(p: PeerState, attempt: number): void {
    if (this.#closing || !p.url || p.quarantine || p.sessions.size > 0 || p.dialing || p.timer || this.#registry.decommissioned.has(p.id)) return
    const delay = backoffDelay(attempt, this.#random, this.#options.backoff)
    p.timer = setTimeout(() => {
      p.timer = undefined
      this.#dial(p)
    }, delay)
    p.timer.unref()
  }

  #dial(p: PeerState): void {
    if (this.#closing || !p.url || p.quarantine || p.sessions.size > 0 || p.dialing || this.#registry.decommissioned.has(p.id)) return
    p.dialing = true
    let ws: WebSocket
    try {
      ws = new WebSocket(p.url, {
        perMessageDeflate: false,
        // The answering side is a stranger until it proves itself: small messages until then.
        maxPayload: this.#config.limits.preAuthMaxFrameBytes * 2,
        handshakeTimeout: this.#config.limits.heartbeatTimeoutMs,
        ...(this.#options.tls?.ca !== undefined ? { ca: this.#options.tls.ca } : {}),
      })
    } catch (err) {
      p.dialing = false
      p.lastError = { code: 'CONNECTION_FAILED', message: (err as Error).message }
      p.attempts++
      this.#scheduleDial(p, p.attempts)
      return
    }
    const s = new WsSession(ws, this.#config, this.#hooks(), 'dialer', p.id)
    p.last = s
    this.#attach(s)
  }

  // ---- public API -----------------------------------------------------------------------

  peerStatus(): PeerStatus[] {
    return this.#registry.status(this.#log.vv())
  }

  listenerStats(): { connections: number; handshaking: number; refused: number } {
    const l = this.#listener
    return { connections: l?.connections ?? 0, handshaking: l?.handshaking ?? 0, refused: l?.refused ?? 0 }
  }

  waitForAcks(event: { origin: string; seq: number }, k: number, timeoutMs: number): Promise<void> {
    if (this.#closing) return Promise.reject(new DruError('CLOSED', 'sync is closed'))
    return this.#waiters.wait(event, k, timeoutMs)
  }

  probe(peerId: string, options: { deep?: boolean; timeoutMs?: number } = {}): Promise<ProbeResult> {
    const session = this.#registry.primary(peerId)
    if (!session) return Promise.reject(new DruError('NOT_FOUND', `no open session with ${peerId}`))
    return this.#probes.ask(peerId, session.protocol, options.deep === true, options.timeoutMs ?? 5_000)
  }

  unquarantine(peerId: string): void {
    const p = this.#registry.peers.get(peerId)
    if (!p?.quarantine) return
    p.quarantine = null
    this.#logger.warn(`sync: quarantine of ${peerId} lifted by operator`, { peer: peerId })
    this.#log.recordPeer(peerId, { state: 'active' })
    this.#scheduleDial(p, 0)
  }

  decommission(peerId: string): void {
    const id = parseDruId(peerId, 'peerId')
    if (id === this.#config.druId) throw new DruError('INVALID_ARGUMENT', 'a DRU cannot decommission itself')
    if (this.#registry.decommissioned.has(id)) return
    this.#registry.decommissioned.add(id)
    const p = this.#registry.peers.get(id)
    if (p?.timer) clearTimeout(p.timer)
    if (p) p.timer = undefined
    this.#logger.warn(`sync: ${id} decommissioned: no longer dialed, its sessions refused`, { peer: id })
    for (const s of [...this.#sessions]) {
      if (s.protocol.peerId === id) s.protocol.fail('DECOMMISSIONED', `${id} was decommissioned from this cluster by ${this.#config.druId}`)
    }
  }

  async close(): Promise<void> {
    if (this.#closing) return
    this.#closing = true
    this.#unsubscribe?.()
    clearInterval(this.#ackFlush)
    for (const p of this.#registry.peers.values()) if (p.timer) clearTimeout(p.timer)
    this.#waiters.rejectAll(new DruError('CLOSED', 'sync closed before enough peers acknowledged'))
    this.#probes.rejectAll(new DruError('CLOSED', 'sync closed before the peer answered'))
    for (const s of [...this.#sessions]) s.protocol.close('CLOSED', 'this DRU is shutting down')
    if (!this.#log.closed) this.#registry.flushAcks(() => undefined)
    await this.#listener?.close()
  }
}
