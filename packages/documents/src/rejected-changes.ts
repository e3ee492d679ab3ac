import type { DruEvent } from '@dru/core'
import type { EventStore } from '@dru/store-sqlite'

/** One stored change Automerge refused to apply. */
export interface RejectedChange {
  readonly origin: string
  readonly seq: number
  readonly docId: string
  readonly reason: string
  readonly at: number
}

/**
 * Stored events whose change Automerge refuses to apply — well-formed, correctly signed and
 * of the right actor, yet naming an object that does not exist, say. Without this, one such
 * change from any member would make its document unreadable on every DRU. Whether Automerge
 * refuses a change depends only on the change and its causal past, so every DRU refuses the
 * same ones and skipping them keeps the DRUs' documents equal. The events stay in the log
 * (the logs stay equal too); the table only records the decision, for operators and so that a
 * reload does not try again.
 */
export class RejectedChanges {
  readonly #keys = new Set<string>()
  readonly #stmt

  constructor(
    store: EventStore,
    readonly now: () => number,
  ) {
    const db = store.db
    this.#stmt = {
      all: db.prepare('select origin, seq from rejected_changes'),
      add: db.prepare(
        'insert into rejected_changes (origin, seq, doc_id, reason, at) values (?, ?, ?, ?, ?) on conflict do nothing',
      ),
      count: db.prepare('select count(*) from rejected_changes').pluck(),
      recent: db.prepare('select origin, seq, doc_id, reason, at from rejected_changes order by at desc limit ?'),
    }
    for (const r of this.#stmt.all.all() as Array<{ origin: string; seq: number }>)
      this.#keys.add(`${r.origin}#${r.seq}`)
  }

  has(e: Pick<DruEvent, 'origin' | 'seq'>): boolean {
    // Almost always empty: skip building a key per event applied.
    return this.#keys.size > 0 && this.#keys.has(`${e.origin}#${e.seq}`)
  }

  /** Records the refusal; false when it was already recorded. */
  add(e: DruEvent, cause: unknown): boolean {
    const key = `${e.origin}#${e.seq}`
    if (this.#keys.has(key)) return false
    this.#keys.add(key)
    try {
      this.#stmt.add.run(e.origin, e.seq, e.docId, String((cause as Error)?.message ?? cause).slice(0, 500), this.now())
    } catch {
      // Kept in memory even if it cannot be recorded (a full disk): it is refused again on reload.
    }
    return true
  }

  /** How many there are, and the latest `limit` of them. */
  list(limit = 20): { count: number; changes: RejectedChange[] } {
    const rows = this.#stmt.recent.all(limit) as Array<{
      origin: string
      seq: number
      doc_id: string
      reason: string
      at: number
    }>
    return {
      count: this.#stmt.count.get() as number,
      changes: rows.map((r) => ({ origin: r.origin, seq: r.seq, docId: r.doc_id, reason: r.reason, at: r.at })),
    }
  }
}
