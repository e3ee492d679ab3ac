/** The logging port: console-shaped, so pino, console or a test spy all fit. */
export interface Logger {
  debug?(message: string, details?: Record<string, unknown>): void
  info(message: string, details?: Record<string, unknown>): void
  warn(message: string, details?: Record<string, unknown>): void
  error(message: string, details?: Record<string, unknown>): void
}

/** Discards everything (the default: an embedded library should not print). */
export const silentLogger: Logger = {
  info() {},
  warn() {},
  error() {},
}
