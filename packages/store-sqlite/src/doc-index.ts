import type Database from 'better-sqlite3'
import { docsOfRunOrNone } from './run-body.js'
import { DictionaryNames } from './stored-form.js'
import { MetaKey, type MetaTable } from './meta.js'

/**
 * Which events each document has, kept so that storing an event does not touch a random
 * index page. A per-event index on the document made appends and catch-up several times
 * slower than the row insert itself: the events of a batch, spread over many documents,
 * each dirtied an index page of its own, written again at every commit.
 *
 * `doc_events (doc, lsn, origin_id)` holds every stored event up to position {@link upto};
 * the events stored after it (the tail) are indexed in memory and rebuilt from `log` at open.
 * When the tail reaches its bound in events ({@link DEFAULT_DOC_INDEX_MERGE_EVERY}) or in
 * documents ({@link DEFAULT_DOC_INDEX_MERGE_DOCS}), one transaction writes it into
 * `doc_events` in index order, so each index page is written once per merge instead of once
 * per commit. A merge
 * still rewrites every page holding one of its documents, and those pages grow with the log:
 * what an event pays is the pages touched divided by the events merged, so the bound in events
 * is large (at 1M events over 10,000 documents, 2.1 µs an event merging every 32,768 events,
 * 0.7 merging every 262,144). Readers see both parts in one synchronous call, so a merge
 * between two pages of a read loses nothing; events of the open transaction are visible to
 * reads inside it (validators count them) and dropped again if it rolls back.
 *
 * @module
 */

/**
 * Tail size (events) at which the in-memory part is merged into `doc_events`: 16 bytes an
 * event (two numbers), up to half again in arrays' spare room: 4–6 MiB at this bound.
 */
export const DEFAULT_DOC_INDEX_MERGE_EVERY = 262_144

/**
 * Documents in the tail at which it is merged, whatever its size in events: each document
 * costs the tail an object (~200 bytes), and the merge writes about a page per document.
 */
export const DEFAULT_DOC_INDEX_MERGE_DOCS = 32_768

/**
 * Orders strings as SQLite orders text (memcmp of UTF-8, which is code point order): UTF-16
 * code units agree except that surrogates (code points above U+FFFF) sort after U+E000–U+FFFF.
 * No Buffer per key: a small Buffer is a slice of a shared 8 KiB slab, and thousands of kept
 * slices would keep thousands of slabs alive.
 */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x !== y) return utf8Rank(x) - utf8Rank(y)
  }
  return a.length - b.length
}

function utf8Rank(unit: number): number {
  if (unit < 0xd800) return unit
  return unit >= 0xe000 ? unit - 0x800 : unit + 0x2000
}

/**
 * Index in flat (lsn, origin id) pairs, ascending by lsn, of the first pair after `lsn`: a
 * binary search, so that paging through a document with many events in the tail is not
 * quadratic in them.
 */
function firstAfter(entries: readonly number[], lsn: number): number {
  let lo = 0
  let hi = entries.length / 2
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (entries[mid * 2]! > lsn) hi = mid
    else lo = mid + 1
  }
  return lo * 2
}

/** Index rows per statement when the tail is merged (3 values each, far below SQLite's limit). */
const MERGE_ROWS = 64

interface TailDoc {
  readonly docId: string
  /** Flat pairs: lsn, origin id; ascending lsn. */
  readonly entries: number[]
}

export class DocIndex {
  /** `doc_events` is complete up to this position. */
  #upto: number
  readonly #tail = new Map<number, TailDoc>()
  #tailSize = 0
  /**
   * The lowest position the open writing transaction gave an entry (Infinity when none): a
   * rollback drops every entry from it on, which are the newest of their documents. Kept
   * instead of a list of the documents touched, which grew by one per stored event.
   */
  #pendingFrom = Number.POSITIVE_INFINITY
  /**
   * The document last given an entry and its tail: a batch often stores a run of events of
   * one document, and then the map is not probed again. Forgotten whenever a tail may leave the map.
   */
  #lastDoc = -1
  #lastTail: TailDoc | undefined
  readonly #mergeEvery: number
  readonly #mergeDocs: number
  readonly #db: Database.Database
  readonly #meta: MetaTable
  readonly #stmt

