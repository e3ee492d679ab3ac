/**
 * @module @dru/node — the DRU runtime a service embeds: {@link openDru} and the
 * in-process API (changes, reads, transactions, exactly-once event handlers,
 * subscriptions, fingerprints, digests, conflicts).
 *
 * The admin API's JSON bodies are a separate door, `@dru/node/admin-api`, so the CLI reads
 * them without loading the runtime.
 */
// First: on V8s that crash on a lazy deopt inside an inlined Wasm call (v8-workaround.ts),
// the flag must be set before any Automerge code is optimized.
export { V8_WORKAROUND_FLAG, applyV8Workaround, needsV8Workaround } from './v8-workaround.js'
export { Dru } from './dru.js'
export { openDru, runtimeOf } from './open-dru.js'
/** An Ed25519 key pair in PEM (PKCS#8 private, SPKI public) for `keys` (or use `dru init`). */
export { generateKeys } from '@dru/sync'
export { validateConfig } from './config.js'
export { DEFAULT_CONFLICT_POLICY } from './config-types.js'
export { createMetrics } from './metrics.js'
export { ownWritesMissingAtOpen } from './stale-copy.js'
export type { DruRuntimeParts } from './open-dru.js'
export type {
  ReadyOptions,
  ChangeOptions,
  ChangeResult,
  DruTx,
  EventHandler,
  EventHandlerOptions,
  SubscribeCallback,
  AckWaiter,
  DruConflicts,
  DecommissionReport,
} from './dru.js'
export type { CompactReport, CompactionFloor } from './compaction.js'
export type {
  GapReport,
  PeerGaps,
  OriginGap,
  VerifyReport,
  RepairReport,
  RepairedDocument,
  DocumentDifference,
  PeerVerification,
  Progress,
  ProgressFn,
} from './operations.js'
export type { DruInbox } from './inbox-api.js'
export type {
  HandlerTx,
  InboxOrder,
  InboxState,
  InboxFilter,
  InboxEntry,
  InboxCounts,
  RetryOutcome,
  RunReport,
} from '@dru/store-sqlite'
export { resolveConfig } from './config-files.js'
export type { ResolvedDruConfig } from './config-files.js'
export type { FieldCheck } from './config.js'
export type { DruConfig, KeysConfig } from './config-types.js'
export type { ConflictCounts } from '@dru/documents'
export type { DruMetrics } from './metrics.js'
export type { Network, NetworkConfig } from './network.js'
export type { OpenedState } from './stale-copy.js'
