import type { Command } from 'commander'
import type { GapsJson } from '@dru/node/admin-api'
import type { CliContext, CommandModule } from '../context.js'
import { formatBool, formatCount, renderTable } from '../render.js'
import { clientFor, printJson, withAdminOptions, type AdminOptions } from './shared.js'

/** One row per (peer, origin) where a side lacks something; a peer in sync gets one `in sync` row. */
export function renderGaps(g: GapsJson): string {
  if (g.peers.length === 0) return 'no peers configured\n'
  const rows: string[][] = []
  for (const p of g.peers) {
    const lacking = p.origins.filter((o) => o.weLack > 0 || o.theyLack > 0)
    // A disconnected peer's numbers are from its last acknowledgement, so say so.
    if (lacking.length === 0)
      rows.push([
        p.peer,
        formatBool(p.connected),
        p.connected ? '(in sync)' : '(in sync at last contact)',
        '',
        '',
        '0',
        '0',
      ])
    for (const o of lacking) {
      rows.push([
        p.peer,
        formatBool(p.connected),
        o.origin,
        formatCount(o.local),
        formatCount(o.remote),
        formatCount(o.weLack),
        formatCount(o.theyLack),
      ])
    }
  }
  const weLack = g.peers.reduce((a, p) => a + p.weLack, 0)
  const theyLack = g.peers.reduce((a, p) => a + p.theyLack, 0)
  const table = renderTable(
    [
      'peer',
      'connected',
      'origin',
      { header: 'local seq', align: 'right' },
      { header: 'peer seq', align: 'right' },
      { header: 'we lack', align: 'right' },
      { header: 'peer lacks', align: 'right' },
    ],
    rows,
  )
  return `${table}\n\ntotal: we lack ${formatCount(weLack)} events; peers lack ${formatCount(theyLack)} events\n`
}

export const gapsCommand: CommandModule = {
  register(program: Command, ctx: CliContext) {
    withAdminOptions(program.command('gaps').description('per peer and origin, how many events each side lacks'), {
      json: true,
    }).action(async (opts: AdminOptions) => {
      const gaps = await clientFor(opts, ctx).get<GapsJson>('/gaps')
      if (opts.json) printJson(ctx, gaps)
      else ctx.stdout(renderGaps(gaps))
    })
  },
}
