import type { VersionVector } from '@dru/core'
import type { EventStore } from '@dru/store-sqlite'

/** Progress of a compaction, yielded between steps. */
export interface CompactProgress {
  /** `snapshot`: covering documents with snapshots; `delete`: removing events below the new base. */
  readonly phase: 'snapshot' | 'delete'
  readonly docsScanned: number
  readonly snapshotsWritten: number
  readonly eventsDeleted: number
}

/** What a compaction did, returned when it ends. */
export interface CompactResult {
  /** The base the log now has: per origin, events up to this seq live only in snapshots. */
  readonly base: VersionVector
  readonly docsScanned: number
  readonly snapshotsWritten: number
  readonly eventsDeleted: number
  /** Origins whose floor was lowered because a document could not be snapshotted (changes waiting for dependencies). */
  readonly heldBack: readonly string[]
}

/** Pacing of a compaction. */
export interface CompactOptions {
  /** Events deleted per transaction. Default 10,000. */
  readonly deleteChunk?: number
  /** Documents scanned between two progress reports. Default 256. */
  readonly progressEvery?: number
}

/** What compaction needs from the documents. */
export interface CompactionDocs {
  /** Every document id, in order. */
  docIds(): Iterable<string>
  /** The log position a document's snapshot covers; 0 when it is no cover (none, or the document is isolated). */
  coveredLsn(docId: string): number
  /** Writes a snapshot of the document now; false if it cannot be. */
  snapshotNow(docId: string): boolean
}

/**
 * Folds the events at or below `floor` (per origin, clamped to what the log holds) into
 * document snapshots and deletes them from the log. Every document with such an event
 * not yet covered by its snapshot gets a new one; a document that cannot be snapshotted
 * (changes waiting for missing dependencies) lowers the floor of the origins concerned.
 * Then the log's base rises to the floor and the events below it are deleted in chunks.
 * Snapshots commit before the base moves and the base before any delete, so a crash at
 * any point leaves a consistent log; running it again finishes the work.
 *
 * A generator: it yields progress between steps, so a caller can give the event loop a
 * turn (sync, admin) while a large log is compacted. Memory: one document at a time.
 */
export function* compactDocuments(
  store: EventStore,
  docs: CompactionDocs,
  floor: VersionVector,
  options: CompactOptions = {},
): Generator<CompactProgress, CompactResult, undefined> {
  const deleteChunk = options.deleteChunk ?? 10_000
  const progressEvery = options.progressEvery ?? 256
  const vv = store.vv()
  const base = store.baseVv()
  const target: Record<string, number> = {}
  for (const origin of Object.keys(floor)) {
    const seq = Math.min(floor[origin]!, vv[origin] ?? 0)
    if (seq > (base[origin] ?? 0)) target[origin] = seq
  }
  const heldBack = new Set<string>()
  let docsScanned = 0
  let snapshotsWritten = 0
  let eventsDeleted = 0
  const progress = (phase: CompactProgress['phase']): CompactProgress => ({
    phase,
    docsScanned,
    snapshotsWritten,
    eventsDeleted,
  })
  // Repeat the pass while a document lowered the floor: documents already covered are
  // skipped quickly, and every lowering strictly decreases a seq, so this ends.
  for (let lowered = Object.keys(target).length > 0; lowered;) {
    lowered = false
    for (const docId of docs.docIds()) {
      docsScanned++
      if (docsScanned % progressEvery === 0) yield progress('snapshot')
      const uncovered = store
        .eventSeqsForDoc(docId, docs.coveredLsn(docId))
        .filter((e) => e.seq <= (target[e.origin] ?? 0))
      if (uncovered.length === 0) continue
      if (docs.snapshotNow(docId)) {
        snapshotsWritten++
        continue
      }
      for (const e of uncovered) {
        if (e.seq <= (target[e.origin] ?? 0)) {
          target[e.origin] = e.seq - 1
          heldBack.add(e.origin)
          lowered = true
        }
      }
    }
  }
  store.raiseBase(target)
  yield progress('delete')
  for (;;) {
    const n = store.deleteBelowBase(deleteChunk)
    eventsDeleted += n
    if (n < deleteChunk) break
    yield progress('delete')
  }
  return { base: store.baseVv(), docsScanned, snapshotsWritten, eventsDeleted, heldBack: [...heldBack].sort() }
}
