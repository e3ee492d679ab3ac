import type { Command } from 'commander'
import type { CliContext, CommandModule } from '../context.js'
import { CliError, ExitCode } from '../exit-codes.js'

export const demoCommand: CommandModule = {
  register(program: Command, ctx: CliContext) {
    program
      .command('demo')
      .description(
        'three DRUs on embedded SQLite go through a regional failure, reconcile, and print the report (exit 1 if they do not converge)',
      )
      .option('--keep', 'keep the temp folder with the databases, configs and logs')
      .option('--orders <n>', 'orders written per phase', (v) => Number(v), 30)
      .option('--json', 'print the report as JSON after the walkthrough')
      .action(async (opts: { keep?: boolean; orders: number; json?: boolean }) => {
        if (!Number.isInteger(opts.orders) || opts.orders < 6 || opts.orders > 10_000) {
          throw new CliError(ExitCode.USAGE, '--orders must be an integer from 6 to 10000')
        }
        // Loaded on use: the demo brings the testkit (its link proxies), no other command needs it.
        const { runDemo } = await import('../demo/run-demo.js')
        const report = await runDemo({
          out: (t) => ctx.stdout(`${t}\n`),
          keep: opts.keep === true,
          orders: opts.orders - (opts.orders % 6),
        })
        if (opts.json) ctx.stdout(`${JSON.stringify(report, null, 2)}\n`)
        if (!report.converged)
          throw new CliError(ExitCode.NOT_IN_SYNC, 'the DRUs did not converge: see the report above')
      })
  },
}
