import * as A from '@automerge/automerge'
import { DruError, parseDocId } from '@dru/core'
import type { EventStore } from '@dru/store-sqlite'
import type { AnyDoc, CachedDoc } from './doc-cache.js'

/** One document's snapshot as shipped to a DRU below our compaction base. */
export interface DocSnapshot {
  readonly docId: string
  readonly bytes: Uint8Array
}

/**
 * The `docs` table: one Automerge snapshot per document and the log position it covers.
 * Snapshots are derived from the log (rebuildable by replay) until compaction deletes
 * events below the log's base; from then on a snapshot is the only copy of those changes,
 * so one is stored only when it provably loads back.
 */
export class SnapshotStore {
  readonly #store: EventStore
  readonly #onError: (err: unknown) => void
  readonly #stmt
  #written = 0

  /** Called after each snapshot is stored (the digest index records which snapshot its digest covers). */
  onSaved: ((docId: string, bytes: Uint8Array) => void) | undefined

  constructor(store: EventStore, onError: (err: unknown) => void) {
    this.#store = store
    this.#onError = onError
    const db = store.db
    this.#stmt = {
      get: db.prepare('select snapshot, snapshot_lsn from docs where doc_id = ?'),
      put: db.prepare(
        `insert into docs (doc_id, snapshot, snapshot_lsn, heads) values (?, ?, ?, ?)
         on conflict(doc_id) do update set snapshot = excluded.snapshot, snapshot_lsn = excluded.snapshot_lsn, heads = excluded.heads`,
      ),
      coveredLsn: db.prepare('select snapshot_lsn from docs where doc_id = ?').pluck(),
      docIds: db.prepare('select doc_id from docs where doc_id > ? order by doc_id limit ?').pluck(),
      page: db.prepare('select doc_id, snapshot from docs where doc_id > ? order by doc_id limit ?'),
      put0: db.prepare(
        `insert into docs (doc_id, snapshot, snapshot_lsn, heads) values (?, ?, 0, ?)
         on conflict(doc_id) do update set snapshot = excluded.snapshot, snapshot_lsn = 0, heads = excluded.heads`,
      ),
      remove: db.prepare('delete from docs where doc_id = ?'),
    }
  }

  /** Snapshots written since this store was created. */
  get written(): number {
    return this.#written
  }

  /** The stored snapshot of `docId` and the log position it covers, if any. */
  get(docId: string): { bytes: Buffer; lsn: number } | undefined {
    const row = this.#stmt.get.get(docId) as { snapshot: Buffer; snapshot_lsn: number } | undefined
    return row ? { bytes: row.snapshot, lsn: row.snapshot_lsn } : undefined
  }

  /** The log position `docId`'s snapshot covers; 0 without one. */
  coveredLsn(docId: string): number {
    return (this.#stmt.coveredLsn.get(docId) as number | undefined) ?? 0
  }

  /**
   * Stores `entry` (with no pending changes) as `docId`'s snapshot covering log position
   * `lsn`, and marks the entry snapshotted. False, with nothing stored, while changes wait
   * for missing dependencies or when the bytes do not load back.
   */
  save(docId: string, entry: CachedDoc, lsn: number): boolean {
    // Changes waiting for missing dependencies are not part of the state yet; wait. So are
    // changes held back by the depth screen: a snapshot past them would hide them on reload.
    if (entry.waiting !== undefined && entry.waiting.length > 0) return false
    if (A.getMissingDeps(entry.doc, []).length > 0) return false
    const heads = [...A.getHeads(entry.doc)].sort()
    const bytes = A.save(entry.doc)
    // A change made elsewhere may apply and read fine yet not survive save and load (an
    // operation naming a predecessor that never existed): such a snapshot is never stored,
    // or the document would be lost once its events are compacted away.
    if (entry.remote && !loadsBack(bytes, heads)) {
      this.#onError(
        new DruError(
          'INVALID_EVENT',
          `document ${docId} cannot be snapshotted: a change in its history does not survive save and load; its events are kept (compaction holds them back)`,
          {
            details: { docId },
          },
        ),
      )
      return false
    }
    this.#stmt.put.run(docId, bytes, lsn, JSON.stringify(heads))
    entry.remote = false
    entry.unsnapshotted = 0
    this.#written++
    this.onSaved?.(docId, bytes)
    return true
  }

  /**
   * Replaces `docId`'s snapshot by one that covers no log position (`bytes`: changes the log
   * no longer holds, proven by their folded envelopes), or removes it (`bytes` undefined):
   * the document then loads from this base plus every event of it in the log. For repairs.
   */
  replaceWithBase(docId: string, bytes: Uint8Array | undefined, heads: readonly string[]): void {
    if (bytes) this.#stmt.put0.run(docId, bytes, JSON.stringify([...heads].sort()))
    else this.#stmt.remove.run(docId)
  }

  /**
   * Every document id, in order, read page by page: documents live in the log and, once
   * compacted, possibly only here. The two sorted sources are merged without duplicates.
   */
  *docIds(pageSize = 512): Generator<string> {
    let after = ''
    for (;;) {
      const fromLog = this.#store.docIdsAfter(after, pageSize)
      const fromDocs = this.#stmt.docIds.all(after, pageSize) as string[]
      const ids = mergeSorted(fromLog, fromDocs).slice(0, pageSize)
      yield* ids
      if (ids.length < pageSize) return
      after = ids[ids.length - 1]!
    }
  }

  /**
   * A page of stored snapshots in doc id order after `afterDocId`, about `maxBytes` long
   * (at least one), for bootstrapping a DRU below our compaction base. `next` is the id to
   * continue after, undefined at the end.
   */
  page(afterDocId: string, maxBytes: number, limit = 256): { docs: DocSnapshot[]; next: string | undefined } {
    const rows = this.#stmt.page.all(afterDocId, limit) as Array<{ doc_id: string; snapshot: Buffer }>
    const docs: DocSnapshot[] = []
    let bytes = 0
    for (const row of rows) {
      if (docs.length > 0 && bytes + row.snapshot.byteLength > maxBytes) break
      docs.push({ docId: row.doc_id, bytes: row.snapshot })
      bytes += row.snapshot.byteLength
    }
    const done = docs.length === rows.length && rows.length < limit
    return { docs, next: done || docs.length === 0 ? undefined : docs[docs.length - 1]!.docId }
  }
}

