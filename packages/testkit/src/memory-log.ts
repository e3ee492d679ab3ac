import { createHash } from 'node:crypto'
import {
  DEFAULT_BATCH_BYTES,
  DruError,
  GENESIS_HASH,
  encodeHlc,
  eventHashVerified,
  formatOrigin,
  missingRanges,
  newIncarnation,
  normalizeVv,
  parseDruId,
  retiredSummary,
  sealEvent,
  validateBatch,
  type CommitListener,
  type CommitPhase,
  type CompactionBase,
  type DruEvent,
  type DruId,
  type Fingerprint,
  type FoldedEnvelope,
  type IngestResult,
  type LogSummary,
  type Origin,
  type PeerBook,
  type PeerRecord,
  type ReplicaLog,
  type StreamOptions,
  type VersionVector,
} from '@dru/core'

interface Head {
  seq: number
  hash: string
  hlc: string
}

const hashOf = (b: Uint8Array) => createHash('sha256').update(b).digest()

/**
 * An event log in memory that implements the same ports as `EventStore` (`ReplicaLog`,
 * `PeerBook`), for fast protocol tests and as the second implementation the port's contract
 * suite ({@link runReplicaLogContract}) runs against. No durability, no documents: `fold`
 * stands in for compaction (events up to the floor leave, their envelopes stay).
 */
export class MemoryLog implements ReplicaLog, PeerBook {
  readonly druId: DruId
  readonly origin: Origin
  closed = false
  readonly #events = new Map<string, DruEvent[]>()
  readonly #heads = new Map<string, Head>()
  readonly #base = new Map<string, Head>()
  readonly #folded = new Map<string, FoldedEnvelope[]>()
  readonly #stage = new Map<string, { docId: string; change: Uint8Array }>()
  readonly #listeners: Record<CommitPhase, CommitListener[]> = { derive: [], notify: [] }
  readonly #peers = new Map<string, PeerRecord>()
  #time = 1_700_000_000_000

  constructor(druId: string, random?: () => number) {
    this.druId = parseDruId(druId, 'druId')
    this.origin = formatOrigin(this.druId, newIncarnation(random))
  }

