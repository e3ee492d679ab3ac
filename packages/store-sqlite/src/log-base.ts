import type Database from 'better-sqlite3'
import { DruError, type DruEvent, type VersionVector } from '@dru/core'
import type { FoldedLog } from './folded-log.js'
import type { LogView } from './log-reader.js'
import { RunBodyWriter } from './run-body.js'
import { RUN, eventsOfRun, type Head, type RunRow } from './statements.js'
import { encodeStoredHlc } from './stored-form.js'

/**
 * The compaction base: per origin, the prefix of the log folded into document snapshots.
 * Where the base may go for a floor (never past an event a handler owes, always ending at a
 * signed event), raising it, and deleting the events below it while keeping their envelopes
 * as evidence for bootstraps. The store keeps the base map; these functions change it.
 *
 * @module
 */

/** What the base needs from the store, besides what the readers need. */
export interface BaseView extends LogView {
  readonly db: Database.Database
  readonly base: Map<string, Head>
  readonly folded: FoldedLog
  getEvent(origin: string, seq: number): DruEvent | undefined
}

/** See {@link EventStore.signedFloor}; `owed`: per origin, the lowest seq a handler still owes. */
export function signedFloor(
  view: BaseView,
  floor: VersionVector,
  owed: Readonly<Record<string, number>>,
): VersionVector {
  const out: Record<string, number> = {}
  for (const origin of Object.keys(floor).sort()) {
    const head = view.heads.get(origin)
    if (!head) continue
    let seq = Math.min(floor[origin]!, head.seq)
    // An event some handler still owes stays in the log: its retry re-reads it.
    if (owed[origin] !== undefined) seq = Math.min(seq, owed[origin]! - 1)
    const base = view.base.get(origin)?.seq ?? 0
    if (seq <= base) continue
    if (view.stmt.anySigned.get(origin) !== undefined)
      seq = (view.stmt.lastSignedAtOrBelow.get(origin, seq, base) as number | null) ?? 0
    if (seq > base) out[origin] = seq
  }
  return out
}

/** Raises the base to `target` (already a {@link signedFloor}); returns the origins whose base moved. */
export function raiseBase(view: BaseView, target: VersionVector): string[] {
  const plan: Array<[string, Head]> = []
  for (const origin of Object.keys(target)) {
    const head = view.heads.get(origin)!
    const seq = target[origin]!
    let at: Head
    if (seq === head.seq) at = head
    else {
      const e = view.getEvent(origin, seq)
      if (!e)
        throw new DruError(
          'CORRUPTION',
          `${origin}#${seq} is missing from the log although the version vector claims it`,
          { details: { origin, seq } },
        )
      at = { seq, hash: e.hash, hlc: e.hlc }
    }
    plan.push([origin, at])
  }
  if (plan.length === 0) return []
  view.db
    .transaction(() => {
      for (const [origin, b] of plan) view.stmt.upsertBase.run(origin, b.seq, b.hash, b.hlc)
    })
    .immediate()
  for (const [origin, b] of plan) view.base.set(origin, b)
  return plan.map(([o]) => o)
}

/**
 * See {@link EventStore.deleteBelowBase}; `beforeDeleting` runs first, in the same transaction.
 * Whole runs at or below the base go; a run the base cuts keeps its events above it, rewritten
 * as a run starting at the first of them (same positions, its prev the last deleted hash).
 */
export function deleteBelowBase(view: BaseView, limit: number, beforeDeleting: () => void): number {
  let deleted = 0
  const gone: Array<[number, number]> = []
  view.db
    .transaction(() => {
      beforeDeleting()
      for (const [origin, b] of view.base) {
        if (deleted >= limit) break
        const runs = view.stmt.prefix.all(origin, b.seq, limit - deleted) as RunRow[]
        for (const run of runs) {
          if (deleted >= limit) break
          const stored = eventsOfRun(run)
          const events = view.events.eventsOf(run, 0, stored.length, stored)
          const first = run[RUN.seq]
          // Events of this run at or below the base, at most what the limit leaves.
          const cut = Math.min(events.length, b.seq - first + 1, limit - deleted)
          for (let i = 0; i < cut; i++) {
            view.folded.keep(events[i]!)
            view.docIndex.deleting(stored[i]!.doc, stored[i]!.lsn)
            gone.push([stored[i]!.doc, stored[i]!.lsn])
          }
          view.stmt.deleteRun.run(run[RUN.lsn])
          if (cut < events.length) {
            const body = new RunBodyWriter()
            for (let i = cut; i < events.length; i++) {
              const e = events[i]!
              body.add(stored[i]!.doc, encodeStoredHlc(e.hlc, e.origin), e.change, e.hash)
            }
            const kept = body.take()
            view.stmt.insertRun.run(
              run[RUN.lsn] + cut,
              run[RUN.originId],
              first + cut,
              events.length - cut,
              events[cut]!.prev,
              kept.body,
              kept.hashes,
              run[RUN.receivedAt],
            )
          }
          view.stmt.deleteSigsTo.run(run[RUN.originId], first + cut - 1)
          deleted += cut
        }
      }
    })
    .immediate()
  view.docIndex.deleted(gone)
  return deleted
}
