import type { Command } from 'commander'
import { InvalidArgumentError } from 'commander'
import type { ConflictJson, ResolveJson } from '@dru/node/admin-api'
import type { CliContext, CommandModule } from '../context.js'
import { formatPath, formatTime, formatValue, renderFields, renderTable } from '../render.js'
import { clientFor, printJson, withAdminOptions, type AdminOptions } from './shared.js'

/** One row per conflict: the competing values with their origins. */
export function renderConflictList(list: readonly ConflictJson[]): string {
  if (list.length === 0) return 'no conflicts\n'
  const rows = list.map((c) => [
    String(c.id),
    c.docId,
    formatPath(c.path),
    c.values.map((v) => `${formatValue(v.value, 24)} (${v.origin})`).join(' | '),
    formatTime(c.detectedAt),
    c.status,
  ])
  return `${renderTable(['id', 'doc', 'path', 'values', 'detected', 'status'], rows)}\n`
}

/** Every detail of one conflict. */
export function renderConflict(c: ConflictJson): string {
  const fields: [string, string][] = [
    ['id', String(c.id)],
    ['doc', c.docId],
    ['path', formatPath(c.path)],
    ['status', c.status],
    ['detected', formatTime(c.detectedAt)],
  ]
  if (c.status === 'resolved') {
    fields.push(['resolution', formatValue(c.resolution, 200)])
    fields.push(['resolved', `${formatTime(c.resolvedAt)}${c.resolvedBy ? ` by ${c.resolvedBy}` : ''}`])
  }
  const values = renderTable(
    ['origin', 'hlc', 'value'],
    c.values.map((v) => [v.origin, v.hlc ?? '-', formatValue(v.value, 200)]),
  )
  const hint = c.status === 'open' ? `\nresolve with: dru conflicts resolve ${c.id} '<json value>'\n` : ''
  return `${renderFields(fields)}\n\n${values}\n${hint}`
}

function parseJsonValue(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new InvalidArgumentError(`not JSON; quote strings, e.g. '"paid"' (got ${text})`)
  }
}

export const conflictsCommand: CommandModule = {
  register(program: Command, ctx: CliContext) {
    const conflicts = program
      .command('conflicts')
      .description('list, show and resolve concurrent edits found during reconciliation')

    withAdminOptions(
      conflicts
        .command('list', { isDefault: true })
        .description('list conflicts (open by default)')
        .option('--status <status>', 'open, resolved or all', 'open'),
      { json: true },
    ).action(async (opts: AdminOptions & { status: string }) => {
      const list = await clientFor(opts, ctx).get<ConflictJson[]>(
        `/conflicts?status=${encodeURIComponent(opts.status)}`,
      )
      if (opts.json) printJson(ctx, list)
      else ctx.stdout(renderConflictList(list))
    })

    withAdminOptions(
      conflicts
        .command('show')
        .description('show one conflict and its competing values')
        .argument('<id>', 'conflict id'),
      {
        json: true,
      },
    ).action(async (id: string, opts: AdminOptions) => {
      const conflict = await clientFor(opts, ctx).get<ConflictJson>(`/conflicts/${encodeURIComponent(id)}`)
      if (opts.json) printJson(ctx, conflict)
      else ctx.stdout(renderConflict(conflict))
    })

    withAdminOptions(
      conflicts
        .command('resolve')
        .description('settle a conflict: the value is written as a new change that replicates')
        .argument('<id>', 'conflict id')
        .argument('<json-value>', 'the value to keep, as JSON (e.g. \'"paid"\', 3, \'{"qty":2}\')', parseJsonValue),
      { json: true },
    ).action(async (id: string, value: unknown, opts: AdminOptions) => {
      const result = await clientFor(opts, ctx).post<ResolveJson>(`/conflicts/${encodeURIComponent(id)}/resolve`, {
        value,
      })
      if (opts.json) printJson(ctx, result)
      else
        ctx.stdout(
          `resolved conflict ${result.id}${result.event ? ` with event ${result.event.origin}#${result.event.seq}` : ' (no change needed)'}\n`,
        )
    })
  },
}
