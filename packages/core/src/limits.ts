/**
 * Named caps, each with the reason for its number. Every queue and every decoded
 * field is bounded by one of these, so bad or hostile input cannot exhaust memory.
 */

/** Longest DRU id. Ids appear in every event and log line; 64 is plenty for region names. */
export const MAX_DRU_ID_LENGTH = 64

/** Longest document id. Application keys (order ids, tenant/path keys) fit easily. */
export const MAX_DOC_ID_LENGTH = 256

/**
 * Largest single Automerge change. A change is one user edit; 1 MiB leaves room for
 * pasted blobs while keeping any single event far below the frame limit.
 */
export const MAX_CHANGE_BYTES = 1 << 20

/** Default byte budget of one streamed batch: large enough to amortise commits, small enough to bound memory. */
export const DEFAULT_BATCH_BYTES = 1 << 20

/** Largest sequence number: the largest integer a JS number holds exactly. */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER

/** Default bound on how far a remote HLC may run ahead of our wall clock (1 minute). */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 60_000

/**
 * Within one local commit, the store signs at least every this many events and every this
 * many change bytes, besides the commit's last event. A receiver needs a signed event to end
 * each origin's run in a frame, so a huge transaction still splits into frames of bounded
 * size and count.
 */
export const SIGN_EVERY_EVENTS = 4096
export const SIGN_EVERY_BYTES = 1 << 20
