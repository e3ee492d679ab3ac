import type { KeyObject } from 'node:crypto'
import {
  DruError,
  parseOrigin,
  retiredSummary,
  type DruEvent,
  type ErrorCode,
  type FoldedEnvelope,
  type LogSummary,
  type ReplicaLog,
  type VersionVector,
} from '@dru/core'
import { decodeFrame, encodeFrame, PROTOCOL_VERSION, type Frame, type ReportFrame, type SnapshotFrame, type VvFrame } from '../frames.js'
import { authProof, identityProof, identityProofValid, newNonce, proofMatches, type Transcript } from '../handshake.js'
import { FrameSeal, SEAL_TAG_BYTES, newEphemeralKey, type EphemeralKey } from '../frame-seal.js'
import { MAX_EVENTS_PER_FRAME } from '../limits.js'
import type { Logger } from '../logger.js'
import { checkRuns } from './batch-check.js'
import { SendWindow } from './send-window.js'
import { COSTLY_FRAMES, frameAllowed, type Phase } from './session-rules.js'
import { TokenBucket } from './token-bucket.js'

/** Error codes after which a peer is quarantined: it offered a forked or forged history. */
export const QUARANTINE_CODES: ReadonlySet<string> = new Set(['FORK', 'CHAIN_BROKEN', 'HASH_MISMATCH', 'BAD_SIGNATURE'])

/** The caps one session works within (see limits.ts for the defaults and why). */
export interface SessionLimits {
  readonly maxFrameBytes: number
  readonly maxBatchBytes: number
  readonly maxUnackedBytes: number
  readonly heartbeatMs: number
  readonly heartbeatTimeoutMs: number
  readonly preAuthMaxFrameBytes: number
  readonly handshakeTimeoutMs: number
  readonly framesPerSecond: number
  readonly frameBurst: number
  readonly costlyFramesPerSecond: number
  readonly costlyFrameBurst: number
}

/** Document snapshots for bootstraps (the node passes its documents). */
export interface SnapshotSource {
  /** Stored snapshots in doc id order after `after`, about `maxBytes` long; `next` undefined at the end. */
  page(after: string, maxBytes: number): { docs: SnapshotFrame['docs']; next: string | undefined }
  /** The change bytes a snapshot carries; MALFORMED when the bytes are not an Automerge document. */
  changesOf(docId: string, bytes: Uint8Array): Uint8Array[]
}

/** What a session is given. The log is the port; nothing here is a socket. */
export interface ProtocolConfig {
  readonly log: ReplicaLog
  readonly druId: string
  readonly secret: string
  readonly privateKey: KeyObject
  /** Every member's public key (ours included): membership and authorship. */
  readonly publicKeys: ReadonlyMap<string, KeyObject>
  readonly limits: SessionLimits
  readonly logger: Logger
  readonly now: () => number
  readonly nonce?: () => Uint8Array
  /** Without it this DRU can neither serve nor take a bootstrap. */
  readonly snapshots?: SnapshotSource | undefined
  /** Our materialised state digest, for deep probes (absent: answered with null). */
  readonly describe?: (() => { digest: string; documents: number }) | undefined
}

/** Where a session's bytes go: a socket, or a simulated link. */
export interface Wire {
  send(bytes: Uint8Array): void
  /** Ends the connection (idempotent). */
  close(code: string, message: string): void
  /** Bytes queued and not yet written (0 when unknown). */
  readonly bufferedAmount: number
}

export type Admission = { readonly ok: true } | { readonly ok: false; readonly code: ErrorCode; readonly message: string }

/** What the node decides and learns about sessions (registry, acks, quarantine). All optional. */
export interface ProtocolHooks {
  /** After the peer proved the secret and its key: keep this session? (duplicates, quarantine, decommission) */
  admit?(p: PeerProtocol): Admission
  acked?(p: PeerProtocol, vv: VersionVector): void
  quarantine?(peerId: string, code: string, message: string): void
  reported?(p: PeerProtocol, report: ReportFrame): void
  /** May this session bootstrap us now (one bootstrap at a time per DRU)? Default yes. */
  claimBootstrap?(p: PeerProtocol): boolean
  releaseBootstrap?(p: PeerProtocol): void
  bootstrapped?(p: PeerProtocol, info: { docs: number; events: number }): void
  violation?(p: PeerProtocol, code: string, message: string): void
  closed?(p: PeerProtocol, reason: { code: string; message: string }): void
}

export type SessionRole = 'dialer' | 'acceptor'