  constructor(
    db: Database.Database,
    meta: MetaTable,
    mergeEvery = DEFAULT_DOC_INDEX_MERGE_EVERY,
    mergeDocs = DEFAULT_DOC_INDEX_MERGE_DOCS,
  ) {
    this.#db = db
    this.#meta = meta
    this.#mergeEvery = mergeEvery
    this.#mergeDocs = mergeDocs
    this.#stmt = {
      merged: db.prepare('select lsn from doc_events where doc = ? and lsn > ? order by lsn limit ?').pluck(),
      countMerged: db.prepare('select count(*) from doc_events where doc = ? and origin_id = ?').pluck(),
      mergedDocs: db
        .prepare(
          'select d.doc_id from doc_ids d where d.doc_id > ? and exists (select 1 from doc_events x where x.doc = d.id) order by d.doc_id limit ?',
        )
        .pluck(),
      mergeMany: db.prepare(
        `insert or ignore into doc_events (doc, lsn, origin_id) values ${new Array<string>(MERGE_ROWS).fill('(?, ?, ?)').join(', ')}`,
      ),
      mergeOne: db.prepare('insert or ignore into doc_events (doc, lsn, origin_id) values (?, ?, ?)'),
      maxLsn: db.prepare('select lsn + n - 1 from runs order by lsn desc limit 1').pluck(),
      // Runs holding positions after ?: from the one holding the next position on.
      tail: db
        .prepare(
          'select lsn, n, origin_id, body from runs where lsn >= coalesce((select max(lsn) from runs where lsn <= ? + 1), 0) order by lsn',
        )
        .raw(),
      forget: db.prepare('delete from doc_events where doc = ? and lsn = ?'),
    }
    this.#upto = Number(meta.get(MetaKey.DOC_INDEX_LSN) ?? 0)
    // A damaged run indexes no document: reading its events names it (CORRUPTION).
    const names = new DictionaryNames(db, 'doc_ids', 'doc_id')
    for (const [lsn, n, originId, body] of this.#stmt.tail.iterate(this.#upto) as Iterable<
      [number, number, number, Buffer]
    >) {
      const docs = docsOfRunOrNone(body, n)
      for (let i = 0; i < docs.length; i++)
        if (lsn + i > this.#upto) this.#add(docs[i]!, lsn + i, originId, names.textOf(docs[i]!) ?? '')
    }
  }

  /** Position up to which `doc_events` is complete. */
  get upto(): number {
    return this.#upto
  }

  /** Events in the in-memory tail. */
  get tailSize(): number {
    return this.#tailSize
  }

