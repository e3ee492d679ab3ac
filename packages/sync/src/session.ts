import type { KeyObject } from 'node:crypto'
import WebSocket from 'ws'
import { DruError, dominatesVv, parseOrigin, type DruEvent, type Fingerprint, type VersionVector } from '@dru/core'
import type { EventStore } from '@dru/store-sqlite'
import { decodeFrame, encodeFrame, PROTOCOL_VERSION, type EventsFrame, type Frame, type ReportFrame, type SnapshotEndFrame, type SnapshotFrame } from './frames.js'
import { authProof, newNonce, proofMatches } from './handshake.js'
import { verifyEventSignature } from './signatures.js'
import type { Logger } from './logger.js'

/** Error codes after which a peer is quarantined: it offered a forked or forged history. */
export const QUARANTINE_CODES: ReadonlySet<string> = new Set(['FORK', 'CHAIN_BROKEN', 'HASH_MISMATCH', 'BAD_SIGNATURE'])

export interface SessionLimits {
  readonly maxFrameBytes: number
  readonly maxBatchBytes: number
  readonly maxUnackedBytes: number
  readonly heartbeatMs: number
  readonly heartbeatTimeoutMs: number
}

/** Document snapshots for bootstrapping a DRU below our compaction base (the node passes its documents). */
export interface SnapshotSource {
  /** Stored snapshots in doc id order after `after`, about `maxBytes` long; `next` undefined at the end. */
  page(after: string, maxBytes: number): { docs: SnapshotFrame['docs']; next: string | undefined }
  /** Merges a peer's snapshots into our documents (durably, before we acknowledge). */
  merge(docs: SnapshotFrame['docs']): void
}

/** What goes out of a session's stream, inside the unacked window: event batches, or a bootstrap's snapshot frames. */
type Outgoing = EventsFrame | SnapshotFrame | SnapshotEndFrame

/** What a session needs from the node that owns it (small, so the session stays testable). */
export interface SessionHost {
  readonly store: EventStore
  readonly druId: string
  readonly secret: string
  readonly publicKeys: ReadonlyMap<string, KeyObject>
  readonly limits: SessionLimits
  readonly log: Logger
  now(): number
  quarantineReason(peerId: string): string | undefined
  /** True for a DRU removed from the cluster by `dru decommission`: its sessions are refused. */
  isDecommissioned(peerId: string): boolean
  /** Snapshots for bootstrap; undefined when this node has no documents (it can neither send nor take a bootstrap). */
  readonly snapshots: SnapshotSource | undefined
  /** We adopted a peer's compaction base after merging its snapshots. */
  bootstrapped(session: PeerSession, info: { docs: number; origins: readonly string[] }): void
  /** Called once the peer proved the secret; false means "duplicate, close this one". */
  authenticated(session: PeerSession): boolean
  acked(session: PeerSession, vv: VersionVector): void
  /** Our materialised state digest for a deep probe; undefined when this node has no documents. */
  describe(deep: boolean): { digest: string; documents: number } | undefined
  /** A peer answered one of our probes. */
  reported(session: PeerSession, report: ReportFrame): void
  quarantine(peerId: string, code: string, message: string): void
  closed(session: PeerSession, reason: { code: string; message: string }): void
}

export type SessionRole = 'dialer' | 'acceptor'
type State = 'hello' | 'auth' | 'open' | 'closed'

interface InFlight {
  readonly bytes: number
  readonly tips: ReadonlyArray<readonly [string, number]>
}

/**
 * One WebSocket connection to one peer: handshake, fingerprint exchange, streaming in
 * both directions with a bounded window of unacknowledged bytes, acks, heartbeats.
 * Every socket callback is guarded: bad input becomes an `error` frame and a close.
 */
