/**
 * @module @dru/node — the DRU runtime a service embeds: {@link openDru} and the
 * in-process API (changes, reads, transactions, exactly-once event handlers,
 * subscriptions, fingerprints, digests, conflicts).
 */
export { openDru, Dru } from './dru.js'
export type { ChangeOptions, ChangeResult, DruTx, EventHandler, SubscribeCallback, AckWaiter, DruConflicts } from './dru.js'
export { validateConfig, extendConfigFields, CONFIG_FIELDS } from './config.js'
export type { DruConfig, FieldCheck } from './config.js'