  /** An event stored by the open transaction (at an lsn above every one indexed so far). */
  stored(doc: number, lsn: number, originId: number, docId: string): void {
    if (lsn < this.#pendingFrom) this.#pendingFrom = lsn
    this.#add(doc, lsn, originId, docId)
  }

  /** The writing transaction committed; merges the tail when it reached its bound. */
  commit(): void {
    this.#pendingFrom = Number.POSITIVE_INFINITY
    if (this.#tailSize >= this.#mergeEvery || this.#tail.size >= this.#mergeDocs) this.merge()
  }

  /** The writing transaction rolled back: its entries (the newest of their documents) go. */
  rollback(): void {
    const from = this.#pendingFrom
    if (from === Number.POSITIVE_INFINITY) return
    this.#forgetLast()
    // Rare and bounded by the tail: one pass over its documents instead of a record per event.
    for (const [doc, t] of this.#tail) {
      const entries = t.entries
      let n = entries.length
      while (n > 0 && entries[n - 2]! >= from) n -= 2
      if (n === entries.length) continue
      this.#tailSize -= (entries.length - n) / 2
      if (n === 0) this.#tail.delete(doc)
      else entries.length = n
    }
    this.#pendingFrom = Number.POSITIVE_INFINITY
  }

  /**
   * Moves the tail into `doc_events`, in one transaction of its own. A failure (a full
   * disk) leaves the tail in memory, complete, for the next attempt; readers are unaffected.
   */
  merge(): void {
    if (this.#tailSize === 0) return
    let upto = this.#upto
    try {
      // Read inside the try: a merge runs after a commit landed and at close, where a
      // failing read must leave the tail as a failing write does, not escape them.
      upto = Math.max(upto, Number(this.#stmt.maxLsn.get() ?? 0))
      this.#db
        .transaction(() => {
          this.#insertTail()
          this.#meta.set(MetaKey.DOC_INDEX_LSN, upto)
        })
        .immediate()
    } catch {
      return
    }
    this.#upto = upto
    this.#forgetLast()
    this.#tail.clear()
    this.#tailSize = 0
  }

  /**
   * Writes the tail's entries in index order (document, then position), 64 rows a statement.
   * From memory rather than `insert … select … from log`: reading the tail's events back read
   * every page of them (change bytes included) through the page cache, a third of a merge's
   * time; the tail is what readers already trust for these positions.
   */
  #insertTail(): void {
    const values: number[] = []
    const docs = [...this.#tail.keys()].sort((a, b) => a - b)
    for (const doc of docs) {
      const entries = this.#tail.get(doc)!.entries
      for (let i = 0; i < entries.length; i += 2) {
        values.push(doc, entries[i]!, entries[i + 1]!)
        if (values.length === MERGE_ROWS * 3) {
          this.#stmt.mergeMany.run(values)
          values.length = 0
        }
      }
    }
    for (let i = 0; i < values.length; i += 3) this.#stmt.mergeOne.run(values[i], values[i + 1], values[i + 2])
  }

  /** Inside compaction's transaction: the event at `lsn` leaves the log. */
  deleting(doc: number, lsn: number): void {
    if (lsn <= this.#upto) this.#stmt.forget.run(doc, lsn)
  }

  /** Compaction committed: its deleted positions leave the tail (readers skip them until then). */
  deleted(entries: ReadonlyArray<readonly [number, number]>): void {
    this.#forgetLast()
    // Grouped by document, each document's tail filtered once: one search and splice per
    // deleted event was quadratic in a document's tail (24.6 s to compact 150,000 events of one
    // document, scratch).
    const gone = new Map<number, Set<number>>()
    for (const [doc, lsn] of entries) {
      if (!this.#tail.has(doc)) continue
      let lsns = gone.get(doc)
      if (!lsns) gone.set(doc, (lsns = new Set()))
      lsns.add(lsn)
    }
    for (const [doc, lsns] of gone) {
      const t = this.#tail.get(doc)!
      const kept: number[] = []
      for (let i = 0; i < t.entries.length; i += 2) {
        if (!lsns.has(t.entries[i]!)) kept.push(t.entries[i]!, t.entries[i + 1]!)
      }
      this.#tailSize -= (t.entries.length - kept.length) / 2
      if (kept.length === 0) this.#tail.delete(doc)
      else this.#tail.set(doc, { docId: t.docId, entries: kept })
    }
  }

  /** Up to `limit` positions of document `doc` after `afterLsn`, ascending (both parts). */
  lsnsAfter(doc: number, afterLsn: number, limit = Number.POSITIVE_INFINITY): number[] {
    const out =
      afterLsn < this.#upto
        ? (this.#stmt.merged.all(doc, afterLsn, Number.isFinite(limit) ? limit : -1) as number[])
        : []
    const t = this.#tail.get(doc)
    if (t) {
      const entries = t.entries
      for (let i = firstAfter(entries, afterLsn); i < entries.length && out.length < limit; i += 2)
        out.push(entries[i]!)
    }
    return out
  }

  /** How many events of document `doc` by origin `originId` are stored (both parts). */
  count(doc: number, originId: number): number {
    let n = this.#stmt.countMerged.get(doc, originId) as number
    const t = this.#tail.get(doc)
    if (t) for (let i = 1; i < t.entries.length; i += 2) if (t.entries[i] === originId) n++
    return n
  }

  /** Document ids with a stored event, after `afterDocId` in SQLite's text order, at most `limit`. */
  docIdsAfter(afterDocId: string, limit: number): string[] {
    const merged = this.#stmt.mergedDocs.all(afterDocId, limit) as string[]
    const fromTail: string[] = []
    for (const t of this.#tail.values()) if (compareUtf8(t.docId, afterDocId) > 0) fromTail.push(t.docId)
    if (fromTail.length === 0) return merged
    fromTail.sort(compareUtf8)
    const out: string[] = []
    let i = 0
    let j = 0
    while (out.length < limit && (i < merged.length || j < fromTail.length)) {
      const c = i >= merged.length ? 1 : j >= fromTail.length ? -1 : compareUtf8(merged[i]!, fromTail[j]!)
      if (c <= 0) {
        out.push(merged[i++]!)
        if (c === 0) j++
      } else out.push(fromTail[j++]!)
    }
    return out
  }

  #add(doc: number, lsn: number, originId: number, docId: string): void {
    let t = doc === this.#lastDoc ? this.#lastTail : this.#tail.get(doc)
    if (t) t.entries.push(lsn, originId)
    else this.#tail.set(doc, (t = { docId, entries: [lsn, originId] }))
    this.#tailSize++
    this.#lastDoc = doc
    this.#lastTail = t
  }

  #forgetLast(): void {
    this.#lastDoc = -1
    this.#lastTail = undefined
  }
}
