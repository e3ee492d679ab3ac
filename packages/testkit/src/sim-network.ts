import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DruError, countMissing, equalFingerprints, isDruError, type DruEvent } from '@dru/core'
import { openDru, type Dru, type DruConfig } from '@dru/node'
import { Rng } from './rng.js'
import { seededKeys } from './seeded-keys.js'
import { SimSessions, type Received, type SessionLog, type SimPlant } from './sim-sessions.js'

/** Fault rates applied by {@link SimNetwork.round}, each a probability per batch (or per link for replay). */
export interface FaultRates {
  /** A batch is delivered twice. */
  duplicate?: number
  /** A batch is held back 1-3 rounds. */
  delay?: number
  /** A link's queue is shuffled before delivery. */
  reorder?: number
  /** An already delivered batch is delivered again. */
  replay?: number
  /** Protocol exchange only: a frame is lost and its connection breaks (both ends close, then reconnect). */
  drop?: number
}

export interface SimOptions {
  /** Number of DRUs. */
  size: number
  /** Seed of every random choice the network makes. */
  seed: number
  /** DRU ids; default `dru-0`, `dru-1`, … */
  ids?: string[]
  /** `memory` (default) or `file` (a temp directory, removed on close). */
  storage?: 'memory' | 'file'
  /** Extra configuration for every DRU (cache, conflictPolicy, durability…). */
  config?: Partial<Omit<DruConfig, 'id' | 'path'>>
  faults?: FaultRates
  /** Soft cap on a delivered batch's bytes: small values make many batches to reorder. */
  maxBatchBytes?: number
  /**
   * `events` (default): links move event batches straight between stores, like the
   * anti-entropy does. `protocol`: links carry the encoded frames of the real peer protocol
   * between {@link PeerProtocol} sessions (handshake, signatures, windows, resync,
   * bootstrap); faults then apply to frames, and a cut link resets its connection.
   */
  exchange?: 'events' | 'protocol'
  /** Protocol exchange only: a bug planted on purpose (see {@link SimPlant}), to prove a property catches it. */
  plant?: SimPlant
}

export interface RoundReport {
  /** Events newly stored anywhere in this round. */
  stored: number
  /** Batches refused with SEQ_GAP (arrived before their predecessors) and left to a later round. */
  gaps: number
  duplicates: number
  delivered: number
}

interface Link {
  up: boolean
  queue: Array<{ batch: DruEvent[]; due: number }>
  history: DruEvent[][]
}

/**
 * A deterministic in-process network of DRUs with real stores. Exchange is modelled at
 * the event level, like the real anti-entropy: a link sends what
 * `source.store.eventsMissing(target.store.vv())` yields and the target ingests it.
 * Links can be cut and healed (also one way); batches can be delayed, duplicated,
 * reordered and replayed. A batch refused with SEQ_GAP is dropped; a later round sends
 * it again.
 */
export class SimNetwork {
  readonly drus: Dru[]
  readonly rng: Rng
  faults: FaultRates
  readonly #links: Link[][]
  readonly #dir: string | undefined
  readonly #maxBatchBytes: number
  readonly #sessions: SimSessions | undefined
  readonly #reopen: (i: number) => Promise<Dru>
  #round = 0
  /** Virtual wall clock shared by the DRUs, advanced by {@link tick}. */
  readonly #time: { ms: number }

  private constructor(
    drus: Dru[],
    rng: Rng,
    faults: FaultRates,
    dir: string | undefined,
    maxBatchBytes: number,
    time: { ms: number },
    sessions: SimSessions | undefined,
    reopen: (i: number) => Promise<Dru>,
  ) {
    this.#reopen = reopen
    this.#time = time
    this.drus = drus
    this.rng = rng
    this.faults = faults
    this.#dir = dir
    this.#maxBatchBytes = maxBatchBytes
    this.#sessions = sessions
    this.#links = drus.map(() => drus.map(() => ({ up: true, queue: [], history: [] })))
    for (const d of drus) this.#count(d)
  }

