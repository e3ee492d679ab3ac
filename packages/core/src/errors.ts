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
  /** A configuration field is missing or wrong; the message names it. */
  CONFIG_INVALID: 'CONFIG_INVALID',
  /** An inbox handler threw; the event was not recorded and will be offered again. */
  HANDLER_FAILED: 'HANDLER_FAILED',
  /** The store or DRU was used after close(). */
  CLOSED: 'CLOSED',
  /** An API was called wrongly (e.g. a nested transaction). */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  /** The disk is full; the write was rolled back and nothing was stored. */
  STORAGE_FULL: 'STORAGE_FULL',
  /** The database schema is newer than this build understands. */
  SCHEMA_TOO_NEW: 'SCHEMA_TOO_NEW',
} as const

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

/** The error every dru package throws. Match on `code`, never on `message`. */
export class DruError extends Error {
  override readonly name = 'DruError'
  readonly code: ErrorCode
  /** Structured context (e.g. `{ origin, seq }`) for logs and status pages. */
  readonly details: Readonly<Record<string, unknown>>

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.details = options.details ?? {}
  }
}

/** True when `err` is a {@link DruError}, optionally with the given code. */
export function isDruError(err: unknown, code?: ErrorCode): err is DruError {
  return err instanceof DruError && (code === undefined || err.code === code)
}
