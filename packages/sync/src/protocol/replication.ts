import {
  DruError,
  parseOrigin,
  type DruEvent,
  type FoldedEnvelope,
  type LogSummary,
  type VersionVector,
} from '@dru/core'
import type { Frame, SnapshotFrame, VvFrame } from '../frames.js'
import { FORWARD_GRACE_HEARTBEATS, MAX_ORIGINS } from '../limits.js'
import { AckLedger } from './ack-ledger.js'
import { checkRuns } from './batch-check.js'
import { bootstrapFrames, signedBatches, type Outgoing } from './outbound-frames.js'
import type { PeerProtocol } from './peer-protocol.js'
import { SendWindow } from './send-window.js'
import type { ProtocolConfig, ProtocolHooks } from './session-config.js'
import { violation } from './session-rules.js'
import { checkPeerSummary, namedRetired, vvFrame } from './summary-exchange.js'

/**
 * The open phase of one {@link PeerProtocol}: what the two sides exchange once the peer has
 * proven itself. The summary exchange, streaming what the peer lacks inside the send
 * window, storing and acknowledging what it sends (one ack per durable commit), and
 * bootstraps in both directions. The session owns the phase, the seal and the wire; this
 * sends through it and reports through the session's hooks.
 */
export class Replication {
  /** Events received in batches, and how many of them we already held. */
  eventsIn = 0
  duplicatesIn = 0
  /** Document snapshots and folded events received in bootstraps. */
  snapshotDocsIn = 0
  foldedIn = 0
  /** The peer's compaction base per origin, from its latest vv. */
  theirBases: VersionVector = {}
  /** The peer's retired summary, from its latest vv. */
  theirRetired: LogSummary['retired'] | undefined
  /**
   * The origins the peer receives by another session (its latest routes frame), with how
   * far it holds each: held back from it while that copy keeps up (see {@link #heldBack}).
   */
  theirRoutes: VersionVector = {}
  /** The DRUs the peer has sessions with (its latest routes frame), besides us. */
  theirNeighbours: ReadonlySet<string> = new Set()

  readonly window = new SendWindow()
  readonly acks = new AckLedger()
  readonly #session: PeerProtocol
  readonly #c: ProtocolConfig
  readonly #hooks: ProtocolHooks
  readonly #send: (frame: Frame) => number
  #batches: Generator<Outgoing, void, undefined> | null = null
  #yielded = false
  #gotVv = false
  #expandSent = false
  #ingesting = false
  #resyncRequested = false
  #bootstrapping = false
  #bootstrapStats = { docs: 0, events: 0 }
  #serving = false
  /** Per held-back origin: since when we hold more of it than the peer's copy, with no advance. */
  readonly #lagging = new Map<string, number>()
  /**
   * The routes we last announced (as text: origins, then neighbours), so only a change is sent;
   * none while we have no other session (a pair of DRUs in sync reconnects without one).
   */
  #routesSent = ';'
  /** When the peer's first vv arrived (ms). */
  #firstVvAt = 0

  constructor(session: PeerProtocol, config: ProtocolConfig, hooks: ProtocolHooks, send: (frame: Frame) => number) {
    this.#session = session
    this.#c = config
    this.#hooks = hooks
    this.#send = send
  }

  /** True once the peer's first vv arrived (nothing is streamed or acked before). */
  get gotVv(): boolean {
    return this.#gotVv
  }

  /** True while we are being bootstrapped by this peer (we asked it to). */
  get bootstrapping(): boolean {
    return this.#bootstrapping
  }

