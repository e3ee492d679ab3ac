/**
 * One error type for the whole project, with a stable `code`.
 *
 * The same codes fill `error{code}` frames on the wire, CLI exit messages and test
 * assertions, so they are part of the public contract: add codes, never rename them.
 */
export const ErrorCode = {
  /** Bytes that do not decode (truncated, garbled, wrong type tags). */
  MALFORMED: 'MALFORMED',
  /** Decoded, but a field has the wrong type, range or length. */
  INVALID_EVENT: 'INVALID_EVENT',
  /** An event's stated hash does not match its contents. */
  HASH_MISMATCH: 'HASH_MISMATCH',
  /** An event's `prev` is not the hash of the same origin's previous event. */
  CHAIN_BROKEN: 'CHAIN_BROKEN',
  /** An event would leave a hole in its origin's sequence. */
  SEQ_GAP: 'SEQ_GAP',
  /** Two different events claim the same `(origin, seq)`. */
  FORK: 'FORK',
  /** A remote timestamp is further ahead of our wall clock than the configured bound. */
  CLOCK_SKEW: 'CLOCK_SKEW',
  /** A stored event no longer matches its hash: the disk or file was altered. */
  CORRUPTION: 'CORRUPTION',
  /** Another process holds the database file. */
  DB_LOCKED: 'DB_LOCKED',
  /**
   * The database holds another DRU's events written without keys: a cluster with keys would
   * quarantine this DRU for them (its own unsigned events it signs when it opens with keys).
   */
  UNSIGNED_HISTORY: 'UNSIGNED_HISTORY',
  /** A configuration field is missing or wrong; the message names it. */
  CONFIG_INVALID: 'CONFIG_INVALID',
  /**
   * An inbox handler threw. `ingest` no longer throws it (the event is stored and the handler
   * retried, see the store's inbox); the CLI reports a retried handler that failed again with it.
   */
  HANDLER_FAILED: 'HANDLER_FAILED',
  /** The store or DRU was used after close(). */
  CLOSED: 'CLOSED',
  /** An API was called wrongly (e.g. a nested transaction). */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  /** The disk is full; the write was rolled back and nothing was stored. */
  STORAGE_FULL: 'STORAGE_FULL',
  /** A request to a peer (e.g. a verification probe) got no answer in time. */
  TIMEOUT: 'TIMEOUT',
  /** The DRU refuses writes for now (e.g. restoring: its own earlier events must come back first). */
  NOT_WRITABLE: 'NOT_WRITABLE',
  /** The database schema is newer than this build understands. */
  SCHEMA_TOO_NEW: 'SCHEMA_TOO_NEW',
  /** A wire frame exceeds the configured byte limit (checked before decoding). */
  FRAME_TOO_LARGE: 'FRAME_TOO_LARGE',
  /** A wire frame decoded but breaks the frame schema (type, range, length, extra field). */
  INVALID_FRAME: 'INVALID_FRAME',
  /** A valid frame arrived in the wrong protocol state. Protocol 2 only; protocol 3 answers PROTOCOL_VIOLATION. */
  UNEXPECTED_FRAME: 'UNEXPECTED_FRAME',
  /** A batch's events of one origin are not consecutive and ascending. */
  OUT_OF_ORDER: 'OUT_OF_ORDER',
  /** The peer speaks another protocol version. */
  PROTOCOL_VERSION: 'PROTOCOL_VERSION',
  /** The peer's challenge response does not prove the cluster secret. */
  AUTH_FAILED: 'AUTH_FAILED',
  /** The peer's DRU id is not a configured member (or is our own id). */
  UNKNOWN_PEER: 'UNKNOWN_PEER',
  /** Events of an origin whose DRU id has no configured public key. */
  UNKNOWN_ORIGIN: 'UNKNOWN_ORIGIN',
  /** A run of events does not end in a valid Ed25519 signature by its origin. */
  BAD_SIGNATURE: 'BAD_SIGNATURE',
  /** The peer is quarantined (fork or forgery seen); it stays refused until an operator lifts it. */
  QUARANTINED: 'QUARANTINED',
  /** A second session to the same peer; the protocol keeps exactly one per pair. */
  DUPLICATE_SESSION: 'DUPLICATE_SESSION',
  /** No frame from the peer within the heartbeat timeout. */
  HEARTBEAT_TIMEOUT: 'HEARTBEAT_TIMEOUT',
  /** A semi-sync write was not acknowledged by enough peers in time (it stays committed). */
  ACK_TIMEOUT: 'ACK_TIMEOUT',
  /** The named thing (conflict id, peer id, admin route) does not exist. */
  NOT_FOUND: 'NOT_FOUND',
  /** This DRU or build does not offer the requested operation. */
  NOT_SUPPORTED: 'NOT_SUPPORTED',
  /**
   * A peer asked for events this log no longer holds: they were compacted into document
   * snapshots. The peer must be bootstrapped from snapshots first.
   */
  BELOW_FLOOR: 'BELOW_FLOOR',
  /** The DRU was removed from the cluster by `dru decommission`; its sessions are refused. */
  DECOMMISSIONED: 'DECOMMISSIONED',
  /**
   * A peer sent a frame its session state or role does not allow (snapshots nobody asked
   * for, an ack beyond what we hold, a claim about our own current origin, a second hello…).
   * The frame changed nothing; the session is closed and the violation counted.
   */
  PROTOCOL_VIOLATION: 'PROTOCOL_VIOLATION',
  /** A peer sent frames faster than its session's rate limit allows; the session is closed. */
  RATE_LIMITED: 'RATE_LIMITED',
  /** A connection did not complete the handshake in time (or the handshake cap was reached). */
  HANDSHAKE_TIMEOUT: 'HANDSHAKE_TIMEOUT',
  /** A connection was refused because the listener's connection or handshake caps were reached. */
  TOO_MANY_CONNECTIONS: 'TOO_MANY_CONNECTIONS',
  /** A listening address (sync or admin port) is already taken by another process. */
  ADDRESS_IN_USE: 'ADDRESS_IN_USE',
  /**
   * A document's stored history cannot be materialised (e.g. a change Automerge refuses).
   * The document is isolated: reading it fails with this code, the rest of the DRU works.
   */
  DOCUMENT_ISOLATED: 'DOCUMENT_ISOLATED',
  /** The admin API needs a token (`authorization: Bearer …`) and none, or a wrong one, came. */
  UNAUTHORIZED: 'UNAUTHORIZED',
  /** The admin API refuses the request's origin: a foreign `Origin` or an unknown `Host` (a web page, DNS rebinding). */
  FORBIDDEN: 'FORBIDDEN',
  /**
   * `change()` got an async function (or one that returned a promise). Automerge changes are
   * synchronous: what ran after the first `await` would be lost, so nothing is committed.
   */
  ASYNC_CHANGE: 'ASYNC_CHANGE',
  /**
   * A value a document cannot store faithfully: undefined, a function, a symbol, a Map, a
   * cyclic or too deeply nested object, NaN or ±Infinity (JSON has no such numbers).
   */
  INVALID_VALUE: 'INVALID_VALUE',
  /** An unexpected failure that is none of the codes above (a bug; the logs say more). */
  INTERNAL: 'INTERNAL',
} as const

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

/** The error every dru package throws. Match on `code`, never on `message`. */
export class DruError extends Error {
  override readonly name = 'DruError'
  readonly code: ErrorCode
  /** Structured context (e.g. `{ origin, seq }`) for logs and status pages. */
  readonly details: Readonly<Record<string, unknown>>

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.details = options.details ?? {}
  }
}

/** True when `err` is a {@link DruError}, optionally with the given code. */
export function isDruError(err: unknown, code?: ErrorCode): err is DruError {
  return err instanceof DruError && (code === undefined || err.code === code)
}
