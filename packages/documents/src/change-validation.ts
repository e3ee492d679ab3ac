import { DruError, isHex64, type DruEvent } from '@dru/core'
import type { EventStore, InboxTx } from '@dru/store-sqlite'
import { actorForOrigin } from './actor.js'
import { changeHeaderOf, type ChangeHeader } from './change-header.js'

/** Most dependencies one change may name (Automerge changes name the heads they saw). */
export const MAX_CHANGE_DEPS = 1024

/**
 * Most levels of nesting one change may create. Automerge's WASM module aborts the whole
 * process on documents nested about 1,500 deep, so a member's single change must not get
 * near that; local changes are held to the same 256 (value-guard.ts).
 */
export const MAX_CHANGE_NESTING = 256

/** What {@link checkChanges} read from a change it accepted: its Automerge seq and op counters [start, end). */
export interface CheckedChange {
  readonly seq: number
  readonly startOp: number
  readonly endOp: number
  /** The change's actor, dependencies and the objects it makes (for depth-screen.ts). */
  readonly actor: string
  readonly deps: readonly string[]
  readonly made: ChangeHeader['made']
}

/** A class whose constructor returns its argument, so that a subclass's private field is added to that object. */
class ReturnsItsArgument {
  constructor(o: object) {
    return o
  }
}

/**
 * Each change {@link checkChanges} accepted, as it read it. Reading a change is most of
 * what ingest spends in this package; the storing check ({@link ActorSeqs}) runs on the same
 * event objects moments later, and conflict recording right after the apply, and both read
 * it from here instead of decoding again.
 *
 * Kept in a private field of the change's own bytes object, which only this class can add,
 * read or write: a copy of the bytes (slice, Buffer.from, structured clone) has none, and
 * nothing that lists or compares properties sees it. (A WeakMap keyed by the bytes cost
 * about a microsecond per received change, with its share of garbage collection: most of
 * checkChanges' own time in a partition heal.)
 */
class Accepted extends ReturnsItsArgument {
  #checked: CheckedChange

  private constructor(change: Uint8Array, checked: CheckedChange) {
    super(change)
    this.#checked = checked
  }

  static set(change: Uint8Array, checked: CheckedChange): void {
    // A private field is added once per object: a change checked again has its record replaced.
    if (#checked in change) (change as unknown as Accepted).#checked = checked
    else new Accepted(change, checked)
  }

  static get(change: Uint8Array): CheckedChange | undefined {
    return #checked in change ? (change as unknown as Accepted).#checked : undefined
  }
}

/** The Automerge seq of a change: the one recorded when it was checked, or decoded now. */
function seqOf(change: Uint8Array): number {
  return Accepted.get(change)?.seq ?? changeHeaderOf(change, { ignoreChecksum: true }).seq
}

/** What this process read from a change when it checked it at ingest; undefined if it did not check it. */
export function checkedChange(change: Uint8Array): CheckedChange | undefined {
  return Accepted.get(change)
}

function invalid(e: DruEvent, why: string): DruError {
  return new DruError('INVALID_EVENT', `${e.origin}#${e.seq} (${e.docId}): ${why}`, {
    details: { origin: e.origin, seq: e.seq, docId: e.docId },
  })
}

/**
 * Checks, before anything is stored, that each remote event's change is a well-formed
 * Automerge change written by its origin: it decodes (read by change-header.ts, which
 * answers as Automerge's decode would, and also refuses a wrong checksum), its actor is the origin's actor (so a
 * member cannot write under another origin's actor, even inside its own signed events), its
 * seq is positive, and its dependencies are distinct hashes, none its own. A change that
 * fails never enters the log, so it is never forwarded either.
 */
export function checkChanges(events: readonly DruEvent[]): void {
  for (const e of events) {
    let d: ChangeHeader
    try {
      d = changeHeaderOf(e.change)
    } catch (err) {
      throw invalid(e, `the change is not an Automerge change (${(err as Error).message})`)
    }
    if (d.actor !== actorForOrigin(e.origin))
      throw invalid(e, `the change is written by actor ${d.actor.slice(0, 24)}…, not by this origin's actor`)
    if (!Number.isSafeInteger(d.seq) || d.seq < 1)
      throw invalid(e, `the change's seq ${d.seq} is not a positive integer`)
    if (d.deps.length > MAX_CHANGE_DEPS)
      throw invalid(e, `the change names ${d.deps.length} dependencies; at most ${MAX_CHANGE_DEPS}`)
    for (const dep of d.deps) if (!isHex64(dep)) throw invalid(e, 'a dependency is not a change hash')
    // Most changes name one head: no set needed to see that it is not the change itself.
    if (d.deps.length > 1) {
      const deps = new Set(d.deps)
      if (deps.size !== d.deps.length) throw invalid(e, 'the change names a dependency twice')
      if (deps.has(d.hash)) throw invalid(e, 'the change depends on itself')
    } else if (d.deps[0] === d.hash) throw invalid(e, 'the change depends on itself')
    const nesting = nestingOf(d)
    if (nesting > MAX_CHANGE_NESTING)
      throw invalid(e, `the change nests objects ${nesting} levels deep; at most ${MAX_CHANGE_NESTING}`)
    Accepted.set(e.change, {
      seq: d.seq,
      startOp: d.startOp,
      endOp: d.startOp + d.opCount,
      actor: d.actor,
      deps: d.deps,
      made: d.made,
    })
  }
}

/** How many levels of objects the change creates inside one another (objects made earlier count as level 0). */
function nestingOf(d: ChangeHeader): number {
  const made = d.made
  if (made.length <= 1) return made.length
  // Level of each object made here, by its op counter; an object is named `counter@actor`.
  const depth = new Map<number, number>()
  const byThisActor = `@${d.actor}`
  let max = 0
  for (const { index, obj } of made) {
    const parent = obj.endsWith(byThisActor) ? depth.get(Number(obj.slice(0, -byThisActor.length))) : undefined
    const level = (parent ?? 0) + 1
    depth.set(d.startOp + index, level)
    if (level > max) max = level
  }
  return max
}

/**
 * Per document and origin, the Automerge seq of the origin's last change there. An origin
 * writes with one actor, one change at a time, so its changes to a document carry seqs 1, 2,
 * 3… in its own order; a second change with a seq already used (two contents under one
 * actor and seq) would make the document unloadable everywhere. Kept in a table updated in
 * the storing transaction, so it never lags the log.
 */
export class ActorSeqs {
  readonly #store: EventStore
  readonly #stmt

