import type { Command } from 'commander'
import { InvalidArgumentError } from 'commander'
import type { StatusJson } from '@dru/node/admin-api'
import type { CliContext, CommandModule } from '../context.js'
import { CliError, ExitCode } from '../exit-codes.js'
import { formatSeconds } from '../render.js'
import { clientFor, printJson, progressFor, withAdminOptions, type AdminOptions } from './shared.js'

const STATES = ['starting', 'catching-up', 'verifying', 'active', 'isolated']

function parseState(value: string): string {
  if (!STATES.includes(value)) throw new InvalidArgumentError(`expected one of ${STATES.join(', ')}`)
  return value
}

function parsePositive(value: string): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number')
  return n
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Polls `/status` until the DRU reaches a lifecycle state (default `active`), printing
 * each state change and, while events are pending, catch-up progress (events
 * exchanged, rate, ETA) from the peers' total lag. For scripts and the runbook:
 * `dru wait && echo ready`.
 */
export const waitCommand: CommandModule = {
  register(program: Command, ctx: CliContext) {
    withAdminOptions(
      program
        .command('wait')
        .description('wait until the DRU reaches a lifecycle state (default active), showing catch-up progress')
        .option('--for <state>', `state to wait for: ${STATES.join(', ')}`, parseState, 'active')
        .option('--within <seconds>', 'give up (exit 10) after this long', parsePositive, 300)
        .option('--interval <ms>', 'polling interval', parsePositive, 500),
      { json: true, progress: true },
    ).action(async (opts: AdminOptions & { for: string; within: number; interval: number }) => {
      const client = clientFor(opts, ctx)
      const progress = progressFor(opts, ctx)
      const started = ctx.now()
      let lastState: string | undefined
      let maxLag = 0
      for (;;) {
        const status = await client.get<StatusJson>('/status')
        if (status.state !== lastState) {
          if (!opts.quiet) ctx.stderr(`state: ${lastState === undefined ? '' : `${lastState} -> `}${status.state}\n`)
          lastState = status.state
        }
        const lag = status.peers.filter((p) => p.connected).reduce((a, p) => a + p.lagEvents, 0)
        maxLag = Math.max(maxLag, lag)
        if (maxLag > 0) progress.update({ phase: 'catch-up', done: maxLag - lag, total: maxLag, unit: 'events' })
        if (lag === 0) maxLag = 0
        if (status.state === opts.for) {
          if (opts.json) printJson(ctx, status)
          else ctx.stdout(`${status.id} is ${status.state} after ${formatSeconds((ctx.now() - started) / 1000)}\n`)
          return
        }
        if (ctx.now() - started + opts.interval > opts.within * 1000) {
          throw new CliError(
            ExitCode.TIMEOUT,
            `${status.id} still ${status.state} after ${opts.within}s (waiting for ${opts.for}); see dru status and dru gaps`,
          )
        }
        await sleep(opts.interval)
      }
    })
  },
}
