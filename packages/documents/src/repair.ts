import * as A from '@automerge/automerge'
import { DruError, type DocId } from '@dru/core'
import { changeHash, type EventStore } from '@dru/store-sqlite'
import type { AnyDoc } from './doc-cache.js'
import { changesOfSnapshot, type SnapshotStore } from './snapshot-store.js'

/**
 * Rebuilding one document from its log, for `dru repair`: what its materialised state may
 * hold is only what the log proves — its events, and the changes compaction folded away
 * whose envelopes (sha256 of each change) the log keeps. The stored snapshot is read only
 * for those folded changes; anything else in it (a change no event and no envelope names) is
 * dropped. The cached state is discarded by the caller.
 *
 * @module
 */

/** What a rebuild kept and dropped of the old snapshot. */
export interface RebuildBase {
  /** Changes kept from the old snapshot because compaction folded them (proven by envelope). */
  readonly foldedChanges: number
  /** Changes of the old snapshot that neither an event nor a folded envelope proves: dropped. */
  readonly droppedChanges: number
  /** The old snapshot could not be read at all (its folded changes, if any, are lost here). */
  readonly unreadableSnapshot: boolean
  /** Events of the document in the log, replayed on top of the base. */
  readonly logEvents: number
}

/**
 * Replaces `docId`'s snapshot by a base holding only its proven folded changes (none: the
 * snapshot is removed), so the next load replays every event of the document in the log on
 * top of it. NOT_FOUND when neither the log nor a snapshot knows the document.
 */
export function rebuildBase(store: EventStore, snapshots: SnapshotStore, docId: DocId): RebuildBase {
  const snap = snapshots.get(docId)
  const inLog = new Set<string>()
  let logEvents = 0
  for (const e of store.eventsForDoc(docId, 0)) {
    inLog.add(changeHash(e.change).toString('hex'))
    logEvents++
  }
  if (!snap && logEvents === 0) throw new DruError('NOT_FOUND', `no document ${docId}`, { details: { docId } })
  let foldedChanges = 0
  let droppedChanges = 0
  let unreadableSnapshot = false
  let base: { bytes: Uint8Array; heads: string[] } | undefined
  if (snap) {
    let changes: Uint8Array[] = []
    try {
      changes = changesOfSnapshot(docId, snap.bytes)
    } catch {
      unreadableSnapshot = true
    }
    const proven = changes.some((c) => !inLog.has(changeHash(c).toString('hex')))
      ? store.foldedChangeHashes(docId)
      : new Set<string>()
    const keep: Uint8Array[] = []
    for (const c of changes) {
      const h = changeHash(c).toString('hex')
      if (inLog.has(h)) continue
      if (proven.has(h)) keep.push(c)
      else droppedChanges++
    }
    foldedChanges = keep.length
    if (keep.length > 0) {
      const doc: AnyDoc = A.loadIncremental(A.init(), Buffer.concat(keep))
      try {
        base = { bytes: A.save(doc), heads: [...A.getHeads(doc)].sort() }
      } finally {
        A.free(doc)
      }
    }
  }
  snapshots.replaceWithBase(docId, base?.bytes, base?.heads ?? [])
  return { foldedChanges, droppedChanges, unreadableSnapshot, logEvents }
}
