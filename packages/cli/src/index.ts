/**
 * @module @dru/cli — the `dru` command as a library: run it in-process with
 * {@link runCli}, reuse its renderers, or add commands (one file in `src/commands/`).
 */
export { runCli, createProgram } from './program.js'
export type { CliContext, CommandModule, DruRuntime, RunningDru } from './context.js'
export { COMMANDS } from './commands/index.js'
export { ExitCode, CliError, exitCodeForDruCode, describeFailure } from './exit-codes.js'
export { loadConfig, checkConfig, resolveAdminUrl, DEFAULT_ADMIN_URL } from './config.js'
export type { CliConfig } from './config.js'
export { createAdminClient } from './admin-client.js'
export type { AdminClient, AdminClientOptions } from './admin-client.js'
export {
  renderTable,
  renderFields,
  formatCount,
  formatSeconds,
  formatBool,
  formatValue,
  formatPath,
  formatTime,
  formatVv,
} from './render.js'
export type { Column, Align } from './render.js'
export { createProgressReporter, formatProgress } from './progress.js'
export type { Progress, ProgressReporter, ProgressReporterOptions } from './progress.js'