  constructor(store: EventStore) {
    this.#store = store
    const db = store.db
    this.#stmt = {
      get: db.prepare('select seq from actor_seqs where doc_id = ? and origin = ?').pluck(),
      set: db.prepare(
        'insert into actor_seqs (doc_id, origin, seq) values (?, ?, ?) on conflict(doc_id, origin) do update set seq = excluded.seq',
      ),
    }
  }

  /** Inside the storing transaction: each new event's change must continue its origin's seq in its document. */
  readonly check = (events: readonly DruEvent[], _tx: InboxTx): void => {
    const last = new PairMap()
    let inBatch: PairMap | undefined
    for (const e of events) {
      let prev = last.get(e.docId, e.origin)
      if (prev === undefined) {
        prev = this.#stmt.get.get(e.docId, e.origin) as number | undefined
        if (prev === undefined) {
          // A pair seen for the first time: the origin's events the log already holds for the
          // document (stored, or folded by compaction) are exactly its changes there so far.
          const held = this.#store.eventCountForDoc(e.docId, e.origin)
          if (held === undefined) continue
          // The events just inserted by this batch are counted too: subtract them.
          inBatch ??= countPerPair(events)
          prev = held - inBatch.get(e.docId, e.origin)!
        }
      }
      const seq = seqOf(e.change)
      if (seq !== prev + 1) {
        throw invalid(
          e,
          seq <= prev
            ? `Automerge seq ${seq} of this origin's actor is already used in the document (a second change under one actor and seq)`
            : `Automerge seq ${seq} skips seq ${prev + 1}`,
        )
      }
      last.set(e.docId, e.origin, seq)
    }
    for (const [docId, byOrigin] of last.byDoc)
      for (const [origin, seq] of byOrigin) this.#stmt.set.run(docId, origin, seq)
  }
}

/**
 * A number per (document, origin) pair, as a map per document: a key joining the two strings
 * was built, flattened and hashed for every event checked, most of this check's own time.
 */
class PairMap {
  readonly byDoc = new Map<string, Map<string, number>>()

  get(docId: string, origin: string): number | undefined {
    return this.byDoc.get(docId)?.get(origin)
  }

  set(docId: string, origin: string, value: number): void {
    let byOrigin = this.byDoc.get(docId)
    if (byOrigin === undefined) this.byDoc.set(docId, (byOrigin = new Map()))
    byOrigin.set(origin, value)
  }
}

/** How many of `events` each (document, origin) pair has, counted once per batch (not once per pair seen). */
function countPerPair(events: readonly DruEvent[]): PairMap {
  const out = new PairMap()
  for (const e of events) out.set(e.docId, e.origin, (out.get(e.docId, e.origin) ?? 0) + 1)
  return out
}
