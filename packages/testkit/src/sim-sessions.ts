import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto'
import type { VersionVector } from '@dru/core'
import type { Dru } from '@dru/node'
import {
  PeerProtocol,
  RouteBook,
  SEAL_TAG_BYTES,
  SharedCompression,
  decodeFrame,
  decompressFrame,
  limits,
  silentLogger,
  type ProtocolConfig,
  type ProtocolHooks,
  type ProtocolPlant,
  type SessionLimits,
  type Wire,
} from '@dru/sync'
import { Rng } from './rng.js'

/** Per-frame fault probabilities of the protocol-level simulation. */
export interface FrameFaults {
  /** A frame is lost; as with TCP, the connection it travelled on breaks (both ends close). */
  drop?: number
  /** A frame is delivered twice (as a replay would be). */
  duplicate?: number
  /** A frame swaps places with the next one in its direction. */
  reorder?: number
}

/**
 * Bugs planted on purpose in DRU 0, to prove the protocol-level property catches them:
 *
 * - `skip-tenth` (in the log it streams from): its streaming path leaves out every event
 *   whose seq is a multiple of ten, as a sender with an off-by-one in its range arithmetic
 *   would. Its peers see gaps and ask again, and the events never come.
 * - `lack-off-by-one` (in the protocol itself, {@link ProtocolPlant}): its sessions think a
 *   peer that lacks a single event of an origin is up to date.
 * - `false-routes` (a lying member, not a bug): it tells every peer that it gets every origin
 *   it holds by another path and has a session with every DRU, so its peers hold those
 *   origins back from it; it must still get them.
 */
export type SimPlant = 'skip-tenth' | 'false-routes' | ProtocolPlant

/** The `false-routes` plant: a route book that claims every origin comes by another session, and every DRU as a neighbour. */
class FalseRouteBook extends RouteBook {
  constructor(readonly everyone: readonly string[]) {
    super()
  }
  override elsewhere(_session: unknown, ours: VersionVector): VersionVector {
    return { ...ours }
  }
  override neighbours(): string[] {
    return [...this.everyone]
  }
}

/** The `skip-tenth` plant: a log whose streams leave out every tenth event. */
function skippingTenth(log: Dru['store']): Dru['store'] {
  return new Proxy(log, {
    get(target, prop) {
      if (prop === 'eventsMissing') {
        return function* (
          remote: Parameters<Dru['store']['eventsMissing']>[0],
          options?: Parameters<Dru['store']['eventsMissing']>[1],
        ) {
          for (const batch of target.eventsMissing(remote, options)) {
            const kept = batch.filter((e) => e.seq % 10 !== 0)
            if (kept.length > 0) yield kept
          }
        }
      }
      const v = Reflect.get(target, prop, target) as unknown
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
    },
  })
}

/** What the sessions of a simulation reported (all counters). */
export interface SessionLog {
  /** Sessions that reached `open`. */
  opened: number
  /** Sessions closed, by code. */
  closes: Record<string, number>
  /** Frames refused as PROTOCOL_VIOLATION or RATE_LIMITED. */
  violations: number
  /** Peers quarantined, as `druId -> peerId: code`. */
  quarantines: string[]
  /** Bootstraps completed (rebuilt folded events). */
  bootstraps: number
  /** Frames sent, by type, over the whole run. */
  sent: Record<string, number>
  /** Frames sent by each DRU (by index), by type, over the whole run. */
  sentBy: Array<Record<string, number>>
  /** Bytes each DRU (by index) put on its links, over the whole run (sealed frames). */
  bytesBy: number[]
}

/** Events each DRU (by index) received in `events` frames, and how many of them it already held. */
export interface Received {
  readonly events: number[]
  readonly duplicates: number[]
}

interface Pipe {
  readonly a: number
  readonly b: number
  ends: [PeerProtocol, PeerProtocol] | undefined
  queues: [Uint8Array[], Uint8Array[]]
}

/**
 * The real peer protocol between in-process DRUs: for each pair, two {@link PeerProtocol}s
 * (the lower index dials) joined by byte queues, driven in seeded rounds. A cut link resets
 * its connection, as TCP would; a healed one reconnects on the next round. Every frame is
 * encoded, decoded, authenticated, signature-checked and windowed exactly as on a socket.
 */