export class PeerSession {
  readonly role: SessionRole
  readonly createdAt: number
  /** The authenticated (or, for a dialer, expected) DRU id of the other side. */
  peerId: string | undefined
  /** Their fingerprint's vector from the latest `vv` frame (a claim, never counted as an ack). */
  theirVv: VersionVector = {}
  bytesIn = 0
  bytesOut = 0
  framesIn = 0
  framesOut = 0
  /** Events received in batches, and how many of them we already held (flooding duplicates). */
  eventsIn = 0
  duplicatesIn = 0
  /** Document snapshots received (bootstrap below the peer's compaction base). */
  snapshotDocsIn = 0
  lastFrameAt: number
  wasAuthenticated = false
  closeReason: { code: string; message: string } | undefined

  readonly #host: SessionHost
  readonly #ws: WebSocket
  #state: State = 'hello'
  readonly #nonce: Uint8Array
  #peerNonce: Uint8Array | undefined
  #heartbeat: NodeJS.Timeout | undefined
  #pingN = 0
  // Streaming out: what the peer holds or has in flight, and the unacked window.
  #known: Record<string, number> = {}
  #window: InFlight[] = []
  #unacked = 0
  #batches: Generator<Outgoing, void, undefined> | null = null
  #snapshotDocsThisBootstrap = 0
  #gotVv = false
  #pumpScheduled = false
  #openedAt = 0
  #lastAckAt = 0
  #ackScheduled = false
  #ingesting = false
  #resyncRequested = false

