import { createHash } from 'node:crypto'
import type Database from 'better-sqlite3'
import { DruError, GENESIS_HASH, sealEvent, type DruEvent, type FoldedEnvelope, type Origin } from '@dru/core'

/** sha256 of a change's bytes: how a folded envelope names the change a snapshot carries. */
export function changeHash(change: Uint8Array): Buffer {
  return createHash('sha256').update(change).digest()
}

/**
 * The evidence compaction keeps, and the staging a bootstrap uses.
 *
 * Compaction deletes events whose changes live on in document snapshots, but keeps each
 * one's envelope (origin, seq, HLC, document, sha256 of the change, signature). A DRU below
 * our compaction base receives the snapshots (which carry the change bytes) and the
 * envelopes, stages every change by its hash, rebuilds each folded event and checks it like
 * any event: its hash chain up to a signed event of its origin. So a bootstrap proves what
 * it delivers, and a peer cannot slip unsigned content into a document through one.
 */
export class FoldedLog {
  readonly #stmt

  constructor(db: Database.Database) {
    this.#stmt = {
      insert: db.prepare(
        'insert or ignore into folded (origin, seq, hlc, doc_id, change_hash, sig) values (?, ?, ?, ?, ?, ?)',
      ),
      range: db.prepare(
        'select origin, seq, hlc, doc_id, change_hash, sig from folded where origin = ? and seq >= ? order by seq limit ?',
      ),
      stage: db.prepare('insert or ignore into bootstrap_stage (change_hash, doc_id, change) values (?, ?, ?)'),
      staged: db.prepare('select doc_id, change from bootstrap_stage where change_hash = ?'),
      clearStage: db.prepare('delete from bootstrap_stage'),
      docHashes: db.prepare('select change_hash from folded where doc_id = ?').pluck(),
    }
  }

  /** Keeps the envelope of an event about to be deleted by compaction (inside its transaction). */
  keep(e: DruEvent): void {
    this.#stmt.insert.run(e.origin, e.seq, e.hlc, e.docId, changeHash(e.change), e.sig ?? null)
  }

  /** Envelopes of `origin` from `fromSeq`, in seq order. */
  range(origin: string, fromSeq: number, limit: number): FoldedEnvelope[] {
    const rows = this.#stmt.range.all(origin, fromSeq, limit) as Array<{
      origin: string
      seq: number
      hlc: string
      doc_id: string
      change_hash: Buffer
      sig: Buffer | null
    }>
    return rows.map((r) => ({
      origin: r.origin as Origin,
      seq: r.seq,
      hlc: r.hlc,
      docId: r.doc_id,
      changeHash: r.change_hash,
      ...(r.sig ? { sig: r.sig } : {}),
    }))
  }

  /**
   * sha256 (hex) of every folded change of one document: what a snapshot may carry beyond
   * the log. A scan of the envelopes (no index by document): for repairs, not hot paths.
   */
  changeHashesOf(docId: string): Set<string> {
    return new Set((this.#stmt.docHashes.all(docId) as Buffer[]).map((h) => h.toString('hex')))
  }

  /** Stages a document's change bytes by hash (idempotent). */
  stage(docId: string, changes: readonly Uint8Array[]): void {
    for (const c of changes) this.#stmt.stage.run(changeHash(c), docId, c)
  }

  /**
   * Rebuilds events from envelopes and staged changes. `headOf(origin)` gives what the log
   * holds; envelopes at or below it are skipped (we hold those events already), a hole
   * after it ends that origin's rebuild there (the caller sees the gap). MALFORMED when a change
   * is missing from the stage or staged for another document.
   */
  rebuild(
    envelopes: readonly FoldedEnvelope[],
    headOf: (origin: string) => { seq: number; hash: string } | undefined,
  ): DruEvent[] {
    const out: DruEvent[] = []
    const chain = new Map<string, { seq: number; hash: string }>()
    const stopped = new Set<string>()
    for (const env of envelopes) {
      if (stopped.has(env.origin)) continue
      const head = chain.get(env.origin) ?? headOf(env.origin) ?? { seq: 0, hash: GENESIS_HASH }
      if (env.seq <= head.seq) continue
      if (env.seq !== head.seq + 1) {
        stopped.add(env.origin)
        continue
      }
      const row = this.#stmt.staged.get(Buffer.from(env.changeHash)) as { doc_id: string; change: Buffer } | undefined
      if (!row || row.doc_id !== env.docId) {
        throw new DruError(
          'MALFORMED',
          `folded ${env.origin}#${env.seq}: no staged change of ${env.docId} with its hash; the bootstrap's snapshots do not carry it`,
          {
            details: { origin: env.origin, seq: env.seq },
          },
        )
      }
      const sealed = sealEvent({
        origin: env.origin,
        seq: env.seq,
        hlc: env.hlc,
        docId: env.docId,
        change: row.change,
        prev: head.hash,
      })
      const event: DruEvent = env.sig ? { ...sealed, sig: env.sig } : sealed
      out.push(event)
      chain.set(env.origin, { seq: env.seq, hash: event.hash })
    }
    return out
  }

  clearStage(): void {
    this.#stmt.clearStage.run()
  }
}
