import { DruError } from '@dru/core'
import type { EventStore } from '@dru/store-sqlite'

/** A document that could not be materialised, and why. */
export interface IsolatedDocument {
  readonly docId: string
  readonly reason: string
  readonly at: number
}

/** How many isolated documents `DocumentStore.isolated` and digests list by name. */
export const MAX_ISOLATED_LISTED = 100

/**
 * Documents whose history Automerge refused to load (table `isolated_docs`, mirrored in
 * memory): reading one fails with DOCUMENT_ISOLATED, every other document keeps working.
 */
export class IsolatedDocs {
  readonly #docs = new Map<string, IsolatedDocument>()
  readonly #now: () => number
  readonly #stmt

  constructor(store: EventStore, now: () => number) {
    this.#now = now
    const db = store.db
    this.#stmt = {
      add: db.prepare(
        'insert into isolated_docs (doc_id, reason, at) values (?, ?, ?) on conflict(doc_id) do update set reason = excluded.reason',
      ),
      remove: db.prepare('delete from isolated_docs where doc_id = ?'),
      all: db.prepare('select doc_id, reason, at from isolated_docs order by doc_id'),
    }
    for (const r of this.#stmt.all.all() as Array<{ doc_id: string; reason: string; at: number }>) {
      this.#docs.set(r.doc_id, { docId: r.doc_id, reason: r.reason, at: r.at })
    }
  }

  has(docId: string): boolean {
    return this.#docs.has(docId)
  }

  get(docId: string): IsolatedDocument | undefined {
    return this.#docs.get(docId)
  }

  /** Isolates `docId` because of `cause`. */
  add(docId: string, cause: unknown): IsolatedDocument {
    const doc: IsolatedDocument = {
      docId,
      reason: String((cause as Error)?.message ?? cause).slice(0, 500),
      at: this.#now(),
    }
    this.#docs.set(docId, doc)
    try {
      this.#stmt.add.run(docId, doc.reason, doc.at)
    } catch {
      // Kept in memory even if it cannot be recorded (e.g. a full disk): reads still fail cleanly.
    }
    return doc
  }

  /** Lifts the isolation; false when `docId` was not isolated. */
  remove(docId: string): boolean {
    if (!this.#docs.delete(docId)) return false
    this.#stmt.remove.run(docId)
    return true
  }

  /** How many there are, and the first {@link MAX_ISOLATED_LISTED} by doc id. */
  list(): { count: number; docs: IsolatedDocument[] } {
    return { count: this.#docs.size, docs: [...this.#docs.values()].slice(0, MAX_ISOLATED_LISTED) }
  }
}

/** The error every read of an isolated document gets. */
export function isolatedError(doc: IsolatedDocument): DruError {
  return new DruError(
    'DOCUMENT_ISOLATED',
    `document ${doc.docId} is isolated: its history cannot be materialised (${doc.reason}); the rest of this DRU works`,
    {
      details: { docId: doc.docId },
    },
  )
}
