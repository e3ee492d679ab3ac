import type { Command } from 'commander'
import type { RepairJson } from '@dru/node/admin-api'
import type { CliContext, CommandModule } from '../context.js'
import { CliError, ExitCode } from '../exit-codes.js'
import { renderTable } from '../render.js'
import { clientFor, printJson, progressFor, withAdminOptions, type AdminOptions } from './shared.js'
import { renderVerify } from './verify.js'

/** What was rebuilt (digests before and after), then the verdict of the deep verify that followed. */
export function renderRepair(r: RepairJson): string {
  if (r.logsDiffer.length > 0)
    return `nothing repaired: the log differs from ${r.logsDiffer.join(', ')}; catch up first (dru gaps, dru wait), then verify --deep again\n`
  const short = (d: { digest: string } | null) => (d ? d.digest.slice(0, 12) : 'absent')
  let out = renderTable(
    ['document', 'digest before', 'digest after', 'replayed events', 'folded kept', 'dropped'],
    r.repaired.map((d) => [
      d.docId,
      short(d.before),
      short(d.after),
      String(d.logEvents),
      String(d.foldedChanges),
      String(d.droppedChanges),
    ]),
  )
  out += '\n\n'
  if (r.verify) out += renderVerify(r.verify)
  out += r.stillDiffering.length
    ? `still differing after the repair: ${r.stillDiffering.join(', ')} (the peer's copy may be the damaged one: run dru repair there)\n`
    : `repaired ${r.repaired.length} document(s)${r.verify ? '; no reachable peer differs on them' : ''}\n`
  return out
}

export const repairCommand: CommandModule = {
  register(program: Command, ctx: CliContext) {
    withAdminOptions(
      program
        .command('repair')
        .description('rebuild documents from the log (their snapshot and cached state discarded), then verify --deep')
        .argument('<doc...>', 'ids of the documents to rebuild (as `dru verify --deep` names them)'),
      { json: true, progress: true },
    ).action(async (docs: string[], opts: AdminOptions) => {
      const progress = progressFor(opts, ctx)
      const result = await clientFor(opts, ctx).stream<RepairJson>('/repair', (p) => progress.update(p), { docs })
      if (opts.json) printJson(ctx, result)
      else ctx.stdout(renderRepair(result))
      if (!result.ok)
        throw new CliError(
          ExitCode.NOT_IN_SYNC,
          result.logsDiffer.length > 0
            ? 'the log differs from a peer: catch up first, repair rebuilds only from an equal log'
            : 'a repaired document still differs from a peer; see the runbook, "verify says a document differs"',
        )
    })
  },
}
