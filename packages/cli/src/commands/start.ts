import type { Command } from 'commander'
import { isDruError } from '@dru/core'
import { loadConfig, type CliConfig } from '../config.js'
import type { CliContext, CommandModule } from '../context.js'
import { CliError, ExitCode } from '../exit-codes.js'

/** Loads `file`, then runs the runtime's own check when it has one; CONFIG errors name the file. */
export function checkWithRuntime(
  config: CliConfig,
  file: string,
  validate: ((c: unknown) => unknown) | undefined,
): void {
  if (!validate) return
  try {
    validate(config)
  } catch (err) {
    if (isDruError(err, 'CONFIG_INVALID')) throw new CliError(ExitCode.CONFIG, `${file}: ${err.message}`, err.code)
    throw err
  }
}

/**
 * Secrets from the environment, so they need not sit in dru.json: `DRU_SECRET` (the cluster
 * secret) and `DRU_ADMIN_TOKEN` (the admin token), each used when the config gives none.
 */
export function withEnvSecrets(config: CliConfig, env: NodeJS.ProcessEnv): CliConfig {
  let c = config
  if (env.DRU_SECRET && c.secret === undefined && c.secretFile === undefined) c = { ...c, secret: env.DRU_SECRET }
  if (env.DRU_ADMIN_TOKEN && c.admin && c.admin.token === undefined && c.admin.tokenFile === undefined)
    c = { ...c, admin: { ...c.admin, token: env.DRU_ADMIN_TOKEN } }
  return c
}

export const startCommand: CommandModule = {
  register(program: Command, ctx: CliContext) {
    program
      .command('start')
      .description('open a DRU from a JSON config and run it until SIGINT/SIGTERM')
      .requiredOption('--config <file>', 'dru.json: id, path, listen, admin, peers, …')
      .option('--check', 'only load and validate the config, then exit')
      .action(async (opts: { config: string; check?: boolean }) => {
        const config = withEnvSecrets(loadConfig(opts.config, ctx.cwd), ctx.env)
        const runtime = await ctx.loadRuntime()
        checkWithRuntime(config, opts.config, runtime.validateConfig?.bind(runtime))
        if (opts.check) {
          ctx.stdout(`config OK: ${config.id} at ${config.path}\n`)
          return
        }
        if (!runtime.openDru)
          throw new CliError(ExitCode.NOT_SUPPORTED, 'this build has no DRU runtime (openDru) wired; cannot start')
        const dru = await runtime.openDru(config)
        const admin = config.admin
          ? ` · admin http://${config.admin.host ?? '127.0.0.1'}:${config.admin.port ?? 7401}`
          : ''
        ctx.stdout(`dru ${config.id} started (${dru.state?.() ?? 'starting'})${admin}\n`)
        const signal = await ctx.waitForShutdown()
        ctx.stdout(`${signal}: closing ${config.id}…\n`)
        await dru.close()
        ctx.stdout(`dru ${config.id} stopped\n`)
      })
  },
}
