/**
 * @module @dru/core — the pure model of dru: events and their hash chain, version
 * vectors, fingerprints, the hybrid logical clock, limits and typed errors. No I/O.
 */
export { DruError, ErrorCode, isDruError } from './errors.js'
export { classifyArrival } from './arrival.js'
export type { Arrival, ArrivingEvent, HeldHead } from './arrival.js'
export {
  MAX_DRU_ID_LENGTH,
  MAX_DOC_ID_LENGTH,
  MAX_CHANGE_BYTES,
  DEFAULT_BATCH_BYTES,
  MAX_SEQ,
  DEFAULT_MAX_CLOCK_SKEW_MS,
  SIGN_EVERY_EVENTS,
  SIGN_EVERY_BYTES,
} from './limits.js'
export type { DruId, Origin, DocId } from './ids.js'
export {
  parseDruId,
  formatOrigin,
  isOrigin,
  parseOrigin,
  isDocId,
  parseDocId,
  newIncarnation,
  MAX_INCARNATION,
} from './ids.js'
export type { Hlc, WallClock, HlcClockOptions } from './hlc.js'
export { HlcClock, asciiDecimal, compareHlc, encodeHlc, decodeHlc, isHlcText } from './hlc.js'
export type { VersionVector, SeqRange, VvOrder } from './version-vector.js'
export {
  normalizeVv,
  mergeVv,
  compareVv,
  dominatesVv,
  equalVv,
  meetVv,
  missingRanges,
  countMissing,
} from './version-vector.js'
export type { DruEvent, UnhashedEvent } from './event.js'
export {
  GENESIS_HASH,
  canonicalEventBytes,
  hashEvent,
  sealEvent,
  sealEventFields,
  eventHashMatches,
  eventHashVerified,
  hashedEvent,
  isHashComputed,
  validateEvent,
  validateBatch,
  isHex64,
  encodeEvent,
  decodeEvent,
  verifyChain,
} from './event.js'
export { sha256Hex } from './sha256.js'
export type { Unit, UnitEntry, SealedUnit } from './unit.js'
export {
  MAX_UNIT_EVENTS,
  MAX_UNIT_CHANGE_BYTES,
  UNIT_TAG,
  ENTRY_TAG,
  encodeUnit,
  decodeUnit,
  openUnit,
  decodeEntry,
  entryHash,
  entryHashes,
  unitHashOf,
  unitHash,
  legacyUnitHash,
  cutUnits,
  sealUnits,
  verifyUnitChain,
} from './unit.js'
export type { Fingerprint, RetiredSummary, LogSummary } from './fingerprint.js'
export {
  equalFingerprints,
  fingerprintDigest,
  divergentOrigins,
  retiredSummary,
  NO_RETIRED,
  equalSummaries,
  summaryDigest,
  summaryMatches,
} from './fingerprint.js'
export type {
  CompactionBase,
  FoldedEnvelope,
  IngestResult,
  StreamOptions,
  CommitSource,
  CommitListener,
  CommitPhase,
  ReplicaLog,
  PeerRecord,
  PeerBook,
} from './ports.js'
export { pack, unpack } from './codec.js'
export type { LifecycleTransition, LifecycleOptions, Lifecycle } from './lifecycle.js'
export { DEFAULT_RAMP, checkRamp, readyWeight } from './ramp.js'
export type { RampOptions } from './ramp.js'
export {
  LifecycleState,
  LifecycleSignal,
  LIFECYCLE_STATES,
  LIFECYCLE_SIGNALS,
  LIFECYCLE_TABLE,
  isLifecycleState,
  isLifecycleSignal,
  transition,
  isReady,
  createLifecycle,
} from './lifecycle.js'
export {
  TREE_FANOUT,
  TREE_LEVELS,
  TREE_LEAVES,
  TREE_HASH_BYTES,
  MerkleTree,
  bucketOf,
  leafHash,
  nodesAt,
  differingChildren,
  isTreeNode,
  walkTrees,
  diffEntries,
} from './merkle-tree.js'
export type { TreeEntry, TreeDifference, AskChildren } from './merkle-tree.js'
