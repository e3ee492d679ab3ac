import { DruError, type LogSummary, type VersionVector } from '@dru/core'
import type { ErrorFrame, Frame, PeerLifecycle } from '../frames.js'
import { FrameRateLimit } from './frame-rate-limit.js'
import { HandshakeState, handshakeIdentity } from './handshake-phase.js'
import { Liveness, type Ending } from './liveness.js'
import { PendingProbes } from './pending-probes.js'
import { summaryReport, treeReport } from './probe-answers.js'
import { REFRESH_PROBE, RefreshSchedule } from './refresh-schedule.js'
import { Replication } from './replication.js'
import type { RoutedSession } from './route-book.js'
import type { ProtocolConfig, ProtocolHooks, SessionRole, Wire } from './session-config.js'
import { SessionCodec } from './session-codec.js'
import { QUARANTINE_CODES, checkFrameAllowed, type Phase } from './session-rules.js'

/**
 * One session with one peer, as a state machine over frames: the handshake (the cluster
 * secret and the peer's own key), the summary exchange, streaming what the peer lacks in a
 * bounded window, durable acks, bootstraps with evidence, probes and heartbeats. It holds no
 * socket and no timer: bytes come in through {@link receive}, go out through the {@link Wire},
 * and the owner calls {@link tick} and {@link pump}. So the same code runs on a WebSocket and
 * in the in-process simulation.
 *
 * This class is the session shell: it owns the phase, dispatches each frame the phase
 * allows, and ends the session on errors. Its parts do the rest: the {@link HandshakeState}
 * proves both sides, the {@link SessionCodec} turns frames into sealed bytes and back, the
 * {@link FrameRateLimit} bounds the peer's pace, {@link Liveness} judges the link and times
 * the pings, {@link PendingProbes} and the {@link RefreshSchedule} keep the probes, and what
 * flows once the session is open (summaries, batches, acks, bootstraps) is its {@link Replication}.
 *
 * What a peer may do is decided by the session's phase and the peer's proven identity,
 * never by what it claims: a frame the phase does not allow, an ack of something we do not
 * hold, a claim about our own current origin, is a PROTOCOL_VIOLATION that changes nothing.
 */
export class PeerProtocol implements RoutedSession {
  readonly role: SessionRole
  readonly createdAt: number
  /** The authenticated (or, for a dialer, expected) DRU id of the other side. */
  peerId: string | undefined
  /** The origin the peer writes as (from its hello, proven by its auth signature). */
  peerOrigin: string | undefined
  bytesIn = 0
  bytesOut = 0
  framesIn = 0
  framesOut = 0
  lastFrameAt: number
  wasAuthenticated = false
  closeReason: { code: string; message: string } | undefined

  readonly #c: ProtocolConfig
  readonly #hooks: ProtocolHooks
  readonly #wire: Wire
  #phase: Phase = 'hello'
  /** Nonces, ephemeral keys and the seal: our frames are sealed once our auth is sent, the peer's once its auth arrived. */
  readonly #handshake: HandshakeState
  readonly #replication: Replication
  readonly #probes = new PendingProbes()
  readonly #refresh: RefreshSchedule
  readonly #codec: SessionCodec
  readonly #rateLimit: FrameRateLimit
  readonly #liveness: Liveness

  constructor(config: ProtocolConfig, hooks: ProtocolHooks, wire: Wire, role: SessionRole, expectedPeer?: string) {
    this.#c = config
    this.#hooks = hooks
    this.#wire = wire
    this.role = role
    this.peerId = expectedPeer
    this.createdAt = config.now()
    this.lastFrameAt = this.createdAt
    this.#refresh = new RefreshSchedule(config.limits.refreshIntervalMs)
    this.#handshake = new HandshakeState(handshakeIdentity(config))
    this.#replication = new Replication(this, config, hooks, (frame) => this.#send(frame))
    this.#codec = new SessionCodec(this.#handshake, config.limits, config.compression)
    this.#rateLimit = new FrameRateLimit(config.limits, config.now)
    this.#liveness = new Liveness(config.limits, this.createdAt)
  }

  get phase(): Phase {
    return this.#phase
  }

  get isOpen(): boolean {
    return this.#phase === 'open'
  }

  /** True while we are being bootstrapped by this peer (we asked it to). */
  get bootstrapping(): boolean {
    return this.#replication.bootstrapping
  }