/**
 * The change bytes a snapshot carries (for a bootstrap, which rebuilds the folded events
 * from them). MALFORMED when the bytes are not an Automerge document.
 */
export function changesOfSnapshot(docId: string, bytes: Uint8Array): Uint8Array[] {
  parseDocId(docId)
  let doc: AnyDoc
  try {
    doc = A.load(bytes)
  } catch (err) {
    throw new DruError(
      'MALFORMED',
      `the snapshot of ${docId} is not a valid Automerge document: ${(err as Error).message}`,
      { details: { docId } },
    )
  }
  try {
    return A.getAllChanges(doc)
  } finally {
    A.free(doc)
  }
}

/** True when `bytes` load back into a document with exactly `heads`. */
function loadsBack(bytes: Uint8Array, heads: readonly string[]): boolean {
  let doc: AnyDoc | undefined
  try {
    doc = A.load(bytes)
    const got = [...A.getHeads(doc)].sort()
    return got.length === heads.length && got.every((h, i) => h === heads[i])
  } catch {
    return false
  } finally {
    if (doc) A.free(doc)
  }
}

/**
 * Two ascending lists of ids as one ascending list, each id once. Ascending as SQLite sorts
 * text (by UTF-8 bytes), which is not JavaScript's `<` for characters beyond U+FFFF.
 */
function mergeSorted(a: readonly string[], b: readonly string[]): string[] {
  const out: string[] = []
  let i = 0
  let j = 0
  while (i < a.length && j < b.length) {
    const order = Buffer.compare(Buffer.from(a[i]!), Buffer.from(b[j]!))
    if (order <= 0) out.push(a[i++]!)
    else out.push(b[j++]!)
    if (order === 0) j++
  }
  return out.concat(a.slice(i), b.slice(j))
}
