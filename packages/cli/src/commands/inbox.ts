import { InvalidArgumentError, type Command } from 'commander'
import type {
  InboxEntryJson,
  InboxForgetJson,
  InboxListJson,
  InboxRequeueJson,
  InboxRetryJson,
} from '@dru/node/admin-api'
import type { CliContext, CommandModule } from '../context.js'
import { CliError, ExitCode } from '../exit-codes.js'
import { formatCount, formatTime, renderFields, renderTable } from '../render.js'
import { clientFor, printJson, withAdminOptions, type AdminOptions } from './shared.js'

const STATES = ['open', 'pending', 'waiting', 'dead', 'skipped', 'all']

const event = (e: InboxEntryJson) => `${e.origin}#${e.seq}`
const handlerName = (e: InboxEntryJson) => (e.registered ? e.handler : `${e.handler} (not registered)`)

/** An error message in one table cell: one line, shortened to `max` characters. */
function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ')
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat
}

/** What happens next to an entry, in one cell. */
function when(e: InboxEntryJson): string {
  if (e.state === 'pending' && e.attempts === 0 && !e.registered) return 'once its handler is registered'
  if (e.state === 'pending') return `${e.attempts === 0 ? 'run' : 'retry'} ${formatTime(e.nextAttemptAt)}`
  if (e.state === 'dead') return `dead since ${formatTime(e.settledAt)}`
  if (e.state === 'skipped') return `skipped ${formatTime(e.settledAt)}`
  return 'behind an earlier event'
}

/** One row per entry, then the totals and what to do. */
export function renderInboxList(list: InboxListJson): string {
  const c = list.counts
  const totals = `${formatCount(c.pending)} pending, ${formatCount(c.waiting)} waiting, ${formatCount(c.dead)} dead${c.skipped > 0 ? `, ${formatCount(c.skipped)} skipped` : ''}`
  if (list.entries.length === 0) return `no inbox entries to show (${totals})\n`
  const rows = list.entries.map((e) => [
    String(e.id),
    handlerName(e),
    event(e),
    e.docId,
    e.state,
    String(e.attempts),
    when(e),
    oneLine(e.lastError ?? '-', 60),
  ])
  const table = renderTable(
    ['id', 'handler', 'event', 'doc', 'state', { header: 'attempts', align: 'right' }, 'when', 'last error'],
    rows,
  )
  const more = list.next !== undefined ? `\nmore entries: add --after ${list.next}` : ''
  return `${table}\n\n${totals}${more}\n`
}

/** Every detail of one entry, its error's stack and the commands that settle it. */
export function renderInboxEntry(e: InboxEntryJson): string {
  const fields: [string, string][] = [
    ['id', String(e.id)],
    ['handler', handlerName(e)],
    ['event', event(e)],
    ['doc', e.docId],
    ['state', e.state],
    ['attempts', String(e.attempts)],
    ['first failed', formatTime(e.firstFailedAt)],
    ['last failed', formatTime(e.lastFailedAt)],
  ]
  if (e.state === 'pending') fields.push(['next retry', formatTime(e.nextAttemptAt)])
  if (e.state === 'dead') fields.push(['dead since', formatTime(e.settledAt)])
  if (e.state === 'skipped') fields.push(['skipped', `${formatTime(e.settledAt)}${e.note ? ` (${e.note})` : ''}`])
  fields.push(['last error', e.lastError ?? '-'])
  const stack = e.errorStack ? `\n\n${e.errorStack}` : ''
  const hint =
    e.state === 'waiting'
      ? '\nit runs once the earlier owed event of its document is done or skipped (dru inbox list)\n'
      : e.state === 'skipped'
        ? ''
        : `\nretry with: dru inbox retry ${e.id}\nskip with:  dru inbox skip ${e.id} --reason '<why>'\n`
  return `${renderFields(fields)}${stack}\n${hint}`
}

function parseId(value: string): string {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`an inbox entry id is a number (got ${value})`)
  return value
}

function parseLimit(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new InvalidArgumentError('expected an integer in 1..1000')
  return n
}

