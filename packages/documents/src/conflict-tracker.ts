import { createHash } from 'node:crypto'
import * as A from '@automerge/automerge'
import { DruError, type DruEvent } from '@dru/core'
import type { EventStore } from '@dru/store-sqlite'
import { originForActor, parseOpId } from './actor.js'
import type { AnyDoc } from './doc-cache.js'
import { chooseWinner, type Conflict, type ConflictPolicy, type ConflictValue } from './conflict-policy.js'
import { ConflictRegistry, type ConflictCounts } from './conflict-registry.js'
import { checkedChange } from './change-validation.js'
import { changeHeaderOf, readChangePosition, type ChangePosition } from './change-header.js'
import { conflictAt, valueAt, writable, type ConflictsReader, type FoundConflict, type Path } from './conflict-scan.js'
import type { RecentWriters } from './recent-writers.js'

/** A map or list of a document being changed, as the resolution writes into it. */
type Fields = Record<string | number, unknown>

/** What the tracker needs from the document store to write a resolution. */
export interface ResolutionWriter {
  /** Runs `fn` in one documents transaction; `change` changes a document inside it (see `DocumentTx.change`). */
  transact<T>(fn: (change: (docId: string, write: (doc: Fields) => void) => DruEvent | undefined) => T): T
  /** The cached document, if any (read right after a change). */
  cachedDoc(docId: string): AnyDoc | undefined
  /** True while a store or documents transaction is open: a policy resolution then waits. */
  inTransaction(): boolean
}

/** How a {@link ConflictTracker} settles conflicts, and where it writes and reports. */
export interface ConflictTrackerOptions {
  readonly policy: ConflictPolicy
  readonly now: () => number
  readonly onError: (err: unknown) => void
  readonly writer: ResolutionWriter
  /** True for a stored change Automerge refused (never in any document): not taken as a writer by its header. */
  readonly isRejected?: (e: DruEvent) => boolean
}

/**
 * Conflicts from concurrent values, from detection to settlement. Materialisation hands it
 * the paths Automerge reported conflicted ({@link ConflictTracker.scan},
 * {@link ConflictTracker.record}); it records each conflict once (conflict-registry.ts),
 * lets the policy pick a winner (conflict-policy.ts) and writes that as an ordinary change.
 * It also clears open conflicts whose field no longer holds the recorded values, whoever
 * changed it ({@link ConflictTracker.recheck}).
 */
export class ConflictTracker {
  readonly #store: EventStore
  readonly #options: ConflictTrackerOptions
  readonly #registry: ConflictRegistry
  /** Documents with open conflicts: only these are rechecked after a change. */
  readonly #openDocs: Set<string>
  /** Policy resolutions waiting for the open transaction to end. */
  #pendingPolicy: Array<{ conflict: Conflict; value: unknown }> = []
  /** Who is settling conflicts in the running transaction (`operator`, `policy`). */
  #resolvingBy: string | undefined

  constructor(store: EventStore, options: ConflictTrackerOptions) {
    this.#store = store
    this.#options = options
    this.#registry = new ConflictRegistry(store, options.onError)
    this.#openDocs = new Set(this.#registry.openDocIds())
  }

  /** Writes the conflicts recorded as settled but not yet written (before a snapshot hides their changes). */
  flush(): void {
    this.#registry.flush()
  }

