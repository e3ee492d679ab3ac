/**
 * @module @dru/documents — Automerge documents materialised from dru's event log: a
 * bounded cache, incremental snapshots, batched remote apply, canonical state digests and
 * conflict records.
 */
export { DocumentStore } from './document-store.js'
export type {
  DocumentStoreOptions,
  DocumentStats,
  UpdateListener,
  RepairResult,
  DigestTreeState,
} from './document-store.js'
export type { DigestEntry } from './digest-index.js'
export { ISOLATED_DIGEST } from './digest-index.js'
export type { ChangeFn, DocumentTx } from './local-change.js'
export type { DocumentDigest } from './digest.js'
export type { CompactOptions, CompactProgress, CompactResult } from './compaction.js'
export type { DocSnapshot } from './snapshot-store.js'
export { MAX_ISOLATED_LISTED } from './isolated-docs.js'
export type { IsolatedDocument } from './isolated-docs.js'
export type { RejectedChange } from './rejected-changes.js'
export { checkChanges, ActorSeqs, MAX_CHANGE_DEPS } from './change-validation.js'
export type { CacheLimits } from './lru.js'
export type { BackgroundApplyOptions, Scheduler } from './background-apply.js'
export { Lru } from './lru.js'
export { actorForOrigin, originForActor, parseOpId } from './actor.js'
export { canonicalValue, canonicalJson, plainValue, documentDigest } from './canonical.js'
export type { Conflict, ConflictValue, ConflictPolicy } from './conflict-policy.js'
export type { ConflictCounts } from './conflict-registry.js'
export { chooseWinner, checkConflictPolicy } from './conflict-policy.js'
export { DOCUMENT_MIGRATIONS } from './schema.js'