/** A stream frame: what goes out inside the unacknowledged window. */
type Outgoing = Extract<Frame, { type: 'events' | 'snapshot' | 'folded' | 'bootstrap-end' }>

/**
 * One session with one peer, as a state machine over frames: the handshake (the cluster
 * secret and the peer's own key), the summary exchange, streaming what the peer lacks in a
 * bounded window, durable acks, bootstraps with evidence, probes and heartbeats. It holds no
 * socket and no timer: bytes come in through {@link receive}, go out through the {@link Wire},
 * and the owner calls {@link tick} and {@link pump}. So the same code runs on a WebSocket and
 * in the in-process simulation.
 *
 * What a peer may do is decided by the session's phase and the peer's proven identity,
 * never by what it claims: a frame the phase does not allow, an ack of something we do not
 * hold, a claim about our own current origin, is a PROTOCOL_VIOLATION that changes nothing.
 */
export class PeerProtocol {
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
  /** Events received in batches, and how many of them we already held. */
  eventsIn = 0
  duplicatesIn = 0
  /** Document snapshots and folded events received in bootstraps. */
  snapshotDocsIn = 0
  foldedIn = 0
  lastFrameAt: number
  wasAuthenticated = false
  closeReason: { code: string; message: string } | undefined
  /** The peer's compaction base per origin, from its latest vv. */
  theirBases: VersionVector = {}
  /** The peer's retired summary, from its latest vv. */
  theirRetired: LogSummary['retired'] | undefined

  readonly #c: ProtocolConfig
  readonly #hooks: ProtocolHooks
  readonly #wire: Wire
  #phase: Phase = 'hello'
  readonly #nonce: Uint8Array
  #peerNonce: Uint8Array | undefined
  readonly #ephemeral: EphemeralKey
  #peerKey: Uint8Array | undefined
  /** Seals our frames once our auth is sent, and opens the peer's once its auth arrived. */
  #seal: FrameSeal | undefined
  #sealOut = false
  #sealIn = false
  readonly #window = new SendWindow()
  #batches: Generator<Outgoing, void, undefined> | null = null
  #yielded = false
  #gotVv = false
  #openedAt = 0
  /** What the peer holds, as far as we know: its vv, raised by what it sent and acked. */
  #holdings: Record<string, number> = {}
  /** What we acknowledged to the peer in this session (acks carry only what grew). */
  #acked: Record<string, number> = {}
  /** What the peer acknowledged in this session (acks may be deltas). */
  #peerAcked: Record<string, number> = {}
  #expandSent = false
  #ingesting = false
  #resyncRequested = false
  #bootstrapping = false
  #bootstrapStats = { docs: 0, events: 0 }
  #serving = false
  #pingN = 0
  #pingsSent = 0
  readonly #probes = new Set<number>()
  readonly #frameRate: TokenBucket
  readonly #costlyRate: TokenBucket

  constructor(config: ProtocolConfig, hooks: ProtocolHooks, wire: Wire, role: SessionRole, expectedPeer?: string) {
    this.#c = config
    this.#hooks = hooks
    this.#wire = wire
    this.role = role
    this.peerId = expectedPeer
    this.createdAt = config.now()
    this.lastFrameAt = this.createdAt
    this.#nonce = (config.nonce ?? newNonce)()
    this.#ephemeral = newEphemeralKey()
    const l = config.limits
    this.#frameRate = new TokenBucket(l.framesPerSecond, l.frameBurst, config.now)
    this.#costlyRate = new TokenBucket(l.costlyFramesPerSecond, l.costlyFrameBurst, config.now)
  }

  get phase(): Phase {
    return this.#phase
  }

  get isOpen(): boolean {
    return this.#phase === 'open'
  }

  /** True while we are being bootstrapped by this peer (we asked it to). */
  get bootstrapping(): boolean {
    return this.#bootstrapping
  }

  get unackedBytes(): number {
    return this.#window.unackedBytes
  }