export class SimSessions {
  readonly log: SessionLog = {
    opened: 0,
    closes: {},
    violations: 0,
    quarantines: [],
    bootstraps: 0,
    sent: {},
    sentBy: [],
    bytesBy: [],
  }
  /**
   * What each DRU's peers acknowledged to it, by index then peer id (merged over sessions,
   * as the node's peer book keeps it): the basis of its lifecycle's "caught up".
   */
  readonly acked: Array<Map<string, Record<string, number>>> = []
  /** Frames delivered in the last round, by type. */
  lastRound: Record<string, number> = {}
  readonly #drus: Dru[]
  readonly #rng: Rng
  readonly #configs: ProtocolConfig[]
  readonly #makeConfig: (d: Dru, i: number) => ProtocolConfig
  readonly #pipes: Pipe[] = []
  readonly #bootstrapping = new Map<number, PeerProtocol>()
  /** DRUs that stored remote events since their sessions last acked (as the sync node tracks it). */
  readonly #ackDue = new Set<number>()
  /** Received counts of sessions already closed, by DRU index. */
  readonly #closedIn = { events: [] as number[], duplicates: [] as number[] }
  /** Per link (receiver<sender), what its closed sessions received. */
  readonly #closedByLink = new Map<string, { to: number; from: number; events: number; duplicates: number }>()

