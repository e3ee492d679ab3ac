/** The logging port: message first, then structured details (console-shaped; wrap pino as `(m, d) => pino.info(d, m)`). */
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
