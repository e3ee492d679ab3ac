import * as A from '@automerge/automerge'
import { DruError, parseDocId, type DruEvent } from '@dru/core'
import type { EventStore, StoreTx } from '@dru/store-sqlite'
import { StaleViewRepair } from './automerge-workarounds.js'
import { ENTRY_OVERHEAD, type AnyDoc, type CachedDoc, type DocCache } from './doc-cache.js'
import type { Materializer } from './materializer.js'
import { remember } from './recent-writers.js'
import { guardDocument } from './value-guard.js'

/** The function an application passes to change a document (Automerge's change callback). */
export type ChangeFn = (doc: any) => void

/** What `DocumentStore.transact` hands the callback. */
export interface DocumentTx {
  /** The SQLite connection inside the open transaction. */
  readonly db: StoreTx['db']
  /** Changes a document; the change is appended to the log in this transaction. Returns its event, or undefined for a no-op. */
  change(docId: string, fn: ChangeFn): DruEvent | undefined
}

/** What a {@link LocalWriter} writes through. */
export interface LocalWriterParts {
  readonly store: EventStore
  readonly cache: DocCache
  readonly materializer: Materializer
  /** Called after each local change (the conflict tracker rechecks the document's open conflicts). */
  readonly afterChange: (docId: string, doc: AnyDoc) => void
  readonly now: () => number
}

/**
 * The local write path: an application's change to a cached document and the event that
 * carries it commit in one store transaction. If the transaction fails, the documents it
 * touched leave the cache (they reload from the log), so the cache never shows a change
 * the log does not hold.
 */
export class LocalWriter {
  readonly #parts: LocalWriterParts
  /** Documents touched by the open transaction: evicted if it rolls back. */
  #touched: Set<string> | undefined

  constructor(parts: LocalWriterParts) {
    this.#parts = parts
  }

  /** True while a documents transaction is open. */
  get inTransaction(): boolean {
    return this.#touched !== undefined
  }

