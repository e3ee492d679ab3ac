import type { Command } from 'commander'
import type { CliConfig } from './config.js'

/** A DRU opened by `dru start`; only what the CLI needs from it. */
export interface RunningDru {
  close(): Promise<void>
  state?(): string
}

/** The runtime behind `dru start` (normally `@dru/node`), loaded only when needed. */
export interface DruRuntime {
  /** Absent when this build has no runtime wired; `start --check` still works then. */
  openDru?(config: CliConfig): Promise<RunningDru>
  /**
   * The node's own full config check, exactly what `openDru` runs before opening anything:
   * fields, the files they name, fields together (throws DruError CONFIG_INVALID naming the field).
   */
  validateConfig?(config: unknown): unknown
}

/**
 * Everything a command touches outside itself, so tests can run commands in-process
 * with captured output and a fake runtime.
 */
export interface CliContext {
  readonly stdout: (text: string) => void
  readonly stderr: (text: string) => void
  readonly env: NodeJS.ProcessEnv
  readonly cwd: string
  readonly now: () => number
  /** Loads the DRU runtime for `start` (lazily, so status commands never load SQLite). */
  readonly loadRuntime: () => Promise<DruRuntime>
  /** Resolves with the signal name when the process is asked to stop. */
  readonly waitForShutdown: () => Promise<string>
}

/**
 * One `dru` subcommand. A command is one file in `src/commands/` exporting a
 * `CommandModule`, listed once in `src/commands/index.ts`.
 */
export interface CommandModule {
  register(program: Command, ctx: CliContext): void
}