  /** Conflicts, oldest first, by status. */
  list(status: 'open' | 'resolved' | 'all'): Conflict[] {
    return [...this.#registry.list(status === 'all' ? undefined : status)]
  }

  get(id: number): Conflict | undefined {
    return this.#registry.get(id)
  }

  counts(): ConflictCounts {
    return this.#registry.counts()
  }

  /** An operator settles a conflict by writing `value` at its path (an ordinary change). */
  resolve(id: number, value: unknown): DruEvent | undefined {
    const c = this.#registry.get(id)
    if (!c) throw new DruError('NOT_FOUND', `no conflict with id ${id}`, { details: { id } })
    if (c.status === 'resolved') throw new DruError('INVALID_ARGUMENT', `conflict ${id} is already resolved`)
    return this.#writeResolution(c, writable(value), 'operator')
  }

  /** The conflicts `doc` holds at `paths` (the paths an apply reported conflicted); `read` reads `doc`'s conflicts. */
  scan(doc: AnyDoc, paths: readonly Path[], read?: ConflictsReader): FoundConflict[] {
    const out: FoundConflict[] = []
    for (const p of paths) {
      const c = conflictAt(doc, p, read)
      if (c) out.push(c)
    }
    return out
  }

  /**
   * Records new conflicts found in `doc` (each once) and lets the policy settle them; `hint`
   * holds the events just applied, `recent` the document's recently applied events.
   */
  record(
    docId: string,
    doc: AnyDoc,
    found: readonly FoundConflict[],
    hint: readonly DruEvent[],
    recent?: RecentWriters,
  ): void {
    if (found.length === 0) return
    const fresh: Conflict[] = []
    const raws = new Map<number, FoundConflict>()
    const writers = new OpWriters(docId, doc, hint, this.#store, this.#options.isRejected, recent)
    const policy = this.#options.policy
    // Under keep-visible a conflict is recorded already settled, its row written with the
    // others found in this turn (conflict-registry.ts); conflicted counters stay open:
    // increments made elsewhere may land on the other counter. Open conflicts are written in
    // one transaction per apply.
    const at = this.#options.now()
    const open: Array<{ f: FoundConflict; values: ConflictValue[] }> = []
    const valuesOf = (f: FoundConflict): ConflictValue[] =>
      f.opIds.map((opId) => {
        const { actor } = parseOpId(opId)
        return { opId, origin: originForActor(actor), hlc: writers.hlcOf(opId), value: f.values.get(opId) }
      })
    for (const f of found) {
      // A settled row is written once whoever finds it again (the write skips a known one);
      // an open one is looked up first, so its writers are not searched for again.
      if (policy === 'keep-visible' && ![...f.raw.values()].some((v) => v instanceof A.Counter))
        this.#registry.recordSettled(docId, f.path, valuesOf(f), at, { resolution: f.visible, by: 'policy' })
      else if (!this.#registry.exists(docId, JSON.stringify(f.path), f.opIds.join(',')))
        open.push({ f, values: valuesOf(f) })
    }
    if (open.length > 0)
      this.#store.db.transaction(() => {
        for (const { f, values } of open) {
          const c = this.#registry.record(docId, f.path, values, at)
          if (!c) continue
          fresh.push(c)
          raws.set(c.id, f)
          this.#openDocs.add(docId)
        }
      })()
    if (policy === 'manual' || policy === 'keep-visible') return
    for (const c of fresh) {
      const winner = chooseWinner(policy, c)
      const raw = winner === undefined ? undefined : raws.get(c.id)?.raw
      if (winner !== undefined && raw?.has(winner))
        this.#pendingPolicy.push({ conflict: c, value: writable(raw.get(winner)) })
    }
    this.runPolicy()
  }

  /**
   * Paths of the document's open conflicts. A concurrent value that arrives later and loses
   * changes nothing visible, so Automerge reports no patch for it: the apply scans these
   * paths too, or the wider conflict would go unrecorded while recheck closes the old one.
   */
  openPaths(docId: string): Path[] {
    if (!this.#openDocs.has(docId)) return []
    return this.#registry.openForDoc(docId).map((c) => [...c.path])
  }

  /**
   * After changes from elsewhere (`by` = `replicated`) or a local change: clears what `doc`
   * no longer holds. `read` reads `doc`'s conflicts: an apply passes the one its scan used,
   * which has already read every open path (the scan covers them), so none is read twice.
   */
  recheck(docId: string, doc: AnyDoc, by: string, read?: ConflictsReader): void {
    if (this.#openDocs.has(docId)) this.#recheckOpen(docId, doc, by, read)
  }

  /** After a local change: a resolution being written counts as its writer's, anything else as `local-change`. */
  recheckLocal(docId: string, doc: AnyDoc): void {
    this.recheck(docId, doc, this.#resolvingBy ?? 'local-change')
  }

  /** Writes policy resolutions once no transaction is open (a resolution is a transaction of its own). */
  runPolicy(): void {
    if (this.#options.writer.inTransaction()) return
    while (this.#pendingPolicy.length > 0) {
      const { conflict, value } = this.#pendingPolicy.shift()!
      try {
        if (this.#registry.get(conflict.id)?.status === 'open') this.#writeResolution(conflict, value, 'policy')
      } catch (err) {
        this.#options.onError(err)
      }
    }
  }

  #writeResolution(c: Conflict, value: unknown, by: string): DruEvent | undefined {
    const path = c.path
    const prop = path[path.length - 1]!
    this.#resolvingBy = by
    try {
      return this.#options.writer.transact((change) => {
        const event = change(c.docId, (doc) => {
          let obj = doc
          for (const p of path.slice(0, -1)) {
            const inner = obj[p]
            if (inner === null || typeof inner !== 'object')
              throw new DruError('INVALID_ARGUMENT', `conflict ${c.id}: ${JSON.stringify(path)} no longer exists`)
            obj = inner as Fields
          }
          obj[prop] = value
        })
        this.#registry.markResolved(
          c.id,
          valueAt(this.#options.writer.cachedDoc(c.docId), [...path]),
          this.#options.now(),
          by,
        )
        this.#refreshOpen(c.docId)
        return event
      })
    } finally {
      this.#resolvingBy = undefined
    }
  }

  /** Marks resolved every open conflict of `docId` whose field no longer holds the recorded concurrent values. */
  #recheckOpen(docId: string, doc: AnyDoc, by: string, read?: ConflictsReader): void {
    for (const c of this.#registry.openForDoc(docId)) {
      const now = conflictAt(doc, [...c.path], read)
      const key = c.values
        .map((v) => v.opId)
        .sort()
        .join(',')
      if (now && now.opIds.join(',') === key) continue
      this.#registry.markResolved(c.id, valueAt(doc, [...c.path]), this.#options.now(), by)
    }
    this.#refreshOpen(docId)
  }

  #refreshOpen(docId: string): void {
    if (this.#registry.openForDoc(docId).length === 0) this.#openDocs.delete(docId)
    else this.#openDocs.add(docId)
  }
}

/**
 * Which event wrote an operation, for a conflict's HLC, found without decoding the
 * document's changes. First the batch just applied, through the op ranges ingest read when
 * it checked each change (change-validation.ts). Then the origin's stored events for the
 * document, searched by the start op their change headers name (change-header.ts): an
 * origin's changes to one document carry Automerge seqs 1, 2, 3… in its log order (the
 * ingest seq check), and an actor's changes hold disjoint op ranges rising with their seq,
 * so the op is in the change with the largest start op not above it — which is proven, not
 * assumed: that change must be of the op's actor, and either the next change of the actor
 * (seq + 1) starts after the op or there is no next change (its seq is the count of the
 * origin's events for the document, stored or folded). Only then the document's change
 * metadata (`getChangesMetaSince`, which turns every change of the document into a JS
 * object: the dominant cost of recording a partition heal's conflicts) and, when nothing
 * lines up (history stored before the seq check), decoding the document's events, each at
 * most once, as before.
 */
class OpWriters {
  readonly #docId: string
  readonly #doc: AnyDoc
  readonly #hint: readonly DruEvent[]
  readonly #store: EventStore
  /** Op range of each change decoded so far, by event hash. */
  readonly #ranges = new Map<string, { start: number; end: number }>()
  #metas: A.ChangeMetadata[] | undefined
  /** Per origin, the seqs of its stored events for this document, ascending. */
  #storedSeqs: Map<string, number[]> | undefined
  /** Per origin, its events for this document, stored or folded (undefined: not countable). */
  readonly #held = new Map<string, number | undefined>()
  #stored: DruEvent[] | undefined
  /** Headers of the stored events read so far, by origin and index into its {@link #seqsOf} list (null: unreadable). */
  readonly #headers = new Map<string, Map<number, { event: DruEvent; header: ChangePosition } | null>>()

  readonly #isRejected: (e: DruEvent) => boolean
  readonly #recent: RecentWriters | undefined

  constructor(
    docId: string,
    doc: AnyDoc,
    hint: readonly DruEvent[],
    store: EventStore,
    isRejected: (e: DruEvent) => boolean = () => false,
    recent?: RecentWriters,
  ) {
    this.#isRejected = isRejected
    this.#recent = recent
    this.#docId = docId
    this.#doc = doc
    this.#hint = hint
    this.#store = store
  }

  hlcOf(opId: string): string | null {
    const { counter, actor } = parseOpId(opId)
    const origin = originForActor(actor)
    const recent = this.#recent?.hlcOf(origin, counter)
    if (recent !== undefined) return recent
    for (const e of this.#hint) {
      const c = e.origin === origin ? checkedChange(e.change) : undefined
      if (c && c.startOp <= counter && counter < c.endOp) return e.hlc
    }
    const found = this.#byHeader(origin, actor, counter) ?? this.#bySeq(origin, actor, counter)
    if (found) return found.hlc
    for (const e of this.#hint) if (this.#holds(e, origin, counter)) return e.hlc
    this.#stored ??= [...this.#store.eventsForDoc(this.#docId)]
    for (const e of this.#stored) if (this.#holds(e, origin, counter)) return e.hlc
    return null
  }

  /** The event found through the change headers of the origin's stored events (see the class comment); undefined if not proven so. */
  #byHeader(origin: string, actor: string, counter: number): DruEvent | undefined {
    const seqs = this.#seqsOf(origin)
    // Largest index whose change starts at or before the op (start ops rise along the list).
    let lo = 0
    let hi = seqs.length - 1
    let found = -1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      const h = this.#headerAt(origin, seqs, mid)
      if (!h) return undefined
      if (h.header.startOp <= counter) {
        found = mid
        lo = mid + 1
      } else hi = mid - 1
    }
    if (found < 0) return undefined
    const candidate = this.#headerAt(origin, seqs, found)!
    if (candidate.header.actor !== actor) return undefined
    if (found + 1 < seqs.length) {
      const next = this.#headerAt(origin, seqs, found + 1)
      if (!next || next.header.actor !== actor || next.header.seq !== candidate.header.seq + 1) return undefined
      return next.header.startOp > counter ? candidate.event : undefined
    }
    // The last stored change: no later one exists when its seq counts all the origin's changes here.
    if (!this.#held.has(origin)) this.#held.set(origin, this.#store.eventCountForDoc(this.#docId, origin))
    return this.#held.get(origin) === candidate.header.seq ? candidate.event : undefined
  }

  #headerAt(origin: string, seqs: readonly number[], i: number): { event: DruEvent; header: ChangePosition } | null {
    let byIndex = this.#headers.get(origin)
    if (!byIndex) this.#headers.set(origin, (byIndex = new Map()))
    let h = byIndex.get(i)
    if (h === undefined) {
      const event = this.#store.getEvent(origin, seqs[i]!)
      const header = event && readChangePosition(event.change)
      h = event && header && !this.#isRejected(event) ? { event, header } : null
      byIndex.set(i, h)
    }
    return h
  }

  /** The event found through the change metadata (see the class comment), confirmed by its change hash; undefined if not found so. */
  #bySeq(origin: string, actor: string, counter: number): DruEvent | undefined {
    this.#metas ??= A.getChangesMetaSince(this.#doc, [])
    const meta = this.#metas.find((m) => m.actor === actor && m.startOp <= counter && counter <= m.maxOp)
    if (!meta) return undefined
    const seqs = this.#seqsOf(origin)
    if (!this.#held.has(origin)) this.#held.set(origin, this.#store.eventCountForDoc(this.#docId, origin))
    const held = this.#held.get(origin)
    if (held === undefined) return undefined
    const seq = seqs[meta.seq - (held - seqs.length) - 1]
    const candidate = seq === undefined ? undefined : this.#store.getEvent(origin, seq)
    // The change hash is the SHA-256 of the chunk after its magic and checksum (8 bytes):
    // equal hashes prove the candidate is the change holding the op, without decoding it.
    return candidate && changeHash(candidate.change) === meta.hash ? candidate : undefined
  }

  #seqsOf(origin: string): number[] {
    if (!this.#storedSeqs) {
      this.#storedSeqs = new Map()
      for (const { origin: o, seq } of this.#store.eventSeqsForDoc(this.#docId, 0)) {
        const list = this.#storedSeqs.get(o) ?? []
        this.#storedSeqs.set(o, list)
        list.push(seq)
      }
      for (const list of this.#storedSeqs.values()) list.sort((a, b) => a - b)
    }
    return this.#storedSeqs.get(origin) ?? []
  }

  /** True when `e` is `origin`'s and its change holds op `counter` (decoded once per event). */
  #holds(e: DruEvent, origin: string, counter: number): boolean {
    if (e.origin !== origin) return false
    let r = this.#ranges.get(e.hash)
    if (!r) {
      const d = changeHeaderOf(e.change, { ignoreChecksum: true })
      this.#ranges.set(e.hash, (r = { start: d.startOp, end: d.startOp + d.opCount }))
    }
    return r.start <= counter && counter < r.end
  }
}

/** An Automerge change's hash (hex), computed from its bytes as Automerge does. */
function changeHash(change: Uint8Array): string {
  return createHash('sha256').update(change.subarray(8)).digest('hex')
}
