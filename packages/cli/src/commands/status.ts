import type { Command } from 'commander'
import type { StatusJson } from '@dru/node/admin-api'
import type { CliContext, CommandModule } from '../context.js'
import { formatBool, formatCount, formatSeconds, formatTime, renderFields, renderTable } from '../render.js'
import { clientFor, printJson, withAdminOptions, type AdminOptions } from './shared.js'

/** Human rendering of `GET /status`; `now` gives the "for 5m 02s" part. */
export function renderStatus(s: StatusJson, now: number): string {
  const sinceMs = Date.parse(s.since)
  const age = Number.isNaN(sinceMs) ? '' : ` for ${formatSeconds(Math.max(0, (now - sinceMs) / 1000))}`
  const fields: [string, string][] = [
    ['dru', s.origin ? `${s.id} (origin ${s.origin})` : s.id],
    ['state', `${s.state}${s.state === 'active' ? ' (ready)' : ' (not ready)'}${age}, since ${formatTime(s.since)}`],
    [
      'fingerprint',
      `${s.fingerprint.digest} (${Object.keys(s.fingerprint.vv).length} origins, ${formatCount(Object.values(s.fingerprint.vv).reduce((a, b) => a + b, 0))} events)`,
    ],
    ['conflicts', `${formatCount(s.conflictsOpen)} open`],
  ]
  if (s.inbox) {
    const i = s.inbox
    const owed = i.pending + i.waiting + i.dead > 0
    fields.push([
      'inbox',
      `${formatCount(i.pending)} pending, ${formatCount(i.waiting)} waiting, ${formatCount(i.dead)} dead letter${i.dead === 1 ? '' : 's'}${owed ? ' (dru inbox list)' : ''}`,
    ])
  }
  if (s.writable !== undefined) fields.push(['writable', s.writable ? 'yes' : 'no (restore catch-up pending)'])
  if (s.log) {
    const compacted = Object.values(s.log.base).reduce((a, b) => a + b, 0)
    const stable = Object.values(s.log.floor).reduce((a, b) => a + b, 0)
    fields.push([
      'log',
      `${formatCount(s.log.events)} events stored, ${formatCount(compacted)} compacted, ${formatCount(Math.max(0, stable - compacted))} more compactable now`,
    ])
  }
  const out = [renderFields(fields), '']
  if (s.peers.length === 0) out.push('no peers configured')
  else
    out.push(
      renderTable(
        [
          'peer',
          'connected',
          { header: 'lag events', align: 'right' },
          { header: 'lag', align: 'right' },
          'last seen',
          'membership',
        ],
        s.peers.map((p) => [
          p.id,
          formatBool(p.connected),
          formatCount(p.lagEvents),
          formatSeconds(p.lagSeconds),
          formatTime(p.lastSeen),
          p.membership ?? 'member',
        ]),
      ),
    )
  return `${out.join('\n')}\n`
}

export const statusCommand: CommandModule = {
  register(program: Command, ctx: CliContext) {
    withAdminOptions(program.command('status').description('show lifecycle state, fingerprint, peers and lag'), {
      json: true,
    }).action(async (opts: AdminOptions) => {
      const status = await clientFor(opts, ctx).get<StatusJson>('/status')
      if (opts.json) printJson(ctx, status)
      else ctx.stdout(renderStatus(status, ctx.now()))
    })
  },
}
