/**
 * @module @dru/documents — Automerge documents materialised from dru's event log: a
 * bounded cache, incremental snapshots, batched remote apply, canonical state digests and
 * conflict records.
 */
export { DocumentStore, MAX_ISOLATED_LISTED } from './document-store.js'
export type { DocumentStoreOptions, DocumentTx, DocumentDigest, DocumentStats, UpdateListener, ChangeFn, CompactProgress, CompactResult, DocSnapshot, IsolatedDocument } from './document-store.js'
export { checkChanges, ActorSeqs, MAX_CHANGE_DEPS } from './change-validation.js'
export type { CacheLimits } from './lru.js'
export { Lru } from './lru.js'
export { actorForOrigin, originForActor, parseOpId } from './actor.js'
export { canonicalValue, canonicalJson, plainValue, documentDigest } from './canonical.js'
export type { Conflict, ConflictValue, ConflictPolicy } from './conflict-policy.js'
export { chooseWinner, checkConflictPolicy } from './conflict-policy.js'
export { DOCUMENT_MIGRATIONS } from './schema.js'
