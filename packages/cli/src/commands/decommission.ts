import type { Command } from 'commander'
import type { Decommission } from '../admin-types.js'
import type { CliContext, CommandModule } from '../context.js'
import { formatVv } from '../render.js'
import { clientFor, printJson, withAdminOptions, type AdminOptions } from './shared.js'

export const decommissionCommand: CommandModule = {
  register(program: Command, ctx: CliContext) {
    withAdminOptions(
      program
        .command('decommission')
        .description('remove a DRU lost for good from membership so the compaction floor can advance')
        .argument('<id>', 'DRU id to remove, e.g. ap-south-1'),
      { json: true },
    ).action(async (id: string, opts: AdminOptions) => {
      const result = await clientFor(opts, ctx).post<Decommission>(`/decommission/${encodeURIComponent(id)}`)
      if (opts.json) printJson(ctx, result)
      else if (!result.removed) ctx.stdout(`${result.id} was not a member; nothing changed\n`)
      else ctx.stdout(`${result.id} removed from membership; its replicated events stay${result.floor ? `\nfloor: ${formatVv(result.floor)}` : ''}\n`)
    })
  },
}