  constructor(host: SessionHost, ws: WebSocket, role: SessionRole, expectedPeer?: string) {
    this.#host = host
    this.#ws = ws
    this.role = role
    this.peerId = expectedPeer
    this.createdAt = host.now()
    this.lastFrameAt = this.createdAt
    this.#nonce = newNonce()
    ws.binaryType = 'nodebuffer'
    ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary))
    ws.on('close', (code, reason) => this.#closed(reason.length > 0 ? reason.toString() : 'CLOSED', `socket closed (${code})`))
    ws.on('error', (err) => {
      const code = (err as { code?: string }).code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'FRAME_TOO_LARGE' : 'CONNECTION_FAILED'
      this.#closed(code, err.message)
    })
    if (ws.readyState === WebSocket.OPEN) this.#start()
    else ws.once('open', () => this.#start())
    // The heartbeat also bounds the handshake: a peer that never completes it is dropped.
    this.#heartbeat = setInterval(() => this.#tick(), Math.max(10, Math.min(host.limits.heartbeatMs, host.limits.heartbeatTimeoutMs / 2)))
    this.#heartbeat.unref()
  }

  get state(): State {
    return this.#state
  }

  get isOpen(): boolean {
    return this.#state === 'open'
  }

  get unackedBytes(): number {
    return this.#unacked
  }

  /** Sends a probe (the answer arrives through the host's `reported`). */
  probe(id: number, deep: boolean): void {
    if (this.#state === 'open') this.#guard(() => this.#send({ type: 'probe', id, deep }))
  }

  /** Asks for a streaming pass soon (coalesces many commits into one pass). */
  schedulePump(): void {
    if (this.#pumpScheduled || this.#state !== 'open') return
    this.#pumpScheduled = true
    setImmediate(() => {
      this.#pumpScheduled = false
      this.#guard(() => this.#pump())
    })
  }

  /** Acknowledges our durable vector soon (after a remote commit that came by any session). */
  scheduleAck(): void {
    if (this.#ackScheduled || this.#state !== 'open') return
    this.#ackScheduled = true
    setImmediate(() => {
      this.#ackScheduled = false
      if (this.#state === 'open') this.#guard(() => this.#send({ type: 'ack', vv: this.#host.store.vv() }))
    })
  }

  /** Sends an error frame and closes. */
  fail(code: string, message: string): void {
    if (this.#state === 'closed') return
    this.#host.log.warn(`sync: closing session with ${this.peerId ?? 'unknown peer'}: ${code}: ${message}`, { peer: this.peerId, code })
    this.#send({ type: 'error', code, message })
    this.#closed(code, message)
  }

  /** Closes without an error frame (shutdown). */
  close(code = 'CLOSED', message = 'closing'): void {
    this.#closed(code, message)
  }

  // ---- socket plumbing ------------------------------------------------------------------

  #start(): void {
    if (this.#state === 'closed') return
    this.#send({ type: 'hello', protocol: PROTOCOL_VERSION, druId: this.#host.druId, origin: this.#host.store.origin, nonce: this.#nonce })
  }

  /** Encodes and sends a frame; returns the bytes sent (0 when the socket is gone). */
  #send(frame: Frame): number {
    if (this.#ws.readyState !== WebSocket.OPEN) return 0
    // Secondary guard: our window bounds events, but a peer that never reads could still
    // pile up pongs and acks in the socket buffer.
    if (this.#ws.bufferedAmount > this.#host.limits.maxUnackedBytes * 2 + this.#host.limits.maxFrameBytes) {
      this.#closed('BACKPRESSURE', `peer is not reading (${this.#ws.bufferedAmount} bytes queued)`)
      return 0
    }
    const bytes = encodeFrame(frame)
    // Never send what a peer with our limit must refuse (a huge commit or document snapshot).
    if (bytes.byteLength > this.#host.limits.maxFrameBytes) {
      throw new DruError('FRAME_TOO_LARGE', `a ${frame.type} frame of ${bytes.byteLength} bytes exceeds maxFrameBytes ${this.#host.limits.maxFrameBytes}`)
    }
    this.bytesOut += bytes.byteLength
    this.framesOut++
    this.#ws.send(bytes)
    return bytes.byteLength
  }

  #onMessage(data: WebSocket.RawData, isBinary: boolean): void {
    if (this.#state === 'closed') return
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data)
    this.bytesIn += bytes.byteLength
    this.framesIn++
    this.lastFrameAt = this.#host.now()
    this.#guard(() => {
      if (!isBinary) throw new DruError('MALFORMED', 'text frames are not part of the protocol; frames are binary msgpack')
      this.#handle(decodeFrame(bytes, this.#host.limits.maxFrameBytes))
    })
  }

  /** Runs `fn`; whatever it throws becomes an error frame and a close, never a crash. */
  #guard(fn: () => void): void {
    try {
      fn()
    } catch (err) {
      const code = err instanceof DruError ? err.code : 'INTERNAL'
      const message = err instanceof Error ? err.message : String(err)
      if (!(err instanceof DruError)) this.#host.log.error(`sync: internal error in session with ${this.peerId ?? '?'}`, { err })
      if (this.wasAuthenticated && this.peerId && QUARANTINE_CODES.has(code)) this.#host.quarantine(this.peerId, code, message)
      this.fail(code, message)
    }
  }

  #tick(): void {
    if (this.#state === 'closed') return
    const silent = this.#host.now() - this.lastFrameAt
    if (silent > this.#host.limits.heartbeatTimeoutMs) {
      this.#host.log.warn(`sync: no frame from ${this.peerId ?? '?'} for ${silent} ms; dropping the connection`, { peer: this.peerId })
      this.#closed('HEARTBEAT_TIMEOUT', `no frame for ${silent} ms`)
      return
    }
    // TCP never loses bytes inside a live connection, but a middlebox or a bug could: a
    // fingerprint that never came, or a window that is never acknowledged, would stall the
    // session for ever while pings still flow. Reconnecting re-runs the exchange.
    const { heartbeatTimeoutMs } = this.#host.limits
    const now = this.#host.now()
    if (this.#state === 'open' && !this.#gotVv && now - this.#openedAt > heartbeatTimeoutMs) {
      this.fail('UNEXPECTED_FRAME', `no fingerprint from ${this.peerId} within ${heartbeatTimeoutMs} ms of the handshake`)
      return
    }
    if (this.#window.length > 0 && now - this.#lastAckAt > heartbeatTimeoutMs) {
      this.#host.log.warn(`sync: ${this.peerId} acknowledged nothing for ${now - this.#lastAckAt} ms with ${this.#unacked} bytes in flight; reconnecting`, { peer: this.peerId })
      this.#closed('ACK_STALL', `no ack for ${now - this.#lastAckAt} ms with ${this.#unacked} bytes in flight`)
      return
    }
    if (this.#state === 'open') this.#send({ type: 'ping', n: this.#pingN++ & 0xffffffff })
  }

  #closed(code: string, message: string): void {
    if (this.#state === 'closed') return
    this.#state = 'closed'
    this.closeReason = { code, message }
    clearInterval(this.#heartbeat)
    this.#batches = null
    try {
      if (this.#ws.readyState === WebSocket.OPEN || this.#ws.readyState === WebSocket.CONNECTING) {
        if (this.#ws.readyState === WebSocket.OPEN) this.#ws.close(4000, code)
        else this.#ws.terminate()
        // A peer that never answers the close handshake (blackholed) must not pin the socket.
        setTimeout(() => this.#ws.terminate(), 1000).unref()
      }
    } catch {
      this.#ws.terminate()
    }
    this.#host.closed(this, { code, message })
  }

  // ---- protocol -------------------------------------------------------------------------

  #handle(frame: Frame): void {
    if (frame.type === 'error') {
      this.#host.log.warn(`sync: ${this.peerId ?? 'peer'} reported ${frame.code}: ${frame.message}`, { peer: this.peerId, code: frame.code })
      // A peer that saw a fork or forgery from us will refuse us; stop dialing it too.
      if (this.peerId && frame.code === 'DECOMMISSIONED') {
        // The peer removed us from its cluster: dialing it again cannot succeed.
        this.#host.quarantine(this.peerId, frame.code, `peer reported: ${frame.message}`)
      } else if (this.wasAuthenticated && this.peerId && (QUARANTINE_CODES.has(frame.code) || frame.code === 'QUARANTINED')) {
        this.#host.quarantine(this.peerId, frame.code, `peer reported: ${frame.message}`)
      }
      this.#closed(frame.code, `peer reported: ${frame.message}`)
      return
    }
    switch (this.#state) {
      case 'hello':
        if (frame.type !== 'hello') throw unexpected(frame.type, 'hello')
        return this.#onHello(frame)
      case 'auth':
        if (frame.type !== 'auth') throw unexpected(frame.type, 'auth')
        return this.#onAuth(frame.hmac)
      case 'open':
        switch (frame.type) {
          case 'ping':
            return void this.#send({ type: 'pong', n: frame.n })
          case 'pong':
            return
          case 'vv':
            return this.#onVv(frame.fingerprint)
          case 'events':
            return this.#onEvents(frame.batch)
          case 'ack':
            return this.#onAck(frame.vv)
          case 'probe': {
            const state = frame.deep ? this.#host.describe(true) : undefined
            return void this.#send({
              type: 'report',
              id: frame.id,
              fingerprint: this.#host.store.fingerprint(),
              stateDigest: state?.digest ?? null,
              documents: state?.documents ?? null,
            })
          }
          case 'report':
            return this.#host.reported(this, frame)
          case 'snapshot':
            return this.#onSnapshot(frame.docs)
          case 'snapshot-end':
            return this.#onSnapshotEnd(frame.base)
          default:
            throw unexpected(frame.type, 'vv, events, ack, probe, report, snapshot, snapshot-end, ping or pong')
        }
      case 'closed':
        return
    }
  }

  #onHello(hello: Extract<Frame, { type: 'hello' }>): void {
    if (hello.protocol !== PROTOCOL_VERSION) {
      throw new DruError('PROTOCOL_VERSION', `peer speaks protocol ${hello.protocol}, this DRU speaks ${PROTOCOL_VERSION}`)
    }
    if (hello.druId === this.#host.druId || !this.#host.publicKeys.has(hello.druId)) {
      throw new DruError('UNKNOWN_PEER', `DRU id ${JSON.stringify(hello.druId)} is not a member of this cluster`)
    }
    if (this.role === 'dialer' && hello.druId !== this.peerId) {
      throw new DruError('UNKNOWN_PEER', `dialed ${this.peerId} but ${hello.druId} answered`)
    }
    if (parseOrigin(hello.origin).druId !== hello.druId) {
      throw new DruError('INVALID_FRAME', `hello.origin ${hello.origin} does not belong to ${hello.druId}`)
    }
    if (this.#host.isDecommissioned(hello.druId)) {
      throw new DruError('DECOMMISSIONED', `${hello.druId} was decommissioned from this cluster; give a returning region a new DRU id`)
    }
    const reason = this.#host.quarantineReason(hello.druId)
    if (reason !== undefined) throw new DruError('QUARANTINED', `${hello.druId} is quarantined (${reason}); an operator must lift it`)
    this.peerId = hello.druId
    this.#peerNonce = hello.nonce
    this.#state = 'auth'
    this.#send({ type: 'auth', hmac: authProof(this.#host.secret, this.#host.druId, hello.druId, this.#nonce, hello.nonce) })
  }

  #onAuth(hmac: Uint8Array): void {
    const expected = authProof(this.#host.secret, this.peerId!, this.#host.druId, this.#peerNonce!, this.#nonce)
    if (!proofMatches(expected, hmac)) {
      throw new DruError('AUTH_FAILED', 'the challenge response does not prove the cluster secret')
    }
    this.#state = 'open'
    this.#openedAt = this.#host.now()
    this.wasAuthenticated = true
    if (!this.#host.authenticated(this)) return
    const fingerprint = this.#host.store.fingerprint()
    this.#send({ type: 'vv', fingerprint })
    // The store's vector names only events whose commit has returned, so it may be acked
    // as durable now: a peer that got our events by another path counts toward acks: k.
    this.#send({ type: 'ack', vv: fingerprint.vv })
  }

  /** Their fingerprint: check it against our log (a fork shows here first), then stream what they lack. */
  #onVv(fp: Fingerprint): void {
    const store = this.#host.store
    const bases = store.base()
    for (const origin of Object.keys(fp.vv)) {
      const theirs = fp.vv[origin]!
      const mine = store.head(origin)
      if (!mine || theirs > mine.seq) continue
      const base = bases[origin]
      // Below our compaction base only the base's own hash is still known.
      const held = theirs === mine.seq ? mine.hash : theirs === base?.seq ? base.hash : store.getEvent(origin, theirs)?.hash
      if (held !== undefined && held !== fp.heads[origin]) {
        throw new DruError('FORK', `fork: ${origin}#${theirs} is ${fp.heads[origin]!.slice(0, 12)}… at ${this.peerId} but ${held.slice(0, 12)}… here`, {
          details: { origin, seq: theirs },
        })
      }
    }
    this.theirVv = fp.vv
    // A vv frame (first or re-requested) restarts streaming from exactly what they hold.
    this.#known = { ...fp.vv }
    this.#window = []
    this.#unacked = 0
    this.#batches = null
    this.#gotVv = true
    this.#pump()
  }

  #onEvents(batch: readonly DruEvent[]): void {
    // Per origin the run must be consecutive and ascending; the last event must carry a
    // valid signature of that origin (it vouches, through the hash chain, for the run).
    const tips = new Map<string, DruEvent>()
    for (const e of batch) {
      const last = tips.get(e.origin)
      if (last !== undefined && e.seq !== last.seq + 1) {
        throw new DruError('OUT_OF_ORDER', `${e.origin}#${e.seq} follows #${last.seq} in one batch`, { details: { origin: e.origin, seq: e.seq } })
      }
      tips.set(e.origin, e)
    }
    for (const [origin, tip] of tips) {
      const druId = parseOrigin(origin).druId
      const key = this.#host.publicKeys.get(druId)
      if (!key) throw new DruError('UNKNOWN_ORIGIN', `no public key is configured for ${druId}; its events are refused`, { details: { origin } })
      if (tip.sig === undefined) {
        throw new DruError('BAD_SIGNATURE', `the run of ${origin} ends at #${tip.seq} without a signature`, { details: { origin, seq: tip.seq } })
      }
      if (!verifyEventSignature(tip.hash, tip.sig, key)) {
        throw new DruError('BAD_SIGNATURE', `${origin}#${tip.seq} is not signed by ${druId}`, { details: { origin, seq: tip.seq } })
      }
    }
    // Only verified signatures are stored (so anything we forward later is sound).
    const events = batch.map((e) => (e.sig === undefined || tips.get(e.origin) === e ? e : stripSig(e)))
    let ok = false
    this.#ingesting = true
    try {
      const result = this.#host.store.ingest(events)
      this.eventsIn += events.length
      this.duplicatesIn += result.duplicates
      ok = true
    } catch (err) {
      if (!(err instanceof DruError && err.code === 'SEQ_GAP')) throw err
      // Out of order (e.g. a stale in-flight batch): not fatal. Ask once to resend from our vector.
      if (!this.#resyncRequested) {
        this.#resyncRequested = true
        this.#host.log.info(`sync: gap in batch from ${this.peerId}; re-requesting from our version vector`, { peer: this.peerId })
        this.#send({ type: 'vv', fingerprint: this.#host.store.fingerprint() })
      }
    } finally {
      this.#ingesting = false
    }
    if (!ok) return
    this.#resyncRequested = false
    for (const [origin, tip] of tips) if ((this.#known[origin] ?? 0) < tip.seq) this.#known[origin] = tip.seq
    // Sent only after ingest's durable commit returned: this is what semi-sync counts.
    this.#send({ type: 'ack', vv: this.#host.store.vv() })
    this.schedulePump()
  }

  /** Snapshots from a peer whose compaction base is above what we hold: merge, then acknowledge (frees its window). */
  #onSnapshot(docs: SnapshotFrame['docs']): void {
    const sink = this.#host.snapshots
    if (!sink) throw new DruError('NOT_SUPPORTED', 'this DRU has no documents and cannot be bootstrapped from snapshots')
    this.#ingesting = true
    try {
      sink.merge(docs)
    } finally {
      this.#ingesting = false
    }
    this.snapshotDocsIn += docs.length
    this.#snapshotDocsThisBootstrap += docs.length
    this.#send({ type: 'ack', vv: this.#host.store.vv() })
  }

  /** End of a bootstrap: adopt the peer's base as our heads (FORK if it contradicts our log), so its events link on. */
  #onSnapshotEnd(base: SnapshotEndFrame['base']): void {
    if (!this.#host.snapshots) throw new DruError('NOT_SUPPORTED', 'this DRU has no documents and cannot be bootstrapped from snapshots')
    for (const origin of Object.keys(base)) {
      const druId = parseOrigin(origin).druId
      if (!this.#host.publicKeys.has(druId)) throw new DruError('UNKNOWN_ORIGIN', `no public key is configured for ${druId}; its base is refused`, { details: { origin } })
    }
    const origins = this.#host.store.adoptBase(base)
    this.#host.bootstrapped(this, { docs: this.#snapshotDocsThisBootstrap, origins })
    this.#snapshotDocsThisBootstrap = 0
    this.#send({ type: 'ack', vv: this.#host.store.vv() })
    this.schedulePump()
  }

  #onAck(vv: VersionVector): void {
    this.#lastAckAt = this.#host.now()
    this.#host.acked(this, vv)
    // An ack carries the receiver's whole durable vector, so it covers every batch it has stored.
    const covered = (tips: InFlight['tips']) => tips.every(([o, s]) => (vv[o] ?? 0) >= s)
    let i = 0
    while (i < this.#window.length && covered(this.#window[i]!.tips)) {
      this.#unacked -= this.#window[i]!.bytes
      i++
    }
    if (i > 0) this.#window.splice(0, i)
    for (const o of Object.keys(vv)) if ((this.#known[o] ?? 0) < vv[o]!) this.#known[o] = vv[o]!
    this.#pump()
  }

  // ---- streaming out --------------------------------------------------------------------

  /** Sends batches while the unacked window has room and there is something they lack. */
  #pump(): void {
    if (this.#state !== 'open' || !this.#gotVv || this.#ingesting) return
    const { maxUnackedBytes } = this.#host.limits
    while (this.#unacked < maxUnackedBytes && this.#ws.readyState === WebSocket.OPEN) {
      if (!this.#batches) {
        if (dominatesVv(this.#known, this.#host.store.vv())) return
        this.#batches = this.#belowBase() ? this.#bootstrap() : this.#signedBatches({ ...this.#known })
      }
      const next = this.#batches.next()
      if (next.done) {
        this.#batches = null
        continue
      }
      this.#sendWindowed(next.value)
    }
  }

  /** True when the peer lacks events we compacted away: it must be bootstrapped from snapshots first. */
  #belowBase(): boolean {
    const base = this.#host.store.baseVv()
    return Object.keys(base).some((o) => (this.#known[o] ?? 0) < base[o]!)
  }

  /**
   * Bootstrap of a peer below our compaction base: every stored document snapshot, in
   * byte-bounded frames, then the base (captured first: a compaction meanwhile only makes
   * the next pass bootstrap again). Events above the base follow as usual.
   */
  *#bootstrap(): Generator<Outgoing, void, undefined> {
    const source = this.#host.snapshots
    if (!source) throw new DruError('NOT_SUPPORTED', `${this.peerId} is below our compaction base but this DRU has no documents to bootstrap it from`)
    const base = this.#host.store.base()
    this.#host.log.info(`sync: ${this.peerId} is below our compaction base; bootstrapping it from document snapshots`, { peer: this.peerId })
    let after = ''
    for (;;) {
      const page = source.page(after, this.#host.limits.maxBatchBytes)
      if (page.docs.length > 0) yield { type: 'snapshot', docs: page.docs }
      if (page.next === undefined) break
      after = page.next
    }
    yield { type: 'snapshot-end', base }
  }

  /**
   * Sends a stream frame that stays in the unacked window until an ack covers its tips:
   * per origin the last seq of an events batch, the base of a snapshot-end, none for
   * snapshots (any ack frees them: the receiver acks after merging each one).
   */
  #sendWindowed(frame: Outgoing): void {
    const tips = new Map<string, number>()
    if (frame.type === 'events') for (const e of frame.batch) tips.set(e.origin, e.seq)
    else if (frame.type === 'snapshot-end') for (const [o, b] of Object.entries(frame.base)) tips.set(o, b.seq)
    const bytes = this.#send(frame)
    for (const [o, s] of tips) if ((this.#known[o] ?? 0) < s) this.#known[o] = s
    if (this.#window.length === 0) this.#lastAckAt = this.#host.now()
    this.#window.push({ bytes, tips: [...tips] })
    this.#unacked += bytes
  }


  /**
   * Batches of what a peer with vector `from` lacks, each about maxBatchBytes, cut only
   * after an event that carries a signature so every origin's run ends verifiably.
   * Reads the log page by page: memory is bounded whatever the backlog.
   */
  *#signedBatches(from: VersionVector): Generator<Outgoing, void, undefined> {
    const { maxBatchBytes } = this.#host.limits
    let batch: DruEvent[] = []
    let bytes = 0
    for (const page of this.#host.store.eventsMissing(from, { maxBatchBytes, pageSize: 512 })) {
      for (const e of page) {
        batch.push(e)
        bytes += e.change.byteLength + 160
        if (bytes >= maxBatchBytes && e.sig !== undefined) {
          yield { type: 'events', batch }
          batch = []
          bytes = 0
        }
      }
    }
    if (batch.length > 0) yield { type: 'events', batch }
  }
}

function stripSig(e: DruEvent): DruEvent {
  return { origin: e.origin, seq: e.seq, hlc: e.hlc, docId: e.docId, change: e.change, prev: e.prev, hash: e.hash }
}

function unexpected(got: string, wanted: string): DruError {
  return new DruError('UNEXPECTED_FRAME', `got a ${got} frame where ${wanted} was expected`)
}