  /** Appends local events (one commit), the last one "signed" by the caller's `sign`. */
  append(docId: string, changes: readonly Uint8Array[], sign?: (hash: string) => Uint8Array): DruEvent[] {
    this.#open()
    const head = this.#heads.get(this.origin) ?? { seq: 0, hash: GENESIS_HASH, hlc: '' }
    const out: DruEvent[] = []
    let prev = head.hash
    changes.forEach((change, i) => {
      let e = sealEvent({
        origin: this.origin,
        seq: head.seq + i + 1,
        hlc: encodeHlc({ wall: this.#time++, counter: 0, node: this.origin }),
        docId,
        change,
        prev,
      })
      if (sign && i === changes.length - 1) e = { ...e, sig: sign(e.hash) }
      out.push(e)
      prev = e.hash
    })
    this.#store(out)
    this.#notify(out, 'local')
    return out
  }

  vv(): VersionVector {
    const out: Record<string, number> = {}
    for (const [o, h] of this.#heads) out[o] = h.seq
    return normalizeVv(out)
  }

  fingerprint(): Fingerprint {
    const heads: Record<string, string> = {}
    for (const o of [...this.#heads.keys()].sort()) heads[o] = this.#heads.get(o)!.hash
    return { vv: this.vv(), heads }
  }

  summary(): LogSummary {
    const vv: Record<string, number> = {}
    const heads: Record<string, string> = {}
    for (const o of [...this.#heads.keys()].sort()) {
      if (this.#retired(o)) continue
      vv[o] = this.#heads.get(o)!.seq
      heads[o] = this.#heads.get(o)!.hash
    }
    return {
      live: { vv, heads },
      retired: retiredSummary(this.retired().map((r) => [r.origin, r.seq, r.hash] as const)),
    }
  }

  retired(): Array<{ origin: string; seq: number; hash: string }> {
    return [...this.#heads]
      .filter(([o]) => this.#retired(o))
      .map(([origin, h]) => ({ origin, seq: h.seq, hash: h.hash }))
      .sort((a, b) => (a.origin < b.origin ? -1 : 1))
  }

  hashAt(origin: string, seq: number): string | undefined {
    const head = this.#heads.get(origin)
    if (!head || seq < 1 || seq > head.seq) return undefined
    if (seq === head.seq) return head.hash
    if (this.#base.get(origin)?.seq === seq) return this.#base.get(origin)!.hash
    return this.#events.get(origin)?.find((e) => e.seq === seq)?.hash
  }

  base(): Readonly<Record<string, CompactionBase>> {
    return Object.fromEntries([...this.#base].sort(([a], [b]) => (a < b ? -1 : 1)).map(([o, b]) => [o, { ...b }]))
  }

  *eventsMissing(remote: VersionVector, options: StreamOptions = {}): Generator<DruEvent[], void, undefined> {
    const max = options.maxBatchBytes ?? DEFAULT_BATCH_BYTES
    let batch: DruEvent[] = []
    let bytes = 0
    for (const range of missingRanges(this.vv(), remote)) {
      const base = this.#base.get(range.origin)
      if (base && range.from <= base.seq) {
        if (options.belowBase === 'skip') continue
        throw new DruError('BELOW_FLOOR', `${range.origin}#${range.from}–#${base.seq} were folded`, {
          details: { origin: range.origin, seq: range.from },
        })
      }
      for (const e of this.#events.get(range.origin) ?? []) {
        if (e.seq < range.from || e.seq > range.to) continue
        if (batch.length > 0 && bytes + e.change.byteLength > max) {
          yield batch
          batch = []
          bytes = 0
        }
        batch.push(e)
        bytes += e.change.byteLength
      }
    }
    if (batch.length > 0) yield batch
  }

  ingest(raw: readonly unknown[]): IngestResult {
    this.#open()
    if (!Array.isArray(raw)) throw new DruError('INVALID_ARGUMENT', 'ingest() takes an array of events')
    const events = validateBatch(raw)
    for (const e of events) {
      if (!eventHashVerified(e))
        throw new DruError('HASH_MISMATCH', `${e.origin}#${e.seq} does not match its hash`, {
          details: { origin: e.origin, seq: e.seq },
        })
      if (e.origin === this.origin && e.seq > (this.#heads.get(this.origin)?.seq ?? 0)) {
        throw new DruError('FORK', `${e.origin}#${e.seq} is this log's own origin beyond its head`, {
          details: { origin: e.origin, seq: e.seq },
        })
      }
    }
    const sorted = [...events].sort((a, b) => (a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : a.seq - b.seq))
    // Checked against a working copy of the heads first: all or nothing.
    const heads = new Map(this.#heads)
    const stored: DruEvent[] = []
    let duplicates = 0
    for (const e of sorted) {
      const head = heads.get(e.origin) ?? { seq: 0, hash: GENESIS_HASH, hlc: '' }
      if (e.seq <= head.seq) {
        const held = e.seq === head.seq ? head.hash : this.hashAt(e.origin, e.seq)
        if (held !== undefined && held !== e.hash)
          throw new DruError('FORK', `fork at ${e.origin}#${e.seq}`, { details: { origin: e.origin, seq: e.seq } })
        duplicates++
        continue
      }
      if (e.seq > head.seq + 1)
        throw new DruError('SEQ_GAP', `${e.origin}#${e.seq} arrived but we hold only up to ${head.seq}`, {
          details: { origin: e.origin, seq: e.seq },
        })
      if (e.prev !== head.hash)
        throw new DruError('CHAIN_BROKEN', `${e.origin}#${e.seq} does not link to our head`, {
          details: { origin: e.origin, seq: e.seq },
        })
      heads.set(e.origin, { seq: e.seq, hash: e.hash, hlc: e.hlc })
      stored.push(e)
    }
    this.#store(stored)
    if (stored.length > 0) this.#notify(stored, 'remote')
    return { stored, duplicates, skewed: 0 }
  }

  onCommit(listener: CommitListener, options: { phase?: CommitPhase } = {}): () => void {
    const list = this.#listeners[options.phase ?? 'notify']
    list.push(listener)
    return () => {
      const i = list.indexOf(listener)
      if (i >= 0) list.splice(i, 1)
    }
  }

  /** Compaction without documents: events up to `floor` leave, their envelopes stay. */
  fold(floor: VersionVector): void {
    for (const [origin, head] of this.#heads) {
      const to = Math.min(floor[origin] ?? 0, head.seq)
      if (to <= (this.#base.get(origin)?.seq ?? 0)) continue
      const events = this.#events.get(origin) ?? []
      const gone = events.filter((e) => e.seq <= to)
      const at = gone.at(-1)!
      this.#base.set(origin, { seq: at.seq, hash: at.hash, hlc: at.hlc })
      const envs = this.#folded.get(origin) ?? []
      for (const e of gone)
        envs.push({
          origin: e.origin,
          seq: e.seq,
          hlc: e.hlc,
          docId: e.docId,
          changeHash: hashOf(e.change),
          ...(e.sig ? { sig: e.sig } : {}),
        })
      this.#folded.set(origin, envs)
      this.#events.set(
        origin,
        events.filter((e) => e.seq > to),
      )
    }
  }

  /** The change bytes of every folded event (what document snapshots would carry). */
  foldedChanges(): Array<{ docId: string; change: Uint8Array }> {
    const out: Array<{ docId: string; change: Uint8Array }> = []
    for (const [, c] of this.#foldedBytes) out.push(c)
    return out
  }

  readonly #foldedBytes = new Map<string, { docId: string; change: Uint8Array }>()

  folded(origin: string, fromSeq: number, limit: number): FoldedEnvelope[] {
    return (this.#folded.get(origin) ?? []).filter((e) => e.seq >= fromSeq).slice(0, limit)
  }

  stageChanges(docId: string, changes: readonly Uint8Array[]): void {
    this.#open()
    for (const change of changes) this.#stage.set(hashOf(change).toString('hex'), { docId, change })
  }

  rebuildFolded(envelopes: readonly FoldedEnvelope[]): DruEvent[] {
    this.#open()
    const out: DruEvent[] = []
    const chain = new Map<string, { seq: number; hash: string }>()
    const stopped = new Set<string>()
    for (const env of envelopes) {
      if (stopped.has(env.origin)) continue
      const head = chain.get(env.origin) ?? this.#heads.get(env.origin) ?? { seq: 0, hash: GENESIS_HASH }
      if (env.seq <= head.seq) continue
      if (env.seq !== head.seq + 1) {
        stopped.add(env.origin)
        continue
      }
      const staged = this.#stage.get(Buffer.from(env.changeHash).toString('hex'))
      if (!staged || staged.docId !== env.docId) {
        throw new DruError(
          'MALFORMED',
          `folded ${env.origin}#${env.seq}: no staged change of ${env.docId} with its hash`,
          { details: { origin: env.origin, seq: env.seq } },
        )
      }
      const sealed = sealEvent({
        origin: env.origin,
        seq: env.seq,
        hlc: env.hlc,
        docId: env.docId,
        change: staged.change,
        prev: head.hash,
      })
      const e: DruEvent = env.sig ? { ...sealed, sig: env.sig } : sealed
      out.push(e)
      chain.set(env.origin, { seq: e.seq, hash: e.hash })
    }
    return out
  }

  clearStage(): void {
    this.#stage.clear()
  }

  peer(peerId: string): PeerRecord | undefined {
    return this.#peers.get(peerId)
  }

  recordPeer(peerId: string, fields: { url?: string | null; state?: string | null; lastSeen?: number | null }): void {
    const p = this.#peers.get(peerId)
    this.#peers.set(peerId, {
      peerId,
      url: fields.url ?? p?.url ?? null,
      state: fields.state ?? p?.state ?? null,
      lastSeen: fields.lastSeen ?? p?.lastSeen ?? null,
      ackedVv: p?.ackedVv ?? {},
    })
  }

  recordPeerAck(peerId: string, acked: VersionVector, at?: number): VersionVector {
    const p = this.#peers.get(peerId)
    const merged: Record<string, number> = { ...(p?.ackedVv ?? {}) }
    for (const [o, n] of Object.entries(acked)) merged[o] = Math.max(merged[o] ?? 0, n)
    this.#peers.set(peerId, {
      peerId,
      url: p?.url ?? null,
      state: p?.state ?? null,
      lastSeen: at ?? p?.lastSeen ?? null,
      ackedVv: normalizeVv(merged),
    })
    return normalizeVv(merged)
  }

  close(): void {
    this.closed = true
  }

  #retired(origin: string): boolean {
    const base = this.#base.get(origin)
    return base !== undefined && base.seq === this.#heads.get(origin)?.seq
  }

  #store(events: readonly DruEvent[]): void {
    for (const e of events) {
      const list = this.#events.get(e.origin) ?? []
      list.push(e)
      this.#events.set(e.origin, list)
      this.#heads.set(e.origin, { seq: e.seq, hash: e.hash, hlc: e.hlc })
      this.#foldedBytes.set(hashOf(e.change).toString('hex'), { docId: e.docId, change: e.change })
    }
  }

  #notify(events: readonly DruEvent[], source: 'local' | 'remote'): void {
    for (const l of [...this.#listeners.derive, ...this.#listeners.notify]) l(events, source)
  }

  #open(): void {
    if (this.closed) throw new DruError('CLOSED', 'the log is closed')
  }
}