export const inboxCommand: CommandModule = {
  register(program: Command, ctx: CliContext) {
    const inbox = program
      .command('inbox')
      .description('events an event handler owes: list, show, retry, skip (dead letters), forget a removed handler')

    withAdminOptions(
      inbox
        .command('list', { isDefault: true })
        .description('list inbox entries (pending, waiting and dead by default)')
        .option('--state <state>', `${STATES.join(', ')}`, 'open')
        .option('--handler <name>', 'only this handler')
        .option('--limit <n>', 'at most this many (1..1000)', parseLimit, 100)
        .option('--after <id>', 'continue after this id (paging)', parseId),
      { json: true },
    ).action(async (opts: AdminOptions & { state: string; handler?: string; limit: number; after?: string }) => {
      if (!STATES.includes(opts.state))
        throw new CliError(ExitCode.USAGE, `--state must be one of ${STATES.join(', ')} (got ${opts.state})`)
      const q = new URLSearchParams({ state: opts.state, limit: String(opts.limit) })
      if (opts.handler !== undefined) q.set('handler', opts.handler)
      if (opts.after !== undefined) q.set('after', opts.after)
      const list = await clientFor(opts, ctx).get<InboxListJson>(`/inbox?${q}`)
      if (opts.json) printJson(ctx, list)
      else ctx.stdout(renderInboxList(list))
    })

    withAdminOptions(
      inbox
        .command('show')
        .description('one entry: its event, attempts, error and stack')
        .argument('<id>', 'entry id', parseId),
      { json: true },
    ).action(async (id: string, opts: AdminOptions) => {
      const entry = await clientFor(opts, ctx).get<InboxEntryJson>(`/inbox/${id}`)
      if (opts.json) printJson(ctx, entry)
      else ctx.stdout(renderInboxEntry(entry))
    })

    withAdminOptions(
      inbox
        .command('retry')
        .description(
          "run an entry's handler now (after fixing it); exit 13 if it fails again. --dead: every dead letter gets one more try",
        )
        .argument('[id]', 'entry id', parseId)
        .option('--dead', 'put every dead letter back in line instead (one more try each, by the retry worker)')
        .option('--handler <name>', 'with --dead: only this handler'),
      { json: true },
    ).action(async (id: string | undefined, opts: AdminOptions & { dead?: boolean; handler?: string }) => {
      const client = clientFor(opts, ctx)
      if ((id === undefined) === !opts.dead) throw new CliError(ExitCode.USAGE, 'give an entry id or --dead (not both)')
      if (opts.handler !== undefined && !opts.dead) throw new CliError(ExitCode.USAGE, '--handler goes with --dead')
      if (opts.dead) {
        const r = await client.post<InboxRequeueJson>(
          '/inbox/retry-dead',
          opts.handler !== undefined ? { handler: opts.handler } : {},
        )
        if (opts.json) printJson(ctx, r)
        else
          ctx.stdout(
            `${formatCount(r.requeued)} dead letter${r.requeued === 1 ? '' : 's'}${r.handler ? ` of ${r.handler}` : ''} put back in line for one more try each; follow with: dru inbox list\n`,
          )
        return
      }
      const r = await client.post<InboxRetryJson>(`/inbox/${id}/retry`, {})
      if (opts.json) printJson(ctx, r)
      if (r.outcome === 'done') {
        if (!opts.json)
          ctx.stdout(`inbox entry ${r.id}: the handler ran and its effects committed; the entry is gone\n`)
        return
      }
      const e = r.entry
      const after = e
        ? `; it is ${e.state} after ${e.attempts} attempts${e.state === 'pending' ? `, next retry ${formatTime(e.nextAttemptAt)}` : ''}`
        : ''
      throw new CliError(
        ExitCode.HANDLER_FAILED,
        `inbox entry ${r.id}: the handler failed again: ${r.error ?? 'unknown error'}${after}`,
        'HANDLER_FAILED',
      )
    })

    withAdminOptions(
      inbox
        .command('skip')
        .description('give an entry up: its handler never runs on that event (recorded with the time and reason)')
        .argument('<id>', 'entry id', parseId)
        .option('--reason <text>', 'why, for the record (e.g. a ticket)'),
      { json: true },
    ).action(async (id: string, opts: AdminOptions & { reason?: string }) => {
      const e = await clientFor(opts, ctx).post<InboxEntryJson>(
        `/inbox/${id}/skip`,
        opts.reason !== undefined ? { reason: opts.reason } : {},
      )
      if (opts.json) printJson(ctx, e)
      else ctx.stdout(`inbox entry ${e.id} skipped: ${e.handler} will not run on ${event(e)} (doc ${e.docId})\n`)
    })

    withAdminOptions(
      inbox
        .command('forget')
        .description(
          'forget a handler removed from the application: its name and every entry (events stop being owed to it)',
        )
        .argument('<handler>', 'the handler name'),
      { json: true },
    ).action(async (handler: string, opts: AdminOptions) => {
      const r = await clientFor(opts, ctx).post<InboxForgetJson>('/inbox/forget', { handler })
      if (opts.json) printJson(ctx, r)
      else
        ctx.stdout(
          `handler ${r.handler} forgotten: ${formatCount(r.dropped)} entr${r.dropped === 1 ? 'y' : 'ies'} dropped; events stored from now on are not owed to it\n`,
        )
    })
  },
}