  constructor(
    drus: readonly Dru[],
    options: {
      rng: Rng
      now: () => number
      keys: ReadonlyArray<{ privateKey: string; publicKey: string }>
      maxBatchBytes: number
      secret: string
      plant?: SimPlant
    },
  ) {
    this.#drus = [...drus]
    this.#rng = options.rng
    const publicKeys = new Map<string, KeyObject>(
      drus.map((d, i) => [d.id, createPublicKey(options.keys[i]!.publicKey)]),
    )
    // Drawn as when it seeded the handshake nonces (protocol 7 sends none), so every seed keeps its schedule.
    options.rng.int(2 ** 31)
    const sessionLimits: SessionLimits = {
      maxFrameBytes: Math.max(limits.PRE_AUTH_MAX_FRAME_BYTES * 4, options.maxBatchBytes * 8),
      maxBatchBytes: options.maxBatchBytes,
      // Small windows, so acks and window refills are exercised often.
      maxUnackedBytes: options.maxBatchBytes * 4,
      heartbeatMs: 50,
      // Rounds advance the clock 10 ms: refresh as often as the heartbeat, not once a second.
      refreshIntervalMs: 50,
      heartbeatTimeoutMs: 2_000,
      preAuthMaxFrameBytes: limits.PRE_AUTH_MAX_FRAME_BYTES,
      handshakeTimeoutMs: 2_000,
      framesPerSecond: 1e9,
      frameBurst: 1e9,
      costlyFramesPerSecond: 1e9,
      costlyFrameBurst: 1e9,
    }
    this.#makeConfig = (d, i) => ({
      log: options.plant === 'skip-tenth' && i === 0 ? skippingTenth(d.store) : d.store,
      druId: d.id,
      secret: options.secret,
      privateKey: createPrivateKey(options.keys[i]!.privateKey),
      publicKeys,
      limits: sessionLimits,
      logger: silentLogger,
      now: options.now,
      snapshots: {
        page: (after, maxBytes) => d.documents.snapshotPage(after, maxBytes),
        changesOf: (docId, bytes) => d.documents.changesOf(docId, bytes),
      },
      describe: () => d.digest(),
      // One per DRU process, shared by its sessions (a restart gets a new one).
      routes: options.plant === 'false-routes' && i === 0 ? new FalseRouteBook(drus.map((d) => d.id)) : new RouteBook(),
      compression: new SharedCompression(limits.SHARED_COMPRESSION_BATCHES * sessionLimits.maxBatchBytes),
      ...(options.plant === 'lack-off-by-one' && i === 0 ? { plant: 'lack-off-by-one' as const } : {}),
    })
    this.#configs = drus.map((d, i) => this.#makeConfig(d, i))
    drus.forEach((d, i) => this.#watchCommits(d, i))
    for (let a = 0; a < drus.length; a++)
      for (let b = a + 1; b < drus.length; b++) this.#pipes.push({ a, b, ends: undefined, queues: [[], []] })
  }

  /** True while any frame is queued on a connection. */
  inFlight(): boolean {
    return this.#pipes.some((p) => p.queues[0].length > 0 || p.queues[1].length > 0)
  }

  /** True while some session would refresh what its peer holds at its next heartbeat. */
  refreshDue(): boolean {
    return this.#pipes.some((p) => p.ends?.some((end) => end.refreshDue) === true)
  }

  /** True while some session holds events back, waiting to see them arrive by another path (not quiet yet). */
  holdingBack(): boolean {
    return this.#pipes.some((p) => p.ends?.some((end) => end.holdingBack) === true)
  }

  /** True when every pair whose link is up has an open session. */
  allOpen(up: (a: number, b: number) => boolean): boolean {
    return this.#pipes.every(
      (p) => !(up(p.a, p.b) && up(p.b, p.a)) || (p.ends?.[0].isOpen === true && p.ends[1].isOpen),
    )
  }

  /**
   * One round: connections reset on cut links and opened on healed ones, every session
   * ticked and pumped, then every queued frame delivered in a seeded order with the faults
   * applied. Returns the number of frames delivered.
   */
  round(up: (a: number, b: number) => boolean, faults: FrameFaults): number {
    for (const p of this.#pipes) {
      const linked = up(p.a, p.b) && up(p.b, p.a)
      if (p.ends && (!linked || p.ends[0].phase === 'closed' || p.ends[1].phase === 'closed'))
        this.#reset(p, linked ? 'CLOSED' : 'PARTITIONED')
      if (!p.ends && linked) this.#connect(p)
    }
    for (const p of this.#pipes) {
      for (const end of p.ends ?? []) {
        end.tick()
        end.pump()
      }
    }
    // As the sync node does: after a remote commit, every session of that DRU acks what grew
    // (not only the one that brought it). Nothing else prompts an ack between rounds.
    for (const p of this.#pipes) {
      if (this.#ackDue.has(p.a)) p.ends?.[0].ackNow()
      if (this.#ackDue.has(p.b)) p.ends?.[1].ackNow()
    }
    this.#ackDue.clear()
    let delivered = 0
    this.lastRound = {}
    // Frames answered within the round are delivered too, up to a bound per round.
    for (let pass = 0; pass < 50 && this.inFlight(); pass++) {
      for (const p of this.#rng.shuffle([...this.#pipes])) {
        for (const dir of this.#rng.shuffle([0, 1] as const)) {
          const frames = p.queues[dir].splice(0)
          if (faults.reorder)
            for (let i = 0; i + 1 < frames.length; i++)
              if (this.#rng.chance(faults.reorder)) [frames[i], frames[i + 1]] = [frames[i + 1]!, frames[i]!]
          for (const bytes of frames) {
            const to = p.ends?.[dir === 0 ? 1 : 0]
            if (!to || to.phase === 'closed') break
            if (this.#rng.chance(faults.drop ?? 0)) {
              this.#reset(p, 'DROPPED')
              break
            }
            to.receive(bytes)
            delivered++
            const type = typeOf(bytes)
            this.lastRound[type] = (this.lastRound[type] ?? 0) + 1
            if (this.#rng.chance(faults.duplicate ?? 0)) to.receive(bytes)
          }
        }
      }
    }
    return delivered
  }

  /** DRU `i` was reopened (a restart): its connections reset and its sessions use the new one. */
  replace(i: number, dru: Dru): void {
    for (const p of this.#pipes) if ((p.a === i || p.b === i) && p.ends) this.#reset(p, 'RESTARTED')
    this.#drus[i] = dru
    this.#configs[i] = this.#makeConfig(dru, i)
    this.#watchCommits(dru, i)
    this.#bootstrapping.delete(i)
  }

  #recordAck(me: number, peerId: string, vv: Record<string, number>): void {
    const byPeer = (this.acked[me] ??= new Map())
    const merged = byPeer.get(peerId) ?? {}
    for (const [origin, seq] of Object.entries(vv)) merged[origin] = Math.max(merged[origin] ?? 0, seq)
    byPeer.set(peerId, merged)
  }

  #watchCommits(dru: Dru, i: number): void {
    dru.store.onCommit(
      (_events, source) => {
        if (source === 'remote') this.#ackDue.add(i)
      },
      { phase: 'notify' },
    )
  }

  /** Events received per DRU so far, over every session (closed ones included). */
  received(): Received {
    const events = this.#drus.map((_, i) => this.#closedIn.events[i] ?? 0)
    const duplicates = this.#drus.map((_, i) => this.#closedIn.duplicates[i] ?? 0)
    for (const p of this.#pipes) {
      p.ends?.forEach((end, k) => {
        const i = k === 0 ? p.a : p.b
        events[i]! += end.eventsIn
        duplicates[i]! += end.duplicatesIn
      })
    }
    return { events, duplicates }
  }

  /**
   * Events and duplicates received per link, by receiver and sender, over every session the
   * link had (closed ones included: a race often ends with the session that lost it).
   */
  receivedByLink(): Array<{ to: number; from: number; events: number; duplicates: number }> {
    const byLink = new Map<string, { to: number; from: number; events: number; duplicates: number }>()
    for (const [key, r] of this.#closedByLink) byLink.set(key, { ...r })
    for (const p of this.#pipes) {
      p.ends?.forEach((end, k) => {
        const [to, from] = k === 0 ? [p.a, p.b] : [p.b, p.a]
        const r = byLink.get(`${to}<${from}`) ?? { to, from, events: 0, duplicates: 0 }
        r.events += end.eventsIn
        r.duplicates += end.duplicatesIn
        byLink.set(`${to}<${from}`, r)
      })
    }
    return [...byLink.values()]
  }

  closeAll(): void {
    for (const p of this.#pipes) if (p.ends) this.#reset(p, 'CLOSED')
  }

  #connect(p: Pipe): void {
    const make = (me: number, other: number, dir: 0 | 1, role: 'dialer' | 'acceptor'): PeerProtocol => {
      const wire: Wire = {
        send: (bytes) => {
          p.queues[dir].push(bytes)
          const type = typeOf(bytes)
          this.log.sent[type] = (this.log.sent[type] ?? 0) + 1
          const mine = (this.log.sentBy[me] ??= {})
          mine[type] = (mine[type] ?? 0) + 1
          this.log.bytesBy[me] = (this.log.bytesBy[me] ?? 0) + bytes.byteLength
        },
        close: () => undefined,
        bufferedAmount: 0,
      }
      return new PeerProtocol(
        this.#configs[me]!,
        this.#hooks(me),
        wire,
        role,
        role === 'dialer' ? this.#drus[other]!.id : undefined,
      )
    }
    p.queues = [[], []]
    p.ends = [make(p.a, p.b, 0, 'dialer'), make(p.b, p.a, 1, 'acceptor')]
    p.ends[0].start()
    p.ends[1].start()
  }

  #reset(p: Pipe, code: string): void {
    p.ends?.forEach((end, k) => {
      const i = k === 0 ? p.a : p.b
      this.#closedIn.events[i] = (this.#closedIn.events[i] ?? 0) + end.eventsIn
      this.#closedIn.duplicates[i] = (this.#closedIn.duplicates[i] ?? 0) + end.duplicatesIn
      const from = k === 0 ? p.b : p.a
      const link = this.#closedByLink.get(`${i}<${from}`) ?? { to: i, from, events: 0, duplicates: 0 }
      link.events += end.eventsIn
      link.duplicates += end.duplicatesIn
      this.#closedByLink.set(`${i}<${from}`, link)
    })
    for (const end of p.ends ?? []) end.close(code, 'connection reset by the simulation')
    p.ends = undefined
    p.queues = [[], []]
  }

  #hooks(me: number): ProtocolHooks {
    const dru = this.#drus[me]!
    return {
      admit: () => {
        this.log.opened++
        return { ok: true }
      },
      quarantine: (peerId, code) => this.log.quarantines.push(`${dru.id} -> ${peerId}: ${code}`),
      violation: () => this.log.violations++,
      claimBootstrap: (s) => {
        const current = this.#bootstrapping.get(me)
        if (current && current !== s && current.isOpen && current.bootstrapping) return false
        this.#bootstrapping.set(me, s)
        return true
      },
      releaseBootstrap: (s) => {
        if (this.#bootstrapping.get(me) === s) this.#bootstrapping.delete(me)
      },
      acked: (s, vv) => this.#recordAck(me, s.peerId!, vv),
      holds: (s, vv) => this.#recordAck(me, s.peerId!, vv),
      bootstrapped: () => this.log.bootstraps++,
      closed: (_s, reason) => {
        this.log.closes[reason.code] = (this.log.closes[reason.code] ?? 0) + 1
      },
    }
  }
}

/** The type of an encoded frame (the simulation counts frames by type). */
function typeOf(bytes: Uint8Array): string {
  for (const b of [bytes, bytes.subarray(0, Math.max(0, bytes.byteLength - SEAL_TAG_BYTES))]) {
    try {
      // Frames after a side's auth end in the seal's tag.
      return decodeFrame(decompressFrame(b, limits.DEFAULT_MAX_FRAME_BYTES)).type
    } catch {
      // try without the tag
    }
  }
  return 'undecodable'
}
