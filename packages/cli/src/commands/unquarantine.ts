import type { Command } from 'commander'
import type { UnquarantineJson } from '@dru/node/admin-api'
import type { CliContext, CommandModule } from '../context.js'
import { clientFor, printJson, withAdminOptions, type AdminOptions } from './shared.js'

export const unquarantineCommand: CommandModule = {
  register(program: Command, ctx: CliContext) {
    withAdminOptions(
      program
        .command('unquarantine')
        .description('let a quarantined peer reconnect (after a fork alarm was investigated; see docs/RUNBOOK.md)')
        .argument('<id>', 'the quarantined peer, e.g. ap-south-1'),
      { json: true },
    ).action(async (id: string, opts: AdminOptions) => {
      const result = await clientFor(opts, ctx).post<UnquarantineJson>(`/peers/${encodeURIComponent(id)}/unquarantine`)
      if (opts.json) printJson(ctx, result)
      else
        ctx.stdout(
          result.lifted
            ? `${result.peer}: quarantine lifted; it may reconnect\n`
            : `${result.peer} was not quarantined; nothing changed\n`,
        )
    })
  },
}
