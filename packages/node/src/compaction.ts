import { countMissing, meetVv, mergeVv, normalizeVv, parseOrigin, type VersionVector } from '@dru/core'
import type { DocumentStore } from '@dru/documents'
import type { ProgressFn } from './operations.js'

/** A member of the cluster as compaction sees it: what it has durably acknowledged to us. */
export interface MemberAck {
  readonly id: string
  readonly acked: VersionVector
}

/** The causal-stability floor and who holds it back. */
export interface CompactionFloor {
  /** Per origin, the highest seq every member (and this DRU) durably holds. */
  readonly floor: VersionVector
  /** Members whose acknowledged vector is below ours (decommission a region lost for good). */
  readonly waitingFor: readonly string[]
}

/** What {@link Dru.compact} did. */
export interface CompactReport {
  readonly floor: VersionVector
  /** The log's base afterwards: per origin, events up to here live only in document snapshots. */
  readonly base: VersionVector
  readonly eventsRemoved: number
  readonly docsSnapshotted: number
  readonly docsScanned: number
  readonly eventsBefore: number
  readonly eventsAfter: number
  /** Members whose acknowledgements held the floor below our own vector. */
  readonly waitingFor: readonly string[]
  /** Origins whose floor was lowered because a document had changes waiting for dependencies. */
  readonly heldBack: readonly string[]
  readonly durationMs: number
}

/**
 * The floor below which events may leave the log: the meet of our own vector and every
 * current member's acknowledged vector. A member that never acknowledged anything holds
 * the floor at zero, so adding a DRU's key stops compaction until it has caught up. A
 * member's own events count as acknowledged by it: it held them durably when it wrote
 * them, and an ack frame only follows a remote commit, so it may never say so.
 */
export function compactionFloor(own: VersionVector, members: readonly MemberAck[]): CompactionFloor {
  const acked = members.map((m) => ({ id: m.id, vv: mergeVv(m.acked, writtenBy(m.id, own)) }))
  const floor = normalizeVv(meetVv([own, ...acked.map((m) => m.vv)]))
  const waitingFor = acked.filter((m) => countMissing(own, m.vv) > 0).map((m) => m.id)
  return { floor, waitingFor }
}

/** The part of `vv` that DRU `id` wrote (its origins, any incarnation). */
function writtenBy(id: string, vv: VersionVector): VersionVector {
  return Object.fromEntries(Object.entries(vv).filter(([origin]) => parseOrigin(origin).druId === id))
}

/**
 * Runs {@link DocumentStore.compact} to the end, giving the event loop a turn between
 * steps (sync and the admin API keep answering) and reporting progress.
 */
export async function runCompaction(
  documents: DocumentStore,
  floor: CompactionFloor,
  progress: ProgressFn,
  now: () => number = Date.now,
): Promise<CompactReport> {
  const started = now()
  const eventsBefore = documents.store.count()
  const steps = documents.compact(floor.floor)
  for (;;) {
    const step = steps.next()
    if (step.done) {
      const r = step.value
      progress({ phase: 'delete', done: r.eventsDeleted, total: r.eventsDeleted, unit: 'events' })
      return {
        floor: floor.floor,
        base: r.base,
        eventsRemoved: r.eventsDeleted,
        docsSnapshotted: r.snapshotsWritten,
        docsScanned: r.docsScanned,
        eventsBefore,
        eventsAfter: documents.store.count(),
        waitingFor: floor.waitingFor,
        heldBack: r.heldBack,
        durationMs: now() - started,
      }
    }
    const p = step.value
    if (p.phase === 'snapshot') progress({ phase: 'snapshot', done: p.docsScanned, unit: 'docs' })
    else progress({ phase: 'delete', done: p.eventsDeleted, total: eventsBefore, unit: 'events' })
    await new Promise<void>((resolve) => setImmediate(resolve))
  }
}
