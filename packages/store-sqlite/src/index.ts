/**
 * @module @dru/store-sqlite — dru's event log on SQLite (better-sqlite3): the atomic
 * outbox, the exactly-once inbox (with retries and dead letters), version vectors,
 * fingerprints and peers' acknowledgements.
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
  CommitListener,
  IngestResult,
  PeerRecord,
  StreamOptions,
  VerifyProgress,
  IngestValidator,
  StoringValidator,
} from './event-store.js'
export { SCHEMA_VERSION, migrate } from './migrations.js'
export { Inbox, MAX_INBOX_LIST } from './inbox.js'
export type {
  InboxHandler,
  HandlerTx,
  InboxOrder,
  InboxHandlerOptions,
  InboxState,
  InboxFilter,
  InboxEntry,
  InboxCounts,
  AttemptReport,
  RetryOutcome,
  RunReport,
} from './inbox-types.js'
export {
  DEFAULT_INBOX_POLICY,
  INBOX_POLICY_FIELDS,
  checkInboxPolicy,
  inboxPolicy,
  nextAttempt,
} from './inbox-policy.js'
export type { InboxPolicy } from './inbox-policy.js'
export { signOwnHistory, unsignedOrigins } from './own-history.js'
export type { HistoryStore, UnsignedOrigin } from './own-history.js'
