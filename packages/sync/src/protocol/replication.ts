import { DruError, type DruEvent, type FoldedEnvelope, type LogSummary, type VersionVector } from '@dru/core'
import type { Frame, SnapshotFrame, VvFrame } from '../frames.js'
import { MAX_ORIGINS } from '../limits.js'
import { AckLedger } from './ack-ledger.js'
import { checkRuns } from './batch-check.js'
import { Forwarding } from './forwarding.js'
import { LatestSummary } from './latest-summary.js'
import { bootstrapFrames, type Outgoing } from './outbound-frames.js'
import { OutboundStreams } from './outbound-streams.js'
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

  readonly window = new SendWindow()
  readonly acks = new AckLedger()
  readonly #session: PeerProtocol
  readonly #c: ProtocolConfig
  readonly #hooks: ProtocolHooks
  readonly #send: (frame: Frame) => number
  readonly #forwarding: Forwarding
  readonly #streams: OutboundStreams
  #gotVv = false
  #expandSent = false
  #ingesting = false
  #resyncRequested = false
  #bootstrapping = false
  #bootstrapStats = { docs: 0, events: 0 }
  /**
   * The routes we last announced (as text: origins, then neighbours), so only a change is sent;
   * none while we have no other session (a pair of DRUs in sync reconnects without one).
   */
  #routesSent = ';'
  /** The peer's latest summary, for a verification that may take it instead of a probe. */
  readonly latest = new LatestSummary()
  /** The live vector of the latest vv we sent (an ack `withVv` acknowledges it). */
  #toldVv: VersionVector = {}
  /** The live vector of the peer's latest vv (its acks `withVv` acknowledge it). */
  #theirVv: VersionVector = {}

  constructor(session: PeerProtocol, config: ProtocolConfig, hooks: ProtocolHooks, send: (frame: Frame) => number) {
    this.#session = session
    this.#c = config
    this.#hooks = hooks
    this.#send = send
    this.#forwarding = new Forwarding({
      druId: config.druId,
      peerId: () => session.peerId,
      publicKeys: config.publicKeys,
      routes: config.routes,
      heartbeatMs: config.limits.heartbeatMs,
      now: config.now,
    })
    this.#streams = new OutboundStreams({
      log: config.log,
      window: this.window,
      forwarding: this.#forwarding,
      limits: config.limits,
      plant: config.plant,
    })
  }

  /** The DRUs the peer has sessions with, besides us (its latest routes frame). */
  get theirNeighbours(): ReadonlySet<string> {
    return this.#forwarding.theirNeighbours
  }

  /** The origins the peer receives by another session, with how far it holds each (its latest routes frame). */
  get theirRoutes(): VersionVector {
    return this.#forwarding.theirRoutes
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
    this.latest.ended()
    this.#streams.stop()
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
    if (!this.#gotVv || this.window.inFlight > 0 || this.#bootstrapping || this.#streams.serving) return false
    return this.acks.untold(this.#c.log.summary().live.vv)
  }

  /**
   * The answer to our refresh probe: learn what the peer holds now, and ack what that lets us.
   * A peer that compacted since its vv holds some origins only folded (retired), which its
   * summary gives as a digest: we name them from our log, or it would look as if it lacked
   * them, and neither side would ever acknowledge them to the other.
   */
  onHoldingsReport(summary: LogSummary): void {
    const held: Record<string, number> = { ...summary.live.vv }
    for (const r of namedRetired(this.#c.log, summary) ?? []) held[r.origin] = Math.max(held[r.origin] ?? 0, r.seq)
    this.acks.learnHoldings(held, this.#c.log.vv(), this.#c.log.origin)
    this.#sendAck(false)
    this.pump()
  }

  // ---- the summary exchange ---------------------------------------------------------------

  /** Sends our summary, and remembers it: our next ack may acknowledge it whole. */
  sendVv(full: boolean): void {
    const frame = vvFrame(this.#c.log, full)
    this.#send(frame)
    this.#toldVv = frame.summary.live.vv
  }

  /** Their summary: check it against our log (a fork shows here first), then stream what they lack. */
  onVv(frame: VvFrame): void {
    checkPeerSummary(this.#c.log, this.#c.publicKeys, frame, this.#session.peerId)
    const { vv } = frame.summary.live
    const ours = this.#c.log.vv()
    this.#theirVv = vv
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
    this.acks.resetHoldings(vv, retiredKnown ?? [])
    // Our own summary told them what we hold: the ack says "all that" in one flag, and
    // names only what grew since (protocol 7).
    const toldSomething = this.acks.told(this.#toldVv)
    this.window.reset(known)
    // A bootstrap being served starts over from the new vector (staging is idempotent), so
    // the peer still gets its end; otherwise streaming restarts.
    if (this.#streams.serving) this.#streams.serve(this.#bootstrapFrames())
    else this.#streams.restart()
    this.#forwarding.started()
    this.#gotVv = true
    this.latest.received(frame.summary, this.#c.now(), ours, this.acks.holdings)
    this.#maybeRequestBootstrap()
    this.#sendAck(false, toldSomething)
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
    const next = this.#forwarding.onRoutes(vv, neighbours, this.#c.log.origin)
    // What it says it holds, it holds (as in its vv): never sent again.
    this.window.learn(next)
    // Streaming restarts from the window's view (nothing in flight is sent twice), so an
    // origin now routed elsewhere stops and one no longer routed is picked up.
    this.#streams.restart()
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
    return this.#streams.holdingBack()
  }

  /** Every heartbeat: announce how far we got on the origins routed elsewhere, and forward what waited too long. */
  tick(): void {
    this.announceRoutes()
    this.pump()
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
        this.sendVv(false)
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

  onAck(named: VersionVector, withVv: boolean): void {
    const ours = this.#c.log.vv()
    this.acks.peerAcked(ours, named)
    const vv: Record<string, number> = { ...named }
    if (withVv) {
      // "And all my latest vv named": of the origins we hold, up to our head (what an ack
      // naming them would have said).
      if (!this.#gotVv) throw violation('an ack of its vv before its vv')
      for (const [origin, seq] of Object.entries(this.#theirVv))
        if (ours[origin] !== undefined) vv[origin] = Math.max(vv[origin] ?? 0, Math.min(seq, ours[origin]))
      this.acks.peerAcked(ours, vv)
    }
    this.#hooks.acked?.(this.#session, vv)
    this.window.acked((o) => this.acks.ackedBy(o), this.#c.now())
    this.window.learn(vv)
    // Their ack may name events they got by another path that we hold too: say we hold them,
    // or they never learn it and stay catching-up (nothing else prompts an ack from us).
    this.#sendAck(false)
    this.pump()
  }

  /**
   * Acks what we hold of the origins the peer holds, if it grew (or always, to free its
   * window); `withVv` adds "and all my latest vv named" (see {@link AckFrame}).
   */
  #sendAck(always: boolean, withVv = false): void {
    const delta = this.acks.grown(this.#c.log.vv())
    if (delta || always || withVv) this.#send({ type: 'ack', vv: delta ?? {}, ...(withVv ? { withVv } : {}) })
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
    if (this.#streams.serving) throw violation('a second bootstrap request while one is being served')
    if (!this.#gotVv) throw violation('a bootstrap request before the vv')
    this.#streams.serve(this.#bootstrapFrames())
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

  /**
   * Sends stream frames while the unacked window has room and the peer lacks something: the
   * direct stream first, then third parties' origins inside the forward window.
   */
  pump(): void {
    if (!this.#session.isOpen || !this.#gotVv || this.#ingesting) return
    while (this.window.unackedBytes < this.#c.limits.maxUnackedBytes && this.#session.isOpen) {
      const next = this.#streams.next()
      if (!next) return
      this.#sendWindowed(next.frame, next.forwarded)
    }
  }

  #sendWindowed(frame: Outgoing, forwarded: boolean): void {
    const tips = new Map<string, number>()
    if (frame.type === 'events') for (const e of frame.batch) tips.set(e.origin, e.seq)
    else if (frame.type === 'folded') for (const e of frame.envelopes) tips.set(e.origin, e.seq)
    const bytes = this.#send(frame)
    this.window.sent(bytes, tips, this.#c.now(), forwarded)
    // Stored events count as held by their sender (the `holds` hook); folded ones are acked.
    if (frame.type === 'events') for (const [origin, seq] of tips) this.acks.sent(origin, seq)
  }
}