  #count(d: Dru): void {
    d.store.onCommit((events, source) => {
      if (source === 'remote') this.#storedThisRound += events.length
    })
  }

  /**
   * Stops DRU `i` and starts it again on its files (storage `file` only): a fresh incarnation,
   * its connections reset. With `wipe`, its database is deleted first (a lost disk).
   */
  async restart(i: number, options: { wipe?: boolean } = {}): Promise<void> {
    if (!this.#dir) throw new DruError('INVALID_ARGUMENT', 'restart needs storage: file')
    const old = this.drus[i]!
    await old.close()
    if (options.wipe) for (const suffix of ['', '-wal', '-shm']) rmSync(`${old.store.path}${suffix}`, { force: true })
    const dru = await this.#reopen(i)
    this.drus[i] = dru
    this.#count(dru)
    this.#sessions?.replace(i, dru)
  }

  /** Folds, on DRU `i`, every event all DRUs hold (the meet of their vectors) into snapshots. */
  compact(i: number): void {
    const vvs = this.drus.map((d) => d.store.vv())
    const floor: Record<string, number> = {}
    for (const o of Object.keys(vvs[0]!)) floor[o] = Math.min(...vvs.map((v) => v[o] ?? 0))
    const steps = this.drus[i]!.documents.compact(floor)
    while (!steps.next().done);
  }

  #storedThisRound = 0

  /**
   * Protocol exchange only: events each DRU received in `events` frames over the whole run
   * (every session, closed ones included) and how many it already held. Received ÷ needed
   * is the forwarding overhead.
   */
  received(): Received {
    if (!this.#sessions) throw new DruError('INVALID_ARGUMENT', 'received() needs exchange: protocol')
    return this.#sessions.received()
  }

  /** What the protocol sessions did (protocol exchange only). */
  /** Events and duplicates received per open link (exchange 'protocol'). */
  receivedByLink(): Array<{ to: number; from: number; events: number; duplicates: number }> {
    if (!this.#sessions) throw new DruError('INVALID_ARGUMENT', 'receivedByLink() needs exchange: protocol')
    return this.#sessions.receivedByLink()
  }

  get sessionLog(): SessionLog | undefined {
    return this.#sessions?.log
  }

  static async create(options: SimOptions): Promise<SimNetwork> {
    const dir = options.storage === 'file' ? mkdtempSync(join(tmpdir(), 'dru-sim-')) : undefined
    const drus: Dru[] = []
    const time = { ms: 1_700_000_000_000 }
    const ids = options.ids ?? Array.from({ length: options.size }, (_, i) => `dru-${i}`)
    // Incarnations, keys and nonces come from streams of their own, so the network's choices stay the same.
    const incarnations = new Rng(options.seed ^ 0x5bd1e995)
    const protocol = options.exchange === 'protocol'
    const keys = ids.map((_, i) => seededKeys(options.seed * 31 + i))
    const open = (i: number) =>
      openDru({
        ...options.config,
        id: ids[i]!,
        path: dir ? join(dir, `${ids[i]!}.db`) : ':memory:',
        now: options.config?.now ?? (() => time.ms),
        random: options.config?.random ?? (() => incarnations.next()),
        // The protocol checks authorship: every DRU signs its commits.
        ...(protocol
          ? {
              keys: {
                privateKey: keys[i]!.privateKey,
                publicKeys: Object.fromEntries(ids.map((x, j) => [x, keys[j]!.publicKey])),
              },
            }
          : {}),
      })
    try {
      for (let i = 0; i < ids.length; i++) drus.push(await open(i))
    } catch (err) {
      for (const d of drus) await d.close()
      if (dir) rmSync(dir, { recursive: true, force: true })
      throw err
    }
    const rng = new Rng(options.seed)
    const maxBatchBytes = options.maxBatchBytes ?? 4096
    const sessions = protocol
      ? new SimSessions(drus, {
          rng: new Rng(options.seed ^ 0x27d4eb2d),
          now: () => time.ms,
          keys,
          maxBatchBytes: Math.max(maxBatchBytes, 64),
          secret: 'simulated-cluster-secret',
          ...(options.plant ? { plant: options.plant } : {}),
        })
      : undefined
    return new SimNetwork(drus, rng, options.faults ?? {}, dir, maxBatchBytes, time, sessions, open)
  }

  /** Advances the virtual clock by `ms`. */
  tick(ms = 1): void {
    this.#time.ms += ms
  }

  get size(): number {
    return this.drus.length
  }

  /** Cuts the link between `a` and `b` (only `a → b` when `oneWay`); batches in flight on it are lost. */
  cut(a: number, b: number, oneWay = false): void {
    this.#setLink(a, b, false)
    if (!oneWay) this.#setLink(b, a, false)
  }

  /** Restores the link between `a` and `b` (only `a → b` when `oneWay`). */
  heal(a: number, b: number, oneWay = false): void {
    this.#setLink(a, b, true)
    if (!oneWay) this.#setLink(b, a, true)
  }

  /** Splits the DRUs into groups that can talk only within themselves (DRUs in no group are isolated). */
  partition(groups: number[][]): void {
    const groupOf = new Map<number, number>()
    groups.forEach((g, i) => g.forEach((d) => groupOf.set(d, i)))
    for (let a = 0; a < this.size; a++) {
      for (let b = 0; b < this.size; b++) {
        if (a !== b) this.#setLink(a, b, groupOf.has(a) && groupOf.get(a) === groupOf.get(b))
      }
    }
  }

  healAll(): void {
    for (let a = 0; a < this.size; a++) for (let b = 0; b < this.size; b++) if (a !== b) this.#setLink(a, b, true)
  }

  isUp(a: number, b: number): boolean {
    return this.#links[a]![b]!.up
  }

  /**
   * One exchange round over every link that is up, in a seeded random order, applying
   * the fault rates. A link with nothing in flight offers everything its target lacks.
   */
  round(): RoundReport {
    this.#round++
    this.tick(10)
    if (this.#sessions) {
      this.#storedThisRound = 0
      const f = this.faults
      const delivered = this.#sessions.round((a, b) => this.isUp(a, b), {
        drop: f.drop ?? 0,
        duplicate: f.duplicate ?? 0,
        reorder: f.reorder ?? 0,
      })
      return { stored: this.#storedThisRound, gaps: 0, duplicates: 0, delivered }
    }
    const report = { stored: 0, gaps: 0, duplicates: 0, delivered: 0 }
    const pairs: Array<[number, number]> = []
    for (let a = 0; a < this.size; a++) for (let b = 0; b < this.size; b++) if (a !== b) pairs.push([a, b])
    for (const [a, b] of this.rng.shuffle(pairs)) {
      const link = this.#links[a]![b]!
      if (!link.up) continue
      const source = this.drus[a]!
      const target = this.drus[b]!
      if (link.queue.length === 0) {
        for (const batch of source.store.eventsMissing(target.store.vv(), { maxBatchBytes: this.#maxBatchBytes })) {
          const delay = this.rng.chance(this.faults.delay ?? 0) ? 1 + this.rng.int(3) : 0
          link.queue.push({ batch, due: this.#round + delay })
          if (this.rng.chance(this.faults.duplicate ?? 0))
            link.queue.push({ batch, due: this.#round + this.rng.int(3) })
        }
        if (this.rng.chance(this.faults.reorder ?? 0)) this.rng.shuffle(link.queue)
      }
      if (link.history.length > 0 && this.rng.chance(this.faults.replay ?? 0)) {
        link.queue.push({ batch: link.history[this.rng.int(link.history.length)]!, due: this.#round })
      }
      const later: Link['queue'] = []
      for (const item of link.queue) {
        if (item.due > this.#round) {
          later.push(item)
          continue
        }
        this.#deliver(target, item.batch, report)
        link.history.push(item.batch)
        if (link.history.length > 8) link.history.shift()
      }
      link.queue = later
    }
    return report
  }

  /**
   * Runs fault-free rounds until two rounds in a row store nothing with nothing in flight.
   * Throws if that takes more than `maxRounds` (a liveness failure).
   */
  settle(maxRounds = 100): number {
    const saved = this.faults
    this.faults = {}
    try {
      // Two quiet rounds in a row: a link only offers fresh batches once its queue is
      // empty, so the second round is the one in which every link offered all it had.
      let quiet = 0
      for (let i = 1; i <= maxRounds; i++) {
        const r = this.round()
        if (this.#sessions) {
          // Quiet: every link up has an open session, nothing was stored, only heartbeats and acks moved.
          const moved = Object.entries(this.#sessions.lastRound).some(
            ([type, n]) => n > 0 && type !== 'ping' && type !== 'pong' && type !== 'ack',
          )
          // A session holding events back for a grace is not done: it forwards them if they do not arrive.
          const open = this.#sessions.allOpen((a, b) => this.isUp(a, b))
          const busy = this.#sessions.refreshDue() || this.#sessions.holdingBack()
          quiet = r.stored === 0 && !moved && open && !busy ? quiet + 1 : 0
          if (quiet === 3) return i
          continue
        }
        const inFlight = this.#links.some((row) => row.some((l) => l.up && l.queue.length > 0))
        quiet = r.stored === 0 && r.gaps === 0 && !inFlight ? quiet + 1 : 0
        if (quiet === 2) return i
      }
    } finally {
      this.faults = saved
    }
    throw new Error(`network did not settle within ${maxRounds} rounds`)
  }

  /**
   * Protocol exchange only: for each DRU and linked peer, the live events of the DRU that peer has
   * not acknowledged to it (as `"a -> b: n"`; empty when every DRU could call itself caught
   * up). A DRU stays `catching-up` while any connected peer has not acknowledged its events.
   */
  unacknowledged(): string[] {
    const out: string[] = []
    for (let i = 0; i < this.size; i++) {
      const live = this.drus[i]!.store.summary().live.vv
      for (let j = 0; j < this.size; j++) {
        // Only connected peers count toward "caught up" (a line's ends never meet).
        if (i === j || !this.isUp(i, j) || !this.isUp(j, i)) continue
        const peer = this.drus[j]!.id
        const n = countMissing(live, this.#sessions?.acked[i]?.get(peer) ?? {})
        if (n > 0) out.push(`${this.drus[i]!.id} -> ${peer}: ${n}`)
      }
    }
    return out
  }

  /** True when every pair of DRUs has equal fingerprints. */
  fingerprintsEqual(): boolean {
    const first = this.drus[0]!.fingerprint()
    return this.drus.every((d) => equalFingerprints(d.fingerprint(), first))
  }

  async close(): Promise<void> {
    this.#sessions?.closeAll()
    for (const d of this.drus) await d.close()
    if (this.#dir) rmSync(this.#dir, { recursive: true, force: true })
  }

  #deliver(target: Dru, batch: DruEvent[], report: RoundReport): void {
    report.delivered++
    try {
      const r = target.store.ingest(batch)
      report.stored += r.stored.length
      report.duplicates += r.duplicates
    } catch (err) {
      // Arrived ahead of its predecessors: real anti-entropy drops it and sends again.
      if (isDruError(err, 'SEQ_GAP')) report.gaps++
      else throw err instanceof DruError ? err : new Error(`ingest failed: ${(err as Error).message}`, { cause: err })
    }
  }

  #setLink(a: number, b: number, up: boolean): void {
    const link = this.#links[a]?.[b]
    if (!link || a === b) throw new RangeError(`no link ${a} → ${b}`)
    if (!up) link.queue = []
    link.up = up
  }
}
