import type { Command } from 'commander'
import type { DocumentSideJson, VerifyJson } from '@dru/node/admin-api'
import type { CliContext, CommandModule } from '../context.js'
import { CliError, ExitCode } from '../exit-codes.js'
import { formatBool, renderTable } from '../render.js'
import { clientFor, printJson, progressFor, withAdminOptions, type AdminOptions } from './shared.js'

/** Short form of a side of a differing document: its heads (8 hex characters each), or that it lacks it. */
function side(s: DocumentSideJson | null): string {
  if (!s) return 'absent'
  if (s.digest === 'isolated') return 'isolated'
  return s.heads.length ? s.heads.map((h) => h.slice(0, 8)).join(',') : 'empty'
}

/** Per peer, the documents that differ with both sides' heads. */
function renderDifferences(v: VerifyJson): string {
  let out = ''
  for (const p of v.peers) {
    if (p.logsEqual === false)
      out += `\n${p.peer}: logs differ, documents not compared: catch up first (dru gaps, dru wait)\n`
    if (!p.differences?.length) continue
    const more = (p.differingDocuments ?? 0) - p.differences.length
    out += `\n${p.differingDocuments ?? p.differences.length} document(s) differ from ${p.peer}`
    if (p.tree) out += ` (found in ${p.tree.roundTrips} round trips, ${p.tree.bytes} bytes)`
    out += ':\n'
    out += renderTable(
      ['document', 'local heads', `${p.peer} heads`],
      p.differences.map((d) => [d.docId, side(d.local), side(d.remote)]),
    )
    out += more > 0 ? `\n… and ${more} more (--json lists up to 1,000)\n` : '\n'
    out += `repair from the log: dru repair ${p.differences
      .slice(0, 5)
      .map((d) => d.docId)
      .join(' ')}${p.differences.length > 5 ? ' …' : ''}\n`
  }
  return out
}

/** Table of peers plus a verdict line, then the documents that differ. */
export function renderVerify(v: VerifyJson): string {
  const rows = v.peers.map((p) => {
    const notes: string[] = []
    if (p.error) notes.push(p.error)
    if (p.divergentOrigins?.length) notes.push(`divergent origins: ${p.divergentOrigins.join(', ')}`)
    if (p.docsDiffering?.length)
      notes.push(
        `${p.docsDiffering.length} docs differ: ${p.docsDiffering.slice(0, 5).join(', ')}${p.docsDiffering.length > 5 ? ', …' : ''}`,
      )
    return [p.peer, formatBool(p.reachable), formatBool(p.equal), p.remoteDigest ?? '-', notes.join('; ')]
  })
  const reachable = v.peers.filter((p) => p.reachable).length
  const kind = v.deep ? 'fingerprints and document digests' : 'fingerprints'
  const verdict = v.ok
    ? `in sync: ${kind} equal with ${reachable} reachable peer(s); local ${v.local.digest}`
    : reachable === 0 && v.peers.length > 0
      ? `NOT verified: no peer is reachable to compare with (local ${v.local.digest})`
      : `NOT in sync: ${kind} differ (local ${v.local.digest})`
  const table = v.peers.length ? `${renderTable(['peer', 'reachable', 'equal', 'peer digest', 'notes'], rows)}\n\n` : ''
  return `${table}${verdict}\n${renderDifferences(v)}`
}

export const verifyCommand: CommandModule = {
  register(program: Command, ctx: CliContext) {
    withAdminOptions(
      program
        .command('verify')
        .description('compare fingerprints with every reachable peer (exit 5 when not in sync)')
        .option('--deep', 'also compare materialised documents and name those that differ'),
      { json: true, progress: true },
    ).action(async (opts: AdminOptions & { deep?: boolean }) => {
      const client = clientFor(opts, ctx)
      const progress = progressFor(opts, ctx)
      const result = await client.stream<VerifyJson>(`/verify${opts.deep ? '?deep=1' : ''}`, (p) => progress.update(p))
      if (opts.json) printJson(ctx, result)
      else ctx.stdout(renderVerify(result))
      if (!result.ok)
        throw new CliError(
          ExitCode.NOT_IN_SYNC,
          'verify found differences; run `dru gaps` and wait for catch-up, or see the runbook',
        )
    })
  },
}