  get unackedBytes(): number {
    return this.#replication.window.unackedBytes
  }

  /** The lifecycle state the peer announced in its latest heartbeat (display only), if any. */
  peerLifecycle: PeerLifecycle | undefined

  /** What the peer holds as far as we know (its vector, raised by what it sent and acked). */
  get theirVv(): VersionVector {
    return this.#replication.acks.holdings
  }

  /** Events received in batches. */
  get eventsIn(): number {
    return this.#replication.eventsIn
  }

  /** Events received in batches that we already held. */
  get duplicatesIn(): number {
    return this.#replication.duplicatesIn
  }

  /** Document snapshots received in bootstraps. */
  get snapshotDocsIn(): number {
    return this.#replication.snapshotDocsIn
  }

  /** Folded events received (and rebuilt) in bootstraps. */
  get foldedIn(): number {
    return this.#replication.foldedIn
  }

  /** The peer's compaction base per origin, from its latest vv. */
  get theirBases(): VersionVector {
    return this.#replication.theirBases
  }

  /** The peer's retired summary, from its latest vv. */
  get theirRetired(): LogSummary['retired'] | undefined {
    return this.#replication.theirRetired
  }

  /** The origins the peer says it receives by another session, with how far it holds each (its latest routes frame). */
  get theirRoutes(): VersionVector {
    return this.#replication.theirRoutes
  }

  /** The DRUs the peer says it has sessions with, besides us (its latest routes frame). */
  get peerNeighbours(): ReadonlySet<string> {
    return this.#replication.theirNeighbours
  }

  /** True while this session holds events back from the peer, waiting to see them arrive by its other path. */
  get holdingBack(): boolean {
    return this.#replication.holdingBack
  }

  /** The DRU's supplier choices changed (the route book calls it): announce what changed for this peer. */
  routesChanged(): void {
    this.#guard(() => this.#replication.announceRoutes())
  }

  /** Sends our hello. Called once the connection is up. */
  start(): void {
    if (this.#phase !== 'hello') return
    this.#guard(() => this.#send(this.#handshake.hello()))
  }

  /** One message from the peer. Never throws: bad input becomes an error frame and a close. */
  receive(bytes: Uint8Array, isBinary = true): void {
    if (this.#phase === 'closed') return
    this.bytesIn += bytes.byteLength
    this.framesIn++
    this.lastFrameAt = this.#c.now()
    this.#guard(() => {
      const incoming = this.#codec.decode(bytes, isBinary, this.#phase === 'open')
      if (incoming.unsealed) this.#onUnsealedError(incoming.unsealed)
      else this.#handle(incoming.frame)
    })
  }

