/**
 * @module @dru/store-sqlite — dru's event log on SQLite (better-sqlite3): the atomic
 * outbox, the exactly-once inbox, version vectors, fingerprints and peers' acknowledgements.
 */
export { EventStore, DEFAULT_CACHE_KIB } from './event-store.js'
export { MetaKey } from './meta.js'
export { changeHash } from './folded-log.js'
export { storageError } from './sqlite-errors.js'
export type {
  Durability,
  SkewPolicy,
  OpenStoreOptions,
  StoreTx,
  InboxTx,
  InboxHandler,
  CommitListener,
  IngestResult,
  PeerRecord,
  StreamOptions,
  VerifyProgress,
  IngestValidator,
  StoringValidator,
} from './event-store.js'
export { SCHEMA_VERSION, migrate } from './migrations.js'
