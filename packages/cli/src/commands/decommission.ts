import type { Command } from 'commander'
import type { DecommissionJson } from '@dru/node/admin-api'
import type { CliContext, CommandModule } from '../context.js'
import { formatVv } from '../render.js'
import { clientFor, printJson, withAdminOptions, type AdminOptions } from './shared.js'

export const decommissionCommand: CommandModule = {
  register(program: Command, ctx: CliContext) {
    withAdminOptions(
      program
        .command('decommission')
        .description('remove a DRU lost for good from membership so the compaction floor can advance')
        .argument('<id>', 'DRU id to remove, e.g. ap-south-1')
        .option('--force', 'remove it even though it is connected right now'),
      { json: true },
    ).action(async (id: string, opts: AdminOptions & { force?: boolean }) => {
      const query = opts.force ? '?force=1' : ''
      const result = await clientFor(opts, ctx).post<DecommissionJson>(
        `/decommission/${encodeURIComponent(id)}${query}`,
      )
      if (opts.json) printJson(ctx, result)
      else if (!result.removed) ctx.stdout(`${result.id} was already decommissioned; nothing changed\n`)
      else {
        let out = `${result.id} removed from membership of this DRU; its replicated events stay\n`
        if (result.floor) out += `floor: ${formatVv(result.floor)}\n`
        if (result.waitingFor && result.waitingFor.length > 0)
          out += `still held back by: ${result.waitingFor.join(', ')}\n`
        out += 'run it on every surviving DRU\n'
        ctx.stdout(out)
      }
    })
  },
}
