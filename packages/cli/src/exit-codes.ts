import { isDruError, type ErrorCode } from '@dru/core'

/**
 * The `dru` command's exit statuses. Scripts and the runbook branch on them, so each
 * failure class has its own number; add new ones, never renumber.
 */
export const ExitCode = {
  /** Done; for `verify`, everything compared equal. */
  OK: 0,
  /** Unexpected failure (a bug, or a response the CLI does not understand). */
  FAILURE: 1,
  /** Bad command line: unknown command or option, missing or malformed argument. */
  USAGE: 2,
  /** The config file is missing, not JSON, or has a bad field. */
  CONFIG: 3,
  /** No DRU answers at the admin address (connection refused, unknown host). */
  UNREACHABLE: 4,
  /** `verify` ran and found a difference with at least one peer. */
  NOT_IN_SYNC: 5,
  /** The named conflict, peer or endpoint does not exist. */
  NOT_FOUND: 6,
  /** The DRU refused the request (bad value, already resolved, closed, …). */
  REFUSED: 7,
  /** The DRU reports a fork or a corrupt log: see the runbook's fork alarm section. */
  INTEGRITY: 8,
  /** The DRU (or this build) does not offer the operation. */
  NOT_SUPPORTED: 9,
  /** The DRU did not answer in time. */
  TIMEOUT: 10,
  /** The admin API refused the caller: no or wrong token (`UNAUTHORIZED`), or a refused origin (`FORBIDDEN`). */
  UNAUTHORIZED: 11,
  /** The address to listen on (admin or sync) is taken by another process. */
  ADDRESS_IN_USE: 12,
  /** `inbox retry` ran the handler and it threw again (the entry stays owed; see `dru inbox show`). */
  HANDLER_FAILED: 13,
} as const

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode]

/** An error the CLI reports as one line on stderr and an exit status, without a stack. */
export class CliError extends Error {
  override readonly name = 'CliError'
  constructor(
    readonly exitCode: ExitCode,
    message: string,
    /** The DRU's error code, when the failure came from the DRU. */
    readonly code?: string,
  ) {
    super(message)
  }
}

const INTEGRITY_CODES = new Set<string>([
  'FORK',
  'CORRUPTION',
  'HASH_MISMATCH',
  'CHAIN_BROKEN',
  'BAD_SIGNATURE',
  'QUARANTINED',
])

/** Exit status for a DruError code, whether thrown locally or answered by a DRU. */
export function exitCodeForDruCode(code: string): ExitCode {
  if (INTEGRITY_CODES.has(code)) return ExitCode.INTEGRITY
  switch (code as ErrorCode) {
    case 'CONFIG_INVALID':
      return ExitCode.CONFIG
    case 'NOT_FOUND':
      return ExitCode.NOT_FOUND
    case 'NOT_SUPPORTED':
      return ExitCode.NOT_SUPPORTED
    case 'ACK_TIMEOUT':
    case 'HEARTBEAT_TIMEOUT':
      return ExitCode.TIMEOUT
    case 'INTERNAL':
      return ExitCode.FAILURE
    case 'UNAUTHORIZED':
    case 'FORBIDDEN':
      return ExitCode.UNAUTHORIZED
    case 'ADDRESS_IN_USE':
      return ExitCode.ADDRESS_IN_USE
    case 'HANDLER_FAILED':
      return ExitCode.HANDLER_FAILED
    default:
      return ExitCode.REFUSED
  }
}

/** Exit status and message for anything a command threw. */
export function describeFailure(err: unknown): { exitCode: ExitCode; message: string } {
  if (err instanceof CliError) return { exitCode: err.exitCode, message: err.message }
  if (isDruError(err)) return { exitCode: exitCodeForDruCode(err.code), message: `${err.code}: ${err.message}` }
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err)
  return { exitCode: ExitCode.FAILURE, message: `unexpected error: ${message}` }
}