  /** What the peer holds as far as we know (its vector, raised by what it sent and acked). */
  get theirVv(): VersionVector {
    return { ...this.#holdings }
  }

  /** Sends our hello. Called once the connection is up. */
  start(): void {
    if (this.#phase !== 'hello') return
    this.#guard(() => this.#send({ type: 'hello', protocol: PROTOCOL_VERSION, druId: this.#c.druId, origin: this.#c.log.origin, nonce: this.#nonce, key: this.#ephemeral.publicRaw }))
  }

  /** One message from the peer. Never throws: bad input becomes an error frame and a close. */
  receive(bytes: Uint8Array, isBinary = true): void {
    if (this.#phase === 'closed') return
    this.bytesIn += bytes.byteLength
    this.framesIn++
    this.lastFrameAt = this.#c.now()
    this.#guard(() => {
      if (!isBinary) throw new DruError('MALFORMED', 'text frames are not part of the protocol; frames are binary msgpack')
      // Until the peer proves itself, only small handshake frames are decoded.
      const limit = this.#phase === 'open' ? this.#c.limits.maxFrameBytes : this.#c.limits.preAuthMaxFrameBytes
      // After its auth, every frame of the peer must carry the session's seal.
      if (this.#sealIn) {
        const opened = this.#openSealed(bytes)
        if (opened) this.#handle(decodeFrame(opened, limit))
        return
      }
      this.#handle(decodeFrame(bytes, limit))
    })
  }

  /**
   * A sealed frame's bytes. The one unsealed frame still heard is an `error`: a peer that
   * refused our auth (a wrong secret derives another seal key) says why in the clear. It is
   * treated as a stranger's: it closes the session and changes nothing else (undefined).
   */
  #openSealed(bytes: Uint8Array): Uint8Array | undefined {
    try {
      return this.#seal!.open(bytes)
    } catch (err) {
      let clear: Frame | undefined
      try {
        clear = decodeFrame(bytes, this.#c.limits.preAuthMaxFrameBytes)
      } catch {
        throw err
      }
      if (clear.type !== 'error') throw err
      this.#c.logger.warn(`sync: ${this.peerId ?? 'peer'} reported ${clear.code} without the session's seal: ${clear.message}`, { peer: this.peerId, code: clear.code })
      this.close(clear.code, `peer reported (unsealed): ${clear.message}`)
      return undefined
    }
  }

  /** Streams what the peer lacks while the window has room (after a commit or an ack). */
  pump(): void {
    this.#guard(() => this.#pump())
  }

  /** Acknowledges what grew since our last ack (after a commit that came by another session). */
  ackNow(): void {
    // The session that is storing a batch acks right after its commit; do not ack twice.
    if (this.#phase !== 'open' || this.#ingesting || !this.#gotVv) return
    this.#guard(() => this.#sendAck(false))
  }

  /** Heartbeat, handshake and stall checks; the owner calls it about every heartbeat interval. */
  tick(): void {
    if (this.#phase === 'closed') return
    const now = this.#c.now()
    const l = this.#c.limits
    if (this.#phase !== 'open') {
      if (now - this.createdAt > l.handshakeTimeoutMs) this.fail('HANDSHAKE_TIMEOUT', `no complete handshake within ${l.handshakeTimeoutMs} ms`)
      return
    }
    const silent = now - this.lastFrameAt
    if (silent > l.heartbeatTimeoutMs) {
      this.#c.logger.warn(`sync: no frame from ${this.peerId ?? '?'} for ${silent} ms; dropping the connection`, { peer: this.peerId })
      this.close('HEARTBEAT_TIMEOUT', `no frame for ${silent} ms`)
      return
    }
    // TCP never loses bytes inside a live connection, but a middlebox or a bug could: a
    // summary that never came, or a window never acknowledged, would stall the session for
    // ever while pings still flow. Reconnecting re-runs the exchange.
    if (!this.#gotVv && now - this.#openedAt > l.heartbeatTimeoutMs) {
      this.fail('PROTOCOL_VIOLATION', `no vv from ${this.peerId} within ${l.heartbeatTimeoutMs} ms of the handshake`)
      return
    }
    if (this.#window.inFlight > 0 && now - this.#window.lastProgressAt > l.heartbeatTimeoutMs) {
      this.#c.logger.warn(`sync: ${this.peerId} acknowledged nothing for ${now - this.#window.lastProgressAt} ms with ${this.#window.unackedBytes} bytes in flight; reconnecting`, {
        peer: this.peerId,
      })
      this.close('ACK_STALL', `no ack for ${now - this.#window.lastProgressAt} ms with ${this.#window.unackedBytes} bytes in flight`)
      return
    }
    this.#guard(() => {
      this.#pingN = (this.#pingN + 1) >>> 0
      this.#pingsSent++
      this.#send({ type: 'ping', n: this.#pingN })
    })
  }

  /** Asks the peer for its summary (and state digest when `deep`); the answer goes to `hooks.reported`. */
  probe(id: number, deep: boolean): void {
    if (this.#phase !== 'open') return
    this.#probes.add(id)
    this.#guard(() => this.#send({ type: 'probe', id, deep }))
  }

  /** Forgets a probe we gave up on (its late answer is then a violation, like any unasked report). */
  forgetProbe(id: number): void {
    this.#probes.delete(id)
  }

  /** Sends an error frame and closes. */
  fail(code: string, message: string): void {
    if (this.#phase === 'closed') return
    this.#c.logger.warn(`sync: closing session with ${this.peerId ?? 'unknown peer'}: ${code}: ${message}`, { peer: this.peerId, code })
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
    this.#batches = null
    if (this.#bootstrapping) this.#endBootstrap()
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
      if (!(err instanceof DruError)) this.#c.logger.error(`sync: internal error in session with ${this.peerId ?? '?'}`, { err })
      if (code === 'PROTOCOL_VIOLATION' || code === 'RATE_LIMITED') this.#hooks.violation?.(this, code, message)
      if (this.wasAuthenticated && this.peerId && QUARANTINE_CODES.has(code)) this.#hooks.quarantine?.(this.peerId, code, message)
      this.fail(code, message)
    }
  }

  #handle(frame: Frame): void {
    if (!frameAllowed({ phase: this.#phase, bootstrapping: this.#bootstrapping }, frame.type)) {
      throw violation(`a ${frame.type} frame is not allowed ${this.#where()}`)
    }
    if (this.#phase === 'open') {
      if (!this.#frameRate.take()) throw new DruError('RATE_LIMITED', `${this.peerId} sent frames faster than ${this.#c.limits.framesPerSecond}/s`)
      if (COSTLY_FRAMES.has(frame.type) && !this.#costlyRate.take()) {
        throw new DruError('RATE_LIMITED', `${this.peerId} sent ${frame.type} frames faster than ${this.#c.limits.costlyFramesPerSecond}/s`)
      }
    }
    switch (frame.type) {
      case 'error':
        return this.#onError(frame.code, frame.message)
      case 'hello':
        return this.#onHello(frame)
      case 'auth':
        return this.#onAuth(frame.hmac, frame.sig)
      case 'vv':
        return this.#onVv(frame)
      case 'expand':
        return void this.#send(this.#vvFrame(true))
      case 'events':
        return this.#onEvents(frame.batch)
      case 'ack':
        return this.#onAck(frame.vv)
      case 'ping':
        return void this.#send({ type: 'pong', n: frame.n })
      case 'pong':
        if (this.#pingsSent === 0 || frame.n > this.#pingN) throw violation(`pong ${frame.n} answers no ping we sent`)
        return
      case 'probe': {
        const state = frame.deep ? this.#c.describe?.() : undefined
        return void this.#send({ type: 'report', id: frame.id, summary: this.#c.log.summary(), stateDigest: state?.digest ?? null, documents: state?.documents ?? null })
      }
      case 'report':
        if (!this.#probes.delete(frame.id)) throw violation(`report ${frame.id} answers no probe we sent`)
        return this.#hooks.reported?.(this, frame)
      case 'bootstrap':
        return this.#onBootstrapRequest()
      case 'snapshot':
        return this.#onSnapshot(frame.docs)
      case 'folded':
        return this.#onFolded(frame.envelopes)
      case 'bootstrap-end':
        return this.#onBootstrapEnd()
    }
  }

  #where(): string {
    if (this.#phase === 'hello') return 'before the hello'
    if (this.#phase === 'auth') return 'before authentication'
    if (this.#phase === 'open') return this.#bootstrapping ? 'during a bootstrap' : 'outside a bootstrap we asked for'
    return 'after close'
  }

  #onError(code: string, message: string): void {
    this.#c.logger.warn(`sync: ${this.peerId ?? 'peer'} reported ${code}: ${message}`, { peer: this.peerId, code, authenticated: this.wasAuthenticated })
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
    if (hello.protocol !== PROTOCOL_VERSION) {
      throw new DruError('PROTOCOL_VERSION', `peer speaks protocol ${hello.protocol}, this DRU speaks ${PROTOCOL_VERSION}`)
    }
    if (hello.druId === this.#c.druId || !this.#c.publicKeys.has(hello.druId)) {
      throw new DruError('UNKNOWN_PEER', `DRU id ${JSON.stringify(hello.druId)} is not a member of this cluster`)
    }
    if (this.role === 'dialer' && hello.druId !== this.peerId) {
      throw new DruError('UNKNOWN_PEER', `dialed ${this.peerId} but ${hello.druId} answered`)
    }
    if (parseOrigin(hello.origin).druId !== hello.druId) {
      throw new DruError('INVALID_FRAME', `hello.origin ${hello.origin} does not belong to ${hello.druId}`)
    }
    this.peerId = hello.druId
    this.peerOrigin = hello.origin
    this.#peerNonce = hello.nonce
    this.#peerKey = hello.key!
    this.#seal = new FrameSeal({
      me: this.#c.druId,
      peer: hello.druId,
      myNonce: this.#nonce,
      peerNonce: hello.nonce,
      myKey: this.#ephemeral,
      peerKey: hello.key!,
      secret: this.#c.secret,
    })
    this.#phase = 'auth'
    const t: Transcript = {
      prover: this.#c.druId,
      verifier: hello.druId,
      proverOrigin: this.#c.log.origin,
      proverNonce: this.#nonce,
      verifierNonce: hello.nonce,
      proverKey: this.#ephemeral.publicRaw,
      verifierKey: hello.key!,
    }
    this.#send({ type: 'auth', hmac: authProof(this.#c.secret, t), sig: identityProof(this.#c.privateKey, t) })
    this.#sealOut = true
  }

  #onAuth(hmac: Uint8Array, sig: Uint8Array): void {
    this.#sealIn = true
    const t: Transcript = {
      prover: this.peerId!,
      verifier: this.#c.druId,
      proverOrigin: this.peerOrigin!,
      proverNonce: this.#peerNonce!,
      verifierNonce: this.#nonce,
      proverKey: this.#peerKey!,
      verifierKey: this.#ephemeral.publicRaw,
    }
    if (!proofMatches(authProof(this.#c.secret, t), hmac)) {
      throw new DruError('AUTH_FAILED', 'the challenge response does not prove the cluster secret')
    }
    if (!identityProofValid(this.#c.publicKeys.get(this.peerId!)!, t, sig)) {
      throw new DruError('AUTH_FAILED', `the handshake is not signed with ${this.peerId}'s key`)
    }
    this.#phase = 'open'
    this.#openedAt = this.#c.now()
    this.wasAuthenticated = true
    const admission = this.#hooks.admit?.(this) ?? { ok: true }
    if (!admission.ok) return this.fail(admission.code, admission.message)
    this.#send(this.#vvFrame(false))
  }

  #vvFrame(full: boolean): VvFrame {
    const log = this.#c.log
    const summary = log.summary()
    const base = log.base()
    const bases: Record<string, number> = {}
    for (const o of Object.keys(summary.live.vv)) if (base[o]) bases[o] = base[o].seq
    if (!full) return { type: 'vv', summary, bases, full }
    const vv: Record<string, number> = { ...summary.live.vv }
    const heads: Record<string, string> = { ...summary.live.heads }
    for (const r of log.retired()) {
      vv[r.origin] = r.seq
      heads[r.origin] = r.hash
      bases[r.origin] = r.seq
    }
    return { type: 'vv', summary: { live: { vv, heads }, retired: summary.retired }, bases, full }
  }

  /** Their summary: check it against our log (a fork shows here first), then stream what they lack. */
  #onVv(frame: VvFrame): void {
    const log = this.#c.log
    const { vv, heads } = frame.summary.live
    const ownHead = log.vv()[log.origin] ?? 0
    for (const origin of Object.keys(vv)) {
      if (!this.#c.publicKeys.has(parseOrigin(origin).druId)) throw violation(`vv names ${origin}, whose DRU is not a member`)
      const theirs = vv[origin]!
      if (origin === log.origin && theirs > ownHead) throw violation(`vv claims ${origin}#${theirs}, beyond this process's own head #${ownHead}`)
      const held = log.hashAt(origin, theirs)
      if (held !== undefined && held !== heads[origin]) {
        throw new DruError('FORK', `fork: ${origin}#${theirs} is ${heads[origin]!.slice(0, 12)}… at ${this.peerId} but ${held.slice(0, 12)}… here`, {
          details: { origin, seq: theirs },
        })
      }
    }
    // Their retired origins come as a summary: find them among ours (ours retired, or all we
    // hold besides their live ones). If neither matches they hold something we cannot name:
    // ask once for the full list, we may lack it.
    const retiredKnown = frame.full ? [] : this.#namedRetired(frame.summary)
    if (retiredKnown === undefined && !this.#expandSent) {
      this.#expandSent = true
      this.#send({ type: 'expand' })
    }
    this.theirBases = frame.bases
    this.theirRetired = frame.summary.retired
    // A vv (first, expanded or re-requested) restarts streaming from exactly what they hold.
    const known: Record<string, number> = { ...vv }
    for (const r of retiredKnown ?? []) known[r.origin] = Math.max(known[r.origin] ?? 0, r.seq)
    this.#holdings = { ...vv }
    this.#window.reset(known)
    // A bootstrap being served starts over from the new vector (staging is idempotent), so
    // the peer still gets its end; otherwise streaming restarts.
    this.#batches = this.#serving ? this.#bootstrapFrames() : null
    this.#yielded = false
    this.#gotVv = true
    this.#maybeRequestBootstrap()
    this.#sendAck(false)
    this.#pump()
  }

  /** Our origins that make up a peer's retired summary, or undefined when we cannot name them. */
  #namedRetired(theirs: LogSummary): Array<{ origin: string; seq: number; hash: string }> | undefined {
    const log = this.#c.log
    const live = theirs.live.vv
    const matches = (list: Array<{ origin: string; seq: number; hash: string }>) => {
      const r = retiredSummary(list.map((e) => [e.origin, e.seq, e.hash] as const))
      return r.count === theirs.retired.count && r.digest === theirs.retired.digest
    }
    const retired = log.retired().filter((r) => !Object.hasOwn(live, r.origin))
    if (matches(retired)) return retired
    const fp = log.fingerprint()
    const besides = Object.keys(fp.vv)
      .filter((o) => !Object.hasOwn(live, o))
      .map((o) => ({ origin: o, seq: fp.vv[o]!, hash: fp.heads[o]! }))
    return matches(besides) ? besides : undefined
  }

  /** We lack events the peer folded into snapshots: ask it for a bootstrap (one at a time). */
  #maybeRequestBootstrap(): void {
    if (this.#bootstrapping || !this.#c.snapshots) return
    const ours = this.#c.log.vv()
    const below = Object.keys(this.theirBases).some((o) => (ours[o] ?? 0) < this.theirBases[o]!)
    if (!below || this.#hooks.claimBootstrap?.(this) === false) return
    this.#bootstrapping = true
    this.#bootstrapStats = { docs: 0, events: 0 }
    this.#c.log.clearStage()
    this.#c.logger.info(`sync: ${this.peerId} compacted events this DRU lacks; asking it for a bootstrap`, { peer: this.peerId })
    this.#send({ type: 'bootstrap' })
  }

  #onEvents(batch: readonly DruEvent[]): void {
    const stored = this.#store(batch)
    if (stored === undefined) return
    this.eventsIn += batch.length
    this.duplicatesIn += stored.duplicates
  }

  /**
   * Checks and stores a batch, acknowledges it after the durable commit, and returns what
   * ingest did; undefined when it arrived past our head (SEQ_GAP: we re-send our vv once).
   */
  #store(batch: readonly DruEvent[]): { stored: number; duplicates: number } | undefined {
    const { events, tips } = checkRuns(batch, this.#c.publicKeys)
    let result
    this.#ingesting = true
    try {
      result = this.#c.log.ingest(events)
    } catch (err) {
      if (!(err instanceof DruError && err.code === 'SEQ_GAP')) throw err
      // Out of order (e.g. a stale in-flight batch): not fatal. Ask once to resend from our vector.
      if (!this.#resyncRequested) {
        this.#resyncRequested = true
        this.#c.logger.info(`sync: gap in batch from ${this.peerId}; re-requesting from our summary`, { peer: this.peerId })
        this.#send(this.#vvFrame(false))
      }
      return undefined
    } finally {
      this.#ingesting = false
    }
    this.#resyncRequested = false
    for (const [origin, tip] of tips) if ((this.#holdings[origin] ?? 0) < tip.seq) this.#holdings[origin] = tip.seq
    // Sent only after ingest's durable commit returned: this is what semi-sync counts.
    this.#sendAck(true)
    this.#pump()
    return { stored: result.stored.length, duplicates: result.duplicates }
  }

  #onAck(vv: VersionVector): void {
    const log = this.#c.log
    const ours = log.vv()
    for (const origin of Object.keys(vv)) {
      const held = ours[origin]
      if (held === undefined) throw violation(`ack names ${origin}, which this DRU does not hold`)
      if (vv[origin]! > held) throw violation(`ack claims ${origin}#${vv[origin]}, but this DRU holds only up to #${held}`)
    }
    for (const origin of Object.keys(vv)) {
      if ((this.#peerAcked[origin] ?? 0) < vv[origin]!) this.#peerAcked[origin] = vv[origin]!
      if ((this.#holdings[origin] ?? 0) < vv[origin]!) this.#holdings[origin] = vv[origin]!
    }
    this.#hooks.acked?.(this, vv)
    this.#window.acked((o) => this.#peerAcked[o] ?? 0, this.#c.now())
    this.#window.learn(vv)
    this.#pump()
  }

  /** Acks what we hold of the origins the peer holds, if it grew (or always, to free its window). */
  #sendAck(always: boolean): void {
    const ours = this.#c.log.vv()
    const delta: Record<string, number> = {}
    let any = false
    for (const [origin, theirs] of Object.entries(this.#holdings)) {
      const v = Math.min(ours[origin] ?? 0, theirs)
      if (v > (this.#acked[origin] ?? 0)) {
        delta[origin] = v
        this.#acked[origin] = v
        any = true
      }
    }
    if (any || always) this.#send({ type: 'ack', vv: delta })
  }

  // ---- bootstrap ----------------------------------------------------------------------------

  #onBootstrapRequest(): void {
    if (!this.#c.snapshots) throw new DruError('NOT_SUPPORTED', 'this DRU has no documents and cannot bootstrap a peer')
    if (this.#serving) throw violation('a second bootstrap request while one is being served')
    if (!this.#gotVv) throw violation('a bootstrap request before the vv')
    this.#serving = true
    this.#batches = this.#bootstrapFrames()
    this.#yielded = false
    this.#pump()
  }

  #onSnapshot(docs: SnapshotFrame['docs']): void {
    const snapshots = this.#c.snapshots!
    for (const { docId, bytes } of docs) this.#c.log.stageChanges(docId, snapshots.changesOf(docId, bytes))
    this.snapshotDocsIn += docs.length
    this.#bootstrapStats.docs += docs.length
    this.#sendAck(true)
  }

  #onFolded(envelopes: readonly FoldedEnvelope[]): void {
    const events = this.#c.log.rebuildFolded(envelopes)
    const last = new Map<string, number>()
    for (const e of envelopes) last.set(e.origin, Math.max(last.get(e.origin) ?? 0, e.seq))
    if (events.length === 0) {
      const ours = this.#c.log.vv()
      // Every envelope named an event we hold; anything else is a hole in the stream.
      if ([...last].some(([o, s]) => (ours[o] ?? 0) < s)) throw new DruError('SEQ_GAP', 'folded envelopes start past what this DRU holds')
      this.#sendAck(true)
      return
    }
    const stored = this.#store(events)
    if (stored === undefined) throw new DruError('SEQ_GAP', 'folded envelopes do not continue what this DRU holds')
    const ours = this.#c.log.vv()
    if ([...last].some(([o, s]) => (ours[o] ?? 0) < s)) throw new DruError('SEQ_GAP', 'folded envelopes skip events')
    this.foldedIn += events.length
    this.#bootstrapStats.events += stored.stored
  }

  #onBootstrapEnd(): void {
    const stats = this.#bootstrapStats
    this.#endBootstrap()
    this.#c.logger.info(`sync: bootstrapped from ${this.peerId}: ${stats.docs} snapshots, ${stats.events} folded events rebuilt and verified`, { peer: this.peerId })
    this.#hooks.bootstrapped?.(this, stats)
    this.#sendAck(true)
    this.#pump()
  }

  #endBootstrap(): void {
    this.#bootstrapping = false
    this.#c.log.clearStage()
    this.#hooks.releaseBootstrap?.(this)
  }

  /**
   * Bootstrap of a peer below our compaction base: every stored document snapshot (the
   * change bytes), then per origin the envelopes of the folded events it lacks, up to the
   * base, in runs ending at signed events; then the end. The peer rebuilds and verifies
   * every event; events above the base follow as usual.
   */
  *#bootstrapFrames(): Generator<Outgoing, void, undefined> {
    const log = this.#c.log
    const source = this.#c.snapshots!
    const { maxBatchBytes } = this.#c.limits
    const base = log.base()
    const known = this.#window.known
    const need = Object.keys(base)
      .filter((o) => (known[o] ?? 0) < base[o]!.seq)
      .sort()
    this.#c.logger.info(`sync: bootstrapping ${this.peerId} from document snapshots (${need.length} origins below our base)`, { peer: this.peerId })
    if (need.length > 0) {
      let after = ''
      for (;;) {
        const page = source.page(after, maxBatchBytes)
        if (page.docs.length > 0) yield { type: 'snapshot', docs: page.docs }
        if (page.next === undefined) break
        after = page.next
      }
    }
    for (const origin of need) {
      const to = base[origin]!.seq
      let from = (known[origin] ?? 0) + 1
      let run: FoldedEnvelope[] = []
      let bytes = 0
      while (from <= to) {
        const page = log.folded(origin, from, 512)
        if (page.length === 0 || page[0]!.seq !== from) {
          throw new DruError('NOT_SUPPORTED', `${origin}#${from} was compacted without the evidence a bootstrap needs (an older release); bootstrap ${this.peerId} from another peer`)
        }
        for (const env of page) {
          if (env.seq > to) break
          run.push(env)
          bytes += env.docId.length + 120
          from = env.seq + 1
          if (env.sig && (bytes >= maxBatchBytes || run.length >= MAX_EVENTS_PER_FRAME / 2)) {
            yield { type: 'folded', envelopes: run }
            run = []
            bytes = 0
          }
        }
      }
      if (run.length > 0) yield { type: 'folded', envelopes: run }
    }
    yield { type: 'bootstrap-end' }
  }

  // ---- streaming out ------------------------------------------------------------------------

  /** Sends stream frames while the unacked window has room and the peer lacks something. */
  #pump(): void {
    if (this.#phase !== 'open' || !this.#gotVv || this.#ingesting) return
    const { maxUnackedBytes } = this.#c.limits
    while (this.#window.unackedBytes < maxUnackedBytes && this.#phase === 'open') {
      if (!this.#batches) {
        if (!this.#hasWork()) return
        this.#batches = this.#signedBatches({ ...this.#window.known })
        this.#yielded = false
      }
      const next = this.#batches.next()
      if (next.done) {
        const had = this.#yielded
        this.#batches = null
        this.#serving = false
        if (!had) return
        continue
      }
      this.#yielded = true
      this.#sendWindowed(next.value)
    }
  }

  /** Something we hold that the peer neither holds nor has in flight, and can be streamed (not below our base). */
  #hasWork(): boolean {
    const ours = this.#c.log.vv()
    const base = this.#c.log.base()
    const known = this.#window.known
    for (const o of Object.keys(ours)) {
      const k = known[o] ?? 0
      if (ours[o]! > k && k >= (base[o]?.seq ?? 0)) return true
    }
    return false
  }

  #sendWindowed(frame: Outgoing): void {
    const tips = new Map<string, number>()
    if (frame.type === 'events') for (const e of frame.batch) tips.set(e.origin, e.seq)
    else if (frame.type === 'folded') for (const e of frame.envelopes) tips.set(e.origin, e.seq)
    const bytes = this.#send(frame)
    this.#window.sent(bytes, tips, this.#c.now())
  }

  /**
   * Batches of what a peer at `from` lacks, each about maxBatchBytes and at most
   * MAX_EVENTS_PER_FRAME events, cut only after an event that carries a signature so every
   * origin's run ends verifiably. Origins where the peer is below our base are skipped (it
   * asks for a bootstrap). Reads the log page by page: memory is bounded whatever the backlog.
   */
  *#signedBatches(from: VersionVector): Generator<Outgoing, void, undefined> {
    const { maxBatchBytes } = this.#c.limits
    let batch: DruEvent[] = []
    let bytes = 0
    for (const page of this.#c.log.eventsMissing(from, { maxBatchBytes, pageSize: 512, belowBase: 'skip' })) {
      for (const e of page) {
        batch.push(e)
        bytes += e.change.byteLength + 160
        if (e.sig !== undefined && (bytes >= maxBatchBytes || batch.length >= MAX_EVENTS_PER_FRAME / 2)) {
          yield { type: 'events', batch }
          batch = []
          bytes = 0
        }
      }
    }
    if (batch.length > 0) yield { type: 'events', batch }
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
    const bytes = encodeFrame(frame)
    // Never send what a peer with our limit must refuse.
    if (bytes.byteLength > maxFrameBytes) {
      throw new DruError('FRAME_TOO_LARGE', `a ${frame.type} frame of ${bytes.byteLength} bytes exceeds maxFrameBytes ${maxFrameBytes}`)
    }
    // An error before the peer is authenticated goes in the clear: it may not hold our seal key.
    const sealed = this.#sealOut && (this.#phase === 'open' || frame.type !== 'error')
    const wire = sealed ? this.#seal!.seal(bytes) : bytes
    this.bytesOut += wire.byteLength
    this.framesOut++
    this.#wire.send(wire)
    return wire.byteLength
  }
}

function violation(message: string): DruError {
  return new DruError('PROTOCOL_VIOLATION', message)
}