  /** See `DocumentStore.transact`. */
  transact<T>(fn: (tx: DocumentTx) => T): { result: T; events: DruEvent[] } {
    if (this.#touched) throw new DruError('INVALID_ARGUMENT', 'nested transactions are not supported')
    const touched = new Set<string>()
    this.#touched = touched
    let open = true
    const change = (stx: StoreTx, docId: string, f: ChangeFn): DruEvent | undefined => {
      // Checked before the document is touched: a late call must not change the cached copy.
      if (!open)
        throw new DruError(
          'INVALID_ARGUMENT',
          'this transaction has ended: tx.change cannot be used after transact() returned',
        )
      return this.changeIn(stx, docId, f)
    }
    try {
      return this.#parts.store.transact((stx) => fn({ db: stx.db, change: (docId, f) => change(stx, docId, f) }))
    } catch (err) {
      for (const docId of touched) this.#parts.cache.drop(docId)
      throw err
    } finally {
      this.#touched = undefined
      open = false
    }
  }

  /** See `DocumentStore.changeIn`. */
  changeIn(tx: StoreTx, docId: string, fn: ChangeFn): DruEvent | undefined {
    const { cache, materializer } = this.#parts
    parseDocId(docId)
    checkChangeFn(docId, fn)
    this.#touched?.add(docId)
    const actor = materializer.actor()
    const entry: CachedDoc = materializer.load(docId, true) ?? {
      doc: A.init({ actor }),
      bytes: ENTRY_OVERHEAD,
      unsnapshotted: 0,
      actor,
    }
    // A new incarnation writes as a new actor, so Automerge's per-actor seq is never reused.
    if (entry.actor !== actor) {
      const old = entry.doc
      entry.doc = A.clone(old, { actor })
      A.free(old)
      entry.actor = actor
    }
    let changed: { next: AnyDoc; view: StaleViewRepair }
    try {
      // Change time from the injected clock, so a seeded simulation produces identical bytes.
      changed = changeDocument(docId, entry.doc, fn, Math.floor(this.#parts.now() / 1000))
    } catch (err) {
      cache.discard(docId, entry)
      throw err
    }
    // Automerge returns the same object when the callback changed nothing.
    if (changed.next === entry.doc) return undefined
    const bytes = A.getLastLocalChange(changed.next)
    if (!bytes) return undefined
    const next = changed.view.repair(changed.next, actor, entry.counterConflict)
    if (changed.view.hit) entry.counterConflict = true
    const event = tx.append(docId, bytes)
    entry.doc = next
    entry.bytes += bytes.byteLength
    remember(entry, [event])
    entry.unsnapshotted++
    cache.insert(docId, entry)
    this.#parts.afterChange(docId, entry.doc)
    return event
  }
}

/** Refuses what is not a synchronous function, before any document is touched. */
function checkChangeFn(docId: string, fn: unknown): asserts fn is ChangeFn {
  if (typeof fn !== 'function') throw new DruError('INVALID_ARGUMENT', 'change() needs a function (doc) => { ... }')
  if (isAsyncFunction(fn)) throw asyncChangeError(docId)
}

/**
 * Runs `fn` as one Automerge change of `doc`, on a guarded view of it (value-guard.ts), with
 * the change time `time` (seconds). Returns the next document (the same object when `fn`
 * changed nothing) and the patches collected for {@link StaleViewRepair}. Throws when the
 * change is refused (INVALID_VALUE, ASYNC_CHANGE, or Automerge's own error); Automerge has
 * then rolled it back, but the caller must still drop `doc`, so a proxy the callback leaked
 * (an async continuation) writes into freed memory instead of the next change.
 */
function changeDocument(
  docId: string,
  doc: AnyDoc,
  fn: ChangeFn,
  time: number,
): { next: AnyDoc; view: StaleViewRepair } {
  const view = new StaleViewRepair()
  const values = new ValueCheck()
  let next: AnyDoc
  try {
    next = A.change(doc, { time, patchCallback: (p) => (view.collect(p), values.collect(p)) }, (d) => {
      const guarded = guardDocument(d)
      try {
        const returned: unknown = fn(guarded.doc)
        if (isThenable(returned)) {
          // Its continuation will fail on the revoked document; that failure is ours to absorb.
          returned.then(undefined, () => undefined)
          throw asyncChangeError(docId)
        }
      } finally {
        guarded.revoke()
      }
    })
  } catch (err) {
    throw invalidValueError(docId, err) ?? err
  }
  if (values.bad !== undefined)
    throw new DruError('INVALID_VALUE', `document ${docId}: ${values.bad}; nothing was committed`, {
      details: { docId },
    })
  return { next, view }
}

/**
 * Finds numbers JSON cannot carry in a change's patches: Automerge stores NaN and ±Infinity,
 * but every reader of the document (get, digests, the admin API) would see null.
 */
class ValueCheck {
  bad: string | undefined

  readonly collect = (patches: A.Patch[]): void => {
    for (const p of patches) {
      if (this.bad !== undefined) return
      const found = p.action === 'put' ? [p.value] : p.action === 'insert' ? p.values : []
      for (const v of found) {
        if (typeof v === 'number' && !Number.isFinite(v)) {
          this.bad = `${String(v)} at /${p.path.join('/')} is not a JSON number (store null or a string instead)`
          return
        }
      }
    }
  }
}

function isAsyncFunction(fn: unknown): boolean {
  const name = (fn as { constructor?: { name?: unknown } }).constructor?.name
  return name === 'AsyncFunction' || name === 'AsyncGeneratorFunction'
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    v !== null &&
    (typeof v === 'object' || typeof v === 'function') &&
    typeof (v as { then?: unknown }).then === 'function'
  )
}

function asyncChangeError(docId: string): DruError {
  return new DruError(
    'ASYNC_CHANGE',
    `change(${JSON.stringify(docId)}, fn): fn must be synchronous (it is async or returned a promise); Automerge would keep only what ran before the first await, so nothing was committed. Await first, then change.`,
    { details: { docId } },
  )
}

/** Automerge's refusal of a value (RangeError), or the stack overflow a cyclic value causes, as INVALID_VALUE. */
function invalidValueError(docId: string, err: unknown): DruError | undefined {
  if (!(err instanceof RangeError)) return undefined
  const cyclic = /call stack/i.test(err.message)
  if (!cyclic && !/^Cannot assign|^Cannot create a reference|^invalid (value|import)/.test(err.message))
    return undefined
  const why = cyclic ? 'a cyclic or too deeply nested value' : err.message.split(/\.\s/)[0]
  return new DruError('INVALID_VALUE', `document ${docId}: ${why}; nothing was committed`, {
    cause: err,
    details: { docId },
  })
}
