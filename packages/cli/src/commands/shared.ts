import { InvalidArgumentError, type Command } from 'commander'
import { createAdminClient, type AdminClient } from '../admin-client.js'
import { resolveAdminToken, resolveAdminUrl } from '../config.js'
import type { CliContext } from '../context.js'
import { createProgressReporter, type ProgressReporter } from '../progress.js'

/** Options every admin-talking command accepts. */
export interface AdminOptions {
  admin?: string
  config?: string
  tokenFile?: string
  timeout: number
  json?: boolean
  quiet?: boolean
}

/** Adds `--admin`, `--config`, `--timeout` (and `--json` when the output is data). */
export function withAdminOptions(cmd: Command, opts: { json?: boolean; progress?: boolean } = {}): Command {
  cmd
    .option('--admin <url>', 'admin HTTP address of the DRU (default: $DRU_ADMIN, --config, http://127.0.0.1:7401)')
    .option('--config <file>', 'read the admin address (and token) from this dru.json')
    .option('--token-file <file>', 'the admin token, for a DRU that has one (default: $DRU_ADMIN_TOKEN, --config)')
    .option('--timeout <seconds>', 'give up after this long without an answer', parseSeconds, 30)
  if (opts.json) cmd.option('--json', 'print the result as JSON')
  if (opts.progress) cmd.option('-q, --quiet', 'no progress lines on stderr')
  return cmd
}

function parseSeconds(value: string): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number of seconds')
  return n
}

/** A client for the DRU these options point at. */
export function clientFor(opts: AdminOptions, ctx: CliContext): AdminClient {
  const token = resolveAdminToken(opts, ctx.env, ctx.cwd)
  return createAdminClient({
    baseUrl: resolveAdminUrl(opts, ctx.env, ctx.cwd),
    timeoutMs: opts.timeout * 1000,
    ...(token ? { token } : {}),
  })
}

/** Progress lines on stderr unless `--quiet`. */
export function progressFor(opts: AdminOptions, ctx: CliContext): ProgressReporter {
  if (opts.quiet) return { update: () => {} }
  return createProgressReporter({ write: ctx.stderr, now: ctx.now })
}

/** Pretty JSON plus newline on stdout. */
export function printJson(ctx: CliContext, value: unknown): void {
  ctx.stdout(`${JSON.stringify(value, null, 2)}\n`)
}
