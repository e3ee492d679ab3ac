import type { Command } from 'commander'
import type { CompactJson } from '@dru/node/admin-api'
import type { CliContext, CommandModule } from '../context.js'
import { formatCount, formatSeconds, formatVv } from '../render.js'
import { clientFor, printJson, progressFor, withAdminOptions, type AdminOptions } from './shared.js'

export function renderCompact(c: CompactJson): string {
  const took = c.durationMs === undefined ? '' : ` in ${formatSeconds(c.durationMs / 1000)}`
  let out = `compacted${took}: ${formatCount(c.eventsRemoved)} events removed, ${formatCount(c.docsSnapshotted)} document snapshots written\n`
  if (c.eventsBefore !== undefined && c.eventsAfter !== undefined)
    out += `log: ${formatCount(c.eventsBefore)} -> ${formatCount(c.eventsAfter)} events\n`
  out += `floor: ${formatVv(c.floor)}\n`
  if (c.waitingFor && c.waitingFor.length > 0) {
    out += `held back by: ${c.waitingFor.join(', ')} (not yet acknowledged everything; decommission a region lost for good)\n`
  }
  if (c.heldBack && c.heldBack.length > 0)
    out += `kept (documents waiting for dependencies): ${c.heldBack.join(', ')}\n`
  return out
}

export const compactCommand: CommandModule = {
  register(program: Command, ctx: CliContext) {
    withAdminOptions(
      program.command('compact').description('fold events every member acknowledged into document snapshots'),
      { json: true, progress: true },
    ).action(async (opts: AdminOptions) => {
      const progress = progressFor(opts, ctx)
      const result = await clientFor(opts, ctx).stream<CompactJson>('/compact', (p) => progress.update(p))
      if (opts.json) printJson(ctx, result)
      else ctx.stdout(renderCompact(result))
    })
  },
}
