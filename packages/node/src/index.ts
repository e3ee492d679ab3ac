/**
 * @module @dru/node — the DRU runtime a service embeds: {@link openDru} and the
 * in-process API (changes, reads, transactions, exactly-once event handlers,
 * subscriptions, fingerprints, digests, conflicts).
 */
export { Dru } from './dru.js'
export { openDru, runtimeOf } from './open-dru.js'
export type { DruRuntimeParts } from './open-dru.js'
export type { ChangeOptions, ChangeResult, DruTx, EventHandler, EventHandlerOptions, SubscribeCallback, AckWaiter, DruConflicts } from './dru.js'
export type { DruInbox } from './inbox-api.js'
export type { HandlerTx, InboxOrder, InboxState, InboxFilter, InboxEntry, InboxCounts, RetryOutcome, RunReport } from '@dru/store-sqlite'
export { validateConfig, extendConfigFields, checkNetworkFields, CONFIG_FIELDS } from './config.js'
export { startAdminServer, DEFAULT_ADMIN_PORT, DEFAULT_ADMIN_HOST } from './admin-http.js'
export type { AdminServer, AdminServerOptions } from './admin-http.js'
export type { AdminSource } from './admin-routes.js'
export type { StatusJson, GapsJson, VerifyJson, ConflictJson, InboxEntryJson, InboxListJson, InboxRetryJson, InboxRequeueJson, InboxSummaryJson } from './admin-api.js'
export { createMetrics } from './metrics.js'
export type { DruMetrics } from './metrics.js'
export { Network } from './network.js'
export type { NetworkConfig } from './network.js'
export type { PeerVerification } from './operations.js'
export { LifecycleDriver, assessPeers } from './lifecycle-driver.js'
export { ownWritesMissingAtOpen } from './stale-copy.js'
export type { OpenedState } from './stale-copy.js'
export type { PeerView, SyncAssessment } from './lifecycle-driver.js'
export type { DruConfig, FieldCheck } from './config.js'
