import { EventEmitter } from 'node:events'
import { DruError, parseDruId, type PeerBook, type ReplicaLog, type VersionVector } from '@dru/core'
import { AckWaiters } from './ack-waiters.js'
import { Dialer } from './dialer.js'
import type { Logger } from './logger.js'
import { PeerRegistry, type PeerStatus } from './peer-registry.js'
import { Probes, type ProbeResult, type TreeProbeResult } from './probes.js'
import type { PeerProtocol } from './protocol/peer-protocol.js'
import type { ProtocolConfig, ProtocolHooks } from './protocol/session-config.js'
import { resolveSyncOptions, type SyncOptions } from './sync-options.js'
import { listen, type Listener } from './transport/ws-listener.js'
import { WsSession, type Session } from './transport/ws-session.js'

export type { PeerStatus, QuarantineInfo } from './peer-registry.js'
export type { ProbeResult, TreeProbeResult } from './probes.js'

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
   * frames, or by the vv a session opens with, which since protocol 7 stands for the ack
   * that would repeat it; never by other claims). Rejects with DruError ACK_TIMEOUT after `timeoutMs`; the
   * event stays committed and keeps replicating.
   */
  waitForAcks(event: { origin: string; seq: number }, k: number, timeoutMs: number): Promise<void>
  /**
   * Asks a connected peer for its summary now (and, when `deep`, its state digest).
   * Rejects with NOT_FOUND when no session with the peer is open, TIMEOUT when it does not
   * answer within `timeoutMs`. With `recentMs` (not deep), the summary the session opened
   * with answers instead, no frame sent, when it came at most that long ago and neither
   * side's log moved since as far as this DRU can tell.
   */
  probe(peerId: string, options?: { deep?: boolean; timeoutMs?: number; recentMs?: number }): Promise<ProbeResult>
  /**
   * Asks a connected peer about nodes of its document-digest tree, as of its last deep probe
   * (children's hashes below the leaves, documents at the leaves; at most `MAX_TREE_NODES`).
   * NOT_FOUND without an open session, TIMEOUT without an answer in time.
   */
  treeProbe(
    peerId: string,
    level: number,
    nodes: readonly number[],
    options?: { timeoutMs?: number },
  ): Promise<TreeProbeResult>
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
  readonly #dialer: Dialer
  readonly #sessions = new Set<Session>()
  readonly #bySession = new Map<PeerProtocol, Session>()
  #bootstrapper: PeerProtocol | undefined
  #listener: Listener | undefined
  #closing = false
  #unsubscribe: (() => void) | undefined
  #ackFlush: NodeJS.Timeout | undefined

  constructor(options: SyncOptions) {
    super()
    const { config, peers, decommissioned } = resolveSyncOptions(options)
    this.#options = options
    this.#log = options.log
    this.#config = config
    this.#now = config.now
    this.#registry = new PeerRegistry(config.druId, options.log, this.#now)
    this.#waiters = new AckWaiters((origin, seq) => this.#registry.ackCount(origin, seq))
    for (const id of decommissioned) this.#registry.decommissioned.add(id)
    for (const p of peers) this.#registry.state(p.id).url = p.url
    this.#dialer = new Dialer({
      registry: this.#registry,
      limits: config.limits,
      ca: options.tls?.ca,
      backoff: options.backoff,
      random: options.random ?? Math.random,
      closing: () => this.#closing,
      connect: (ws, p) => {
        const s = new WsSession(ws, this.#config, this.#hooks(), 'dialer', p.id)
        p.last = s
        this.#attach(s)
      },
    })
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
    this.#ackFlush = setInterval(
      () =>
        this.#registry.flushAcks((peer, err) =>
          this.#logger.warn(`sync: could not record acks of ${peer}: ${err.message}`),
        ),
      200,
    )
    this.#ackFlush.unref()
    for (const p of this.#registry.peers.values()) if (p.url) this.#dialer.dial(p)
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
          this.#logger.error(
            `sync: ${p.peerId} runs twice: processes ${origins.join(' and ')} are both connected; stop one of them`,
            { peer: p.peerId, origins },
          )
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
      holds: (p, vv) => {
        this.#registry.acked(p.peerId!, vv)
        this.#waiters.check()
      },
      received: (p, events, duplicates) => this.#registry.received(p.peerId!, events, duplicates),
      quarantine: (peerId, code, message) => this.#quarantine(peerId, code, message),
      announced: (p, lifecycle) => this.#registry.announced(p.peerId!, lifecycle),
      reported: (p, report) => this.#probes.answered(p, report),
      treeReported: (p, report) => this.#probes.answered(p, report),
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
    this.#logger.error(`sync: QUARANTINED ${peerId}: ${code}: ${message}. No reconnect until an operator lifts it.`, {
      peer: peerId,
      code,
    })
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
      this.#dialer.schedule(state, 0)
    } else if (p.role === 'dialer' && !p.wasAuthenticated) {
      state.attempts++
      this.#dialer.schedule(state, state.attempts)
    } else if (p.role === 'dialer') {
      this.#dialer.schedule(state, 0)
    }
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

  probe(peerId: string, options: { deep?: boolean; timeoutMs?: number; recentMs?: number } = {}): Promise<ProbeResult> {
    const session = this.#registry.primary(peerId)
    if (!session) return Promise.reject(new DruError('NOT_FOUND', `no open session with ${peerId}`))
    const timeoutMs = options.timeoutMs ?? 5_000
    const ask = () => this.#probes.ask(peerId, session.protocol, options.deep === true, timeoutMs)
    const recentMs = options.recentMs
    if (options.deep === true || recentMs === undefined) return ask()
    // A session that just opened brings the peer's summary in its vv: wait for that (within
    // the timeout) rather than ask again.
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs)
      timer.unref()
    })
    return Promise.race([session.protocol.whenVv(), late]).then(() => {
      clearTimeout(timer)
      const summary = session.protocol.recentSummary(recentMs)
      return summary ? { summary, stateDigest: null, documents: null } : ask()
    })
  }

  treeProbe(
    peerId: string,
    level: number,
    nodes: readonly number[],
    options: { timeoutMs?: number } = {},
  ): Promise<TreeProbeResult> {
    const session = this.#registry.primary(peerId)
    if (!session) return Promise.reject(new DruError('NOT_FOUND', `no open session with ${peerId}`))
    return this.#probes.askTree(peerId, session.protocol, level, nodes, options.timeoutMs ?? 5_000)
  }

  unquarantine(peerId: string): void {
    const p = this.#registry.peers.get(peerId)
    if (!p?.quarantine) return
    p.quarantine = null
    this.#logger.warn(`sync: quarantine of ${peerId} lifted by operator`, { peer: peerId })
    this.#log.recordPeer(peerId, { state: 'active' })
    this.#dialer.schedule(p, 0)
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
      if (s.protocol.peerId === id)
        s.protocol.fail('DECOMMISSIONED', `${id} was decommissioned from this cluster by ${this.#config.druId}`)
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