  /** The session closed: stop streaming, give the bootstrap slot back, free the origins it supplied. */
  closed(): void {
    this.#batches = null
    this.#c.routes?.closed(this.#session)
    if (this.#bootstrapping) this.#endBootstrap()
  }

  /** Acknowledges what grew since our last ack (after a commit that came by another session). */
  ackNow(): void {
    // The session that is storing a batch acks right after its commit; do not ack twice.
    if (!this.#session.isOpen || this.#ingesting || !this.#gotVv) return
    this.#sendAck(false)
  }

  /**
   * Idle, and holding events the peer may not know we hold while we do not know it holds
   * them (see {@link AckLedger.untold}): time to ask for its summary. Never while our own
   * stream is in flight or a bootstrap runs: those settle it themselves.
   */
  untold(): boolean {
    if (!this.#gotVv || this.window.inFlight > 0 || this.#bootstrapping || this.#serving) return false
    return this.acks.untold(this.#c.log.summary().live.vv)
  }

  /** The answer to our refresh probe: learn what the peer holds now, and ack what that lets us. */
  onHoldingsReport(vv: VersionVector): void {
    this.acks.learnHoldings(vv, this.#c.log.vv(), this.#c.log.origin)
    this.#sendAck(false)
    this.pump()
  }

  // ---- the summary exchange ---------------------------------------------------------------

  /** Their summary: check it against our log (a fork shows here first), then stream what they lack. */
  onVv(frame: VvFrame): void {
    checkPeerSummary(this.#c.log, this.#c.publicKeys, frame, this.#session.peerId)
    const { vv } = frame.summary.live
    // Their retired origins come as a summary: find them among ours (ours retired, or all we
    // hold besides their live ones). If neither matches they hold something we cannot name:
    // ask once for the full list, we may lack it.
    const retiredKnown = frame.full ? [] : namedRetired(this.#c.log, frame.summary)
    if (retiredKnown === undefined && !this.#expandSent) {
      this.#expandSent = true
      this.#send({ type: 'expand' })
    }
    this.theirBases = frame.bases
    this.theirRetired = frame.summary.retired
    // A vv (first, expanded or re-requested) restarts streaming from exactly what they hold.
    const known: Record<string, number> = { ...vv }
    for (const r of retiredKnown ?? []) known[r.origin] = Math.max(known[r.origin] ?? 0, r.seq)
    this.acks.resetHoldings(
      vv,
      (retiredKnown ?? []).map((r) => r.origin),
    )
    this.window.reset(known)
    // A bootstrap being served starts over from the new vector (staging is idempotent), so
    // the peer still gets its end; otherwise streaming restarts.
    this.#batches = this.#serving ? this.#bootstrapFrames() : null
    this.#yielded = false
    if (!this.#gotVv) this.#firstVvAt = this.#c.now()
    this.#gotVv = true
    this.#maybeRequestBootstrap()
    this.#sendAck(false)
    this.announceRoutes()
    this.pump()
  }

  // ---- receiving ------------------------------------------------------------------------

  onEvents(batch: readonly DruEvent[]): void {
    const stored = this.#store(batch)
    if (stored === undefined) return
    this.eventsIn += batch.length
    this.duplicatesIn += stored.duplicates
    this.#hooks.received?.(this.#session, batch.length, stored.duplicates)
  }

  // ---- forwarding -------------------------------------------------------------------------

  /**
   * The peer's routes: origins it receives by another session, and how far it holds them. A
   * claim about itself only: it can make us send *it* less (as a vv can), for a bounded time
   * while the copy it names stops advancing; what we send anyone else does not depend on it.
   */
  onRoutes(vv: VersionVector, neighbours: readonly string[]): void {
    const own = this.#c.log.origin
    const next: Record<string, number> = {}
    for (const [origin, seq] of Object.entries(vv)) {
      if (!this.#c.publicKeys.has(parseOrigin(origin).druId))
        throw violation(`routes names ${origin}, whose DRU is not a member`)
      // Our own current origin comes from us alone: never held back.
      if (origin === own) continue
      // Advanced (or newly named): its wait for the other path starts over.
      if (seq > (this.theirRoutes[origin] ?? -1)) this.#lagging.delete(origin)
      next[origin] = seq
    }
    for (const origin of this.#lagging.keys()) if (!Object.hasOwn(next, origin)) this.#lagging.delete(origin)
    this.theirRoutes = next
    this.theirNeighbours = new Set(neighbours)
    // What it says it holds, it holds (as in its vv): never sent again.
    this.window.learn(next)
    // Streaming restarts from the window's view (nothing in flight is sent twice), so an
    // origin now routed elsewhere stops and one no longer routed is picked up.
    if (!this.#serving) this.#batches = null
    this.pump()
  }

  /** Our supplier choices changed: tell the peer what it need not send us, if that changed. */
  announceRoutes(): void {
    const book = this.#c.routes
    if (!book || !this.#session.isOpen || !this.#gotVv) return
    const vv = book.elsewhere(this.#session, this.#c.log.vv())
    const origins = Object.keys(vv).sort().slice(0, MAX_ORIGINS)
    const neighbours = book.neighbours(this.#session).sort().slice(0, MAX_ORIGINS)
    const text = `${origins.map((o) => `${o}:${vv[o]}`).join(',')};${neighbours.join(',')}`
    if (text === this.#routesSent) return
    this.#routesSent = text
    this.#send({ type: 'routes', vv: Object.fromEntries(origins.map((o) => [o, vv[o]!])), neighbours })
  }

  /**
   * True while we hold events back from the peer that it may still need (waiting for its
   * other path to show progress, within the grace): the stream is not finished yet.
   */
  get holdingBack(): boolean {
    if (!this.#session.isOpen || !this.#gotVv) return false
    return this.#heldBack(this.#c.log.vv()).size > 0
  }

  /** Every heartbeat: announce how far we got on the origins routed elsewhere, and forward what waited too long. */
  tick(): void {
    this.announceRoutes()
    this.pump()
  }

  /**
   * Origins not to send the peer now: those it receives by another session, while that copy
   * keeps up — we hold no more than it announced, or we do and it has not stopped advancing
   * for {@link FORWARD_GRACE_HEARTBEATS} of our heartbeats. Past that we forward: a slow or
   * dead path, or a false claim, costs a bounded delay, never an event.
   */
  #heldBack(ours: VersionVector): Set<string> {
    const held = new Set<string>()
    const now = this.#c.now()
    const grace = FORWARD_GRACE_HEARTBEATS * this.#c.limits.heartbeatMs
    const known = this.window.known
    // For one heartbeat after its vv we do not know yet what the peer gets elsewhere (its other
    // sessions may be opening at the same moment, as after a heal, and its routes follow):
    // every third party's origin waits, within the grace.
    const settling = now - this.#firstVvAt < this.#c.limits.heartbeatMs
    const waiting = new Set(Object.keys(this.theirRoutes))
    // An origin that a neighbour of the peer brought us, that neighbour brings the peer too
    // (split horizon): forwarding it would race that path, so it waits like a routed one.
    const book = this.#c.routes
    for (const o of Object.keys(ours)) {
      if (!this.#thirdParty(o)) continue
      const from = book?.suppliedBy(o)
      if (settling || (from !== undefined && this.theirNeighbours.has(from))) waiting.add(o)
    }
    for (const origin of waiting) {
      if ((ours[origin] ?? 0) <= (known[origin] ?? 0)) {
        this.#lagging.delete(origin)
        continue
      }
      const since = this.#lagging.get(origin)
      if (since === undefined) this.#lagging.set(origin, now)
      if (now - (since ?? now) < grace) held.add(origin)
    }
    return held
  }

  /** An origin written neither by us nor by the peer (under any incarnation). */
  #thirdParty(origin: string): boolean {
    const writer = parseOrigin(origin).druId
    return writer !== this.#c.druId && writer !== this.#session.peerId
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
        this.#c.logger.info(`sync: gap in batch from ${this.#session.peerId}; re-requesting from our summary`, {
          peer: this.#session.peerId,
        })
        this.#send(vvFrame(this.#c.log, false))
      }
      return undefined
    } finally {
      this.#ingesting = false
    }
    this.#resyncRequested = false
    for (const [origin, tip] of tips) this.acks.raise(origin, tip.seq)
    // What it sent, it holds: frees our frames of the same events (we never ack them back),
    // and is never echoed back to it.
    const sent = Object.fromEntries([...tips].map(([origin, tip]) => [origin, tip.seq]))
    this.window.acked((o) => this.acks.heldBy(o), this.#c.now(), { onlyTipped: true })
    this.window.learn(sent)
    this.#hooks.holds?.(this.#session, sent)
    if (result.stored.length > 0) this.#c.routes?.delivered(this.#session, new Set(result.stored.map((e) => e.origin)))
    // Sent only after ingest's durable commit returned: this is what semi-sync counts.
    this.#sendAck(true)
    this.pump()
    return { stored: result.stored.length, duplicates: result.duplicates }
  }

  // ---- acks -------------------------------------------------------------------------------

  onAck(vv: VersionVector): void {
    this.acks.peerAcked(this.#c.log.vv(), vv)
    this.#hooks.acked?.(this.#session, vv)
    this.window.acked((o) => this.acks.ackedBy(o), this.#c.now())
    this.window.learn(vv)
    // Their ack may name events they got by another path that we hold too: say we hold them,
    // or they never learn it and stay catching-up (nothing else prompts an ack from us).
    this.#sendAck(false)
    this.pump()
  }

  /** Acks what we hold of the origins the peer holds, if it grew (or always, to free its window). */
  #sendAck(always: boolean): void {
    const delta = this.acks.grown(this.#c.log.vv())
    if (delta || always) this.#send({ type: 'ack', vv: delta ?? {} })
  }

  // ---- bootstraps -------------------------------------------------------------------------

  /** We lack events the peer folded into snapshots: ask it for a bootstrap (one at a time). */
  #maybeRequestBootstrap(): void {
    if (this.#bootstrapping || !this.#c.snapshots) return
    const ours = this.#c.log.vv()
    const below = Object.keys(this.theirBases).some((o) => (ours[o] ?? 0) < this.theirBases[o]!)
    if (!below || this.#hooks.claimBootstrap?.(this.#session) === false) return
    this.#bootstrapping = true
    this.#bootstrapStats = { docs: 0, events: 0 }
    this.#c.log.clearStage()
    this.#c.logger.info(`sync: ${this.#session.peerId} compacted events this DRU lacks; asking it for a bootstrap`, {
      peer: this.#session.peerId,
    })
    this.#send({ type: 'bootstrap' })
  }

  onBootstrapRequest(): void {
    if (!this.#c.snapshots) throw new DruError('NOT_SUPPORTED', 'this DRU has no documents and cannot bootstrap a peer')
    if (this.#serving) throw violation('a second bootstrap request while one is being served')
    if (!this.#gotVv) throw violation('a bootstrap request before the vv')
    this.#serving = true
    this.#batches = this.#bootstrapFrames()
    this.#yielded = false
    this.pump()
  }

  onSnapshot(docs: SnapshotFrame['docs']): void {
    const snapshots = this.#c.snapshots!
    for (const { docId, bytes } of docs) this.#c.log.stageChanges(docId, snapshots.changesOf(docId, bytes))
    this.snapshotDocsIn += docs.length
    this.#bootstrapStats.docs += docs.length
    this.#sendAck(true)
  }

  onFolded(envelopes: readonly FoldedEnvelope[]): void {
    const events = this.#c.log.rebuildFolded(envelopes)
    const last = new Map<string, number>()
    for (const e of envelopes) last.set(e.origin, Math.max(last.get(e.origin) ?? 0, e.seq))
    if (events.length === 0) {
      const ours = this.#c.log.vv()
      // Every envelope named an event we hold; anything else is a hole in the stream.
      if ([...last].some(([o, s]) => (ours[o] ?? 0) < s))
        throw new DruError('SEQ_GAP', 'folded envelopes start past what this DRU holds')
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

  onBootstrapEnd(): void {
    const stats = this.#bootstrapStats
    const peerId = this.#session.peerId
    this.#endBootstrap()
    this.#c.logger.info(
      `sync: bootstrapped from ${peerId}: ${stats.docs} snapshots, ${stats.events} folded events rebuilt and verified`,
      { peer: peerId },
    )
    this.#hooks.bootstrapped?.(this.#session, stats)
    this.#sendAck(true)
    this.pump()
  }

  #endBootstrap(): void {
    this.#bootstrapping = false
    this.#c.log.clearStage()
    this.#hooks.releaseBootstrap?.(this.#session)
  }

  #bootstrapFrames(): Generator<Outgoing, void, undefined> {
    return bootstrapFrames({
      log: this.#c.log,
      snapshots: this.#c.snapshots!,
      maxBatchBytes: this.#c.limits.maxBatchBytes,
      known: () => this.window.known,
      peerId: this.#session.peerId,
      logger: this.#c.logger,
    })
  }

  // ---- streaming out ----------------------------------------------------------------------

  /** Sends stream frames while the unacked window has room and the peer lacks something. */
  pump(): void {
    if (!this.#session.isOpen || !this.#gotVv || this.#ingesting) return
    const { maxUnackedBytes } = this.#c.limits
    while (this.window.unackedBytes < maxUnackedBytes && this.#session.isOpen) {
      if (!this.#batches) {
        const ours = this.#c.log.vv()
        const held = this.#heldBack(ours)
        if (!this.#hasWork(ours, held)) return
        // Held-back origins count as held by the peer for this stream.
        const from: Record<string, number> = { ...this.window.known }
        for (const o of held) from[o] = Math.max(from[o] ?? 0, ours[o] ?? 0)
        this.#batches = signedBatches(this.#c.log, from, this.#c.limits.maxBatchBytes)
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

  /** Something we hold that the peer neither holds, has in flight nor gets elsewhere, and can be streamed (not below our base). */
  #hasWork(ours: VersionVector, held: ReadonlySet<string>): boolean {
    const base = this.#c.log.base()
    const known = this.window.known
    // Tests only: the planted off-by-one (see ProtocolPlant).
    const slack = this.#c.plant === 'lack-off-by-one' ? 1 : 0
    for (const o of Object.keys(ours)) {
      if (held.has(o)) continue
      const k = known[o] ?? 0
      if (ours[o]! > k + slack && k >= (base[o]?.seq ?? 0)) return true
    }
    return false
  }

  #sendWindowed(frame: Outgoing): void {
    const tips = new Map<string, number>()
    if (frame.type === 'events') for (const e of frame.batch) tips.set(e.origin, e.seq)
    else if (frame.type === 'folded') for (const e of frame.envelopes) tips.set(e.origin, e.seq)
    const bytes = this.#send(frame)
    this.window.sent(bytes, tips, this.#c.now())
    // Stored events count as held by their sender (the `holds` hook); folded ones are acked.
    if (frame.type === 'events') for (const [origin, seq] of tips) this.acks.sent(origin, seq)
  }
}
