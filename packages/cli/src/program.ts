import { Command, CommanderError } from 'commander'
import { COMMANDS } from './commands/index.js'
import type { CliContext } from './context.js'
import { ExitCode, describeFailure } from './exit-codes.js'

/** Builds the `dru` program with every command in {@link COMMANDS}. */
export function createProgram(ctx: CliContext): Command {
  const program = new Command('dru')
  program
    .description('Operate dru disaster-recovery units: start one, inspect it, verify, resolve conflicts.')
    .version('0.1.0', '-V, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.stdout(s),
      writeErr: (s) => ctx.stderr(s),
    })
    .showHelpAfterError('(run with --help for usage)')
    .showSuggestionAfterError(true)
    .addHelpText(
      'after',
      '\nThe admin address comes from --admin, else $DRU_ADMIN, else --config (admin.host/port), else http://127.0.0.1:7401.\nExit codes: 0 ok, 1 unexpected, 2 usage, 3 config, 4 unreachable, 5 not in sync, 6 not found, 7 refused, 8 fork/corruption, 9 not supported, 10 timeout, 11 unauthorized, 12 address in use, 13 handler failed again.',
    )
  for (const command of COMMANDS) command.register(program, ctx)
  return program
}

/**
 * Runs `dru` with `args` (without `node` and the script path) and returns the exit
 * status. Never throws and never calls `process.exit`, so it can run in-process.
 */
export async function runCli(args: readonly string[], ctx: CliContext): Promise<number> {
  const program = createProgram(ctx)
  try {
    await program.parseAsync([...args], { from: 'user' })
    return ExitCode.OK
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return ExitCode.OK
      // `dru` alone or `dru conflicts` with a missing subcommand: help went to stderr
      if (err.code === 'commander.help' || err.code === 'commander.executeSubCommandAsync') return ExitCode.USAGE
      return ExitCode.USAGE // commander already printed the message
    }
    const { exitCode, message } = describeFailure(err)
    ctx.stderr(`dru: ${message}\n`)
    return exitCode
  }
}