  /**
   * An `error` without the session's seal after the peer's auth: anyone on the path could have
   * sent it, so it ends the session as any unsealed frame does (AUTH_FAILED), never with the
   * code it claims. What it says is kept for the operator, as a claim: a peer that refused our
   * auth explains itself this way.
   */
  #onUnsealedError(clear: ErrorFrame): never {
    this.#c.logger.warn(
      `sync: an error frame without the session's seal from ${this.peerId ?? 'the peer'}'s side claims ${clear.code}: ${clear.message}`,
      { peer: this.peerId, claimed: clear.code },
    )
    throw new DruError(
      'AUTH_FAILED',
      `an error frame without the session's seal (unverified: it claims ${clear.code}: ${clear.message})`,
    )
  }

  /** Streams what the peer lacks while the window has room (after a commit or an ack). */
  pump(): void {
    this.#guard(() => this.#replication.pump())
  }

  /** Acknowledges what grew since our last ack (after a commit that came by another session). */
  ackNow(): void {
    this.#guard(() => this.#replication.ackNow())
  }

  /** Heartbeat, handshake and stall checks; the owner calls it about every heartbeat interval. */
  tick(): void {
    if (this.#phase === 'closed') return
    const now = this.#c.now()
    const ending = this.#liveness.ending(now, {
      open: this.#phase === 'open',
      peerId: this.peerId,
      lastFrameAt: this.lastFrameAt,
      gotVv: this.#replication.gotVv,
      window: this.#replication.window,
    })
    if (ending) return this.#end(ending)
    if (this.#phase !== 'open') return
    this.#guard(() => {
      const n = this.#liveness.pingDue(now)
      if (n !== undefined) {
        const state = this.#c.announce?.()
        this.#send({ type: 'ping', n, ...(state ? { state } : {}) })
      }
      // At most one refresh in flight, so at most one per heartbeat while anything stays untold.
      if (!this.#probes.awaiting(REFRESH_PROBE) && this.#refresh.due(now) && this.#replication.untold()) {
        this.#probes.asked(REFRESH_PROBE)
        this.#refresh.sent(now)
        this.#send({ type: 'probe', id: REFRESH_PROBE, deep: false })
      }
      this.#replication.tick()
    })
  }

  /**
   * Ends the session as {@link Liveness} decided: a suspect link is dropped with a warning, the
   * rest fail, counted like any refused frame. A vv that never came while sealed frames did is
   * the proven peer's doing, not the link's: a lost frame breaks the seal's count instead.
   */
  #end(ending: Ending): void {
    if (ending.warning === undefined) {
      this.#account(ending.code, ending.message)
      return this.fail(ending.code, ending.message)
    }
    this.#c.logger.warn(ending.warning, { peer: this.peerId })
    this.close(ending.code, ending.message)
  }

  /** True while this session would ask the peer for its summary at the next heartbeat. */
  get refreshDue(): boolean {
    return this.isOpen && this.#replication.untold()
  }

  /** The peer's summary from its latest vv while that is as good as a probe's answer (see `LatestSummary.recent`). */
  recentSummary(maxAgeMs: number): LogSummary | undefined {
    if (!this.isOpen) return undefined
    return this.#replication.latest.recent(this.#c.now(), maxAgeMs, this.#c.log.vv(), this.theirVv)
  }

  /** Resolves once the peer's first vv arrived (or the session closed). */
  whenVv(): Promise<void> {
    return this.#replication.latest.first()
  }

  /** Asks the peer for its summary (and state digest when `deep`); the answer goes to `hooks.reported`. */
  probe(id: number, deep: boolean): void {
    if (this.#phase !== 'open') return
    this.#probes.asked(id)
    this.#guard(() => this.#send({ type: 'probe', id, deep }))
  }

  /** Forgets a probe we gave up on (its late answer is then a violation, like any unasked report). */
  forgetProbe(id: number): void {
    this.#probes.forget(id)
  }

  /** Asks the peer about nodes of its digest tree; the answer goes to `hooks.treeReported`. */
  treeProbe(id: number, level: number, nodes: readonly number[]): void {
    if (this.#phase !== 'open') return
    this.#probes.askedTree(id)
    this.#guard(() => this.#send({ type: 'tree-probe', id, level, nodes }))
  }

  /** Sends an error frame and closes. */
  fail(code: string, message: string): void {
    if (this.#phase === 'closed') return
    this.#c.logger.warn(`sync: closing session with ${this.peerId ?? 'unknown peer'}: ${code}: ${message}`, {
      peer: this.peerId,
      code,
    })
    try {
      this.#send({ type: 'error', code, message })
    } catch {
      // Closing anyway.
    }
    this.close(code, message)
  }

  /** Closes without an error frame (shutdown, or the connection is gone). Idempotent. */
  close(code = 'CLOSED', message = 'closing'): void {
    if (this.#phase === 'closed') return
    this.#phase = 'closed'
    this.closeReason = { code, message }
    this.#replication.closed()
    this.#wire.close(code, message)
    this.#hooks.closed?.(this, { code, message })
  }

  // ---- frames in --------------------------------------------------------------------------

  /** Runs `fn`; whatever it throws becomes an error frame and a close, never a crash. */
  #guard(fn: () => void): void {
    try {
      fn()
    } catch (err) {
      const code = err instanceof DruError ? err.code : 'INTERNAL'
      const message = err instanceof Error ? err.message : String(err)
      if (!(err instanceof DruError))
        this.#c.logger.error(`sync: internal error in session with ${this.peerId ?? '?'}`, { err })
      this.#account(code, message)
      this.fail(code, message)
    }
  }

  /** Tells the node what the peer did wrong: a violation (of the protocol or its rate), or a forged history. */
  #account(code: string, message: string): void {
    if (code === 'PROTOCOL_VIOLATION' || code === 'RATE_LIMITED') this.#hooks.violation?.(this, code, message)
    if (this.wasAuthenticated && this.peerId && QUARANTINE_CODES.has(code))
      this.#hooks.quarantine?.(this.peerId, code, message)
  }

  #handle(frame: Frame): void {
    checkFrameAllowed({ phase: this.#phase, bootstrapping: this.#replication.bootstrapping }, frame.type)
    if (this.#phase === 'open') this.#rateLimit.admit(frame.type, this.peerId)
    switch (frame.type) {
      case 'error':
        return this.#onError(frame.code, frame.message)
      case 'hello':
        return this.#onHello(frame)
      case 'auth':
        return this.#onAuth(frame.hmac, frame.sig)
      case 'vv':
        return this.#replication.onVv(frame)
      case 'expand':
        return this.#replication.sendVv(true)
      case 'events':
        return this.#replication.onEvents(frame.batch)
      case 'ack':
        return this.#replication.onAck(frame.vv, frame.withVv === true)
      case 'routes':
        return this.#replication.onRoutes(frame.vv, frame.neighbours)
      case 'ping':
        if (frame.state) {
          this.peerLifecycle = frame.state
          this.#hooks.announced?.(this, frame.state)
        }
        return void this.#send({ type: 'pong', n: frame.n })
      case 'pong':
        return this.#liveness.pong(frame.n)
      case 'probe':
        return void this.#send(summaryReport(this.#c, frame))
      case 'report':
        this.#probes.answered(frame.id)
        if (frame.id === REFRESH_PROBE) {
          this.#replication.onHoldingsReport(frame.summary)
          return this.#refresh.answered(this.#replication.untold())
        }
        return this.#hooks.reported?.(this, frame)
      case 'tree-probe':
        return void this.#send(treeReport(this.#c.tree, frame))
      case 'tree-report':
        this.#probes.treeAnswered(frame.id)
        return this.#hooks.treeReported?.(this, frame)
      case 'bootstrap':
        return this.#replication.onBootstrapRequest()
      case 'snapshot':
        return this.#replication.onSnapshot(frame.docs)
      case 'folded':
        return this.#replication.onFolded(frame.envelopes)
      case 'bootstrap-end':
        return this.#replication.onBootstrapEnd()
    }
  }

  #onError(code: string, message: string): void {
    this.#c.logger.warn(`sync: ${this.peerId ?? 'peer'} reported ${code}: ${message}`, {
      peer: this.peerId,
      code,
      authenticated: this.wasAuthenticated,
    })
    // Before authentication anybody could have sent it: it closes this connection and
    // changes nothing else. After, the peer proved who it is; it can only refuse itself.
    if (this.wasAuthenticated && this.peerId) {
      if (QUARANTINE_CODES.has(code) || code === 'QUARANTINED' || code === 'DECOMMISSIONED') {
        this.#hooks.quarantine?.(this.peerId, code, `peer reported: ${message}`)
      }
    }
    this.close(code, `peer reported: ${message}`)
  }

  #onHello(hello: Extract<Frame, { type: 'hello' }>): void {
    const auth = this.#handshake.acceptHello(hello, this.role, this.peerId)
    this.peerId = hello.druId
    this.peerOrigin = hello.origin
    this.#phase = 'auth'
    this.#send(auth)
    this.#handshake.sealOut = true
  }

  #onAuth(hmac: Uint8Array, sig: Uint8Array): void {
    this.#handshake.verifyAuth(hmac, sig)
    this.#phase = 'open'
    this.#liveness.opened(this.#c.now())
    this.wasAuthenticated = true
    const admission = this.#hooks.admit?.(this) ?? { ok: true }
    if (!admission.ok) return this.fail(admission.code, admission.message)
    this.#replication.sendVv(false)
    // From now on this session brings us its peer's own origin; the other sessions tell their peers.
    this.#c.routes?.opened(this)
  }

  /** Encodes and sends a frame; returns the bytes sent (0 when the connection is gone). */
  #send(frame: Frame): number {
    if (this.#phase === 'closed') return 0
    const { maxUnackedBytes, maxFrameBytes } = this.#c.limits
    // Secondary guard: our window bounds stream frames, but a peer that never reads could
    // still pile up pongs and acks in the socket buffer.
    if (this.#wire.bufferedAmount > maxUnackedBytes * 2 + maxFrameBytes) {
      this.close('BACKPRESSURE', `peer is not reading (${this.#wire.bufferedAmount} bytes queued)`)
      return 0
    }
    const wire = this.#codec.encode(frame, this.#phase === 'open')
    this.bytesOut += wire.byteLength
    this.framesOut++
    this.#wire.send(wire)
    return wire.byteLength
  }
}
