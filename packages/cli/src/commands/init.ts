import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { isAbsolute, join, relative, resolve } from 'node:path'
import type { Command } from 'commander'
import { parseDruId } from '@dru/core'
import { generateKeys } from '@dru/sync'
import type { CliContext, CommandModule } from '../context.js'
import { CliError, ExitCode } from '../exit-codes.js'
import { printJson } from './shared.js'

/** One DRU of the cluster to scaffold: `id=host:port`, the address its peers dial. */
export interface InitMember {
  readonly id: string
  readonly host: string
  readonly port: number
}

/** A file `dru init` writes; `private` ones are mode 0600 and must never leave their DRU's machine (keys) or the cluster (secret, token). */
export interface InitFile {
  readonly path: string
  readonly mode: number
  readonly private: boolean
}

/** What `dru init` wrote (its `--json` output). */
export interface InitResult {
  readonly dir: string
  readonly members: readonly InitMember[]
  readonly files: readonly InitFile[]
  /** Per DRU: the files its machine needs. */
  readonly copy: Record<string, string[]>
}

const PRIVATE = 0o600
const PUBLIC = 0o644

/** Parses `us-east=127.0.0.1:7301` (IPv6 as `[::1]:7301`). */
export function parseMember(arg: string): InitMember {
  const usage = `expected ID=HOST:PORT, e.g. us-east=127.0.0.1:7301 (got ${JSON.stringify(arg)})`
  const eq = arg.indexOf('=')
  if (eq <= 0) throw new CliError(ExitCode.USAGE, usage)
  const id = arg.slice(0, eq)
  try {
    parseDruId(id)
  } catch (err) {
    throw new CliError(ExitCode.USAGE, `${JSON.stringify(id)} is not a DRU id: ${(err as Error).message}`)
  }
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(arg.slice(eq + 1))
  const port = m ? Number(m[2]) : NaN
  if (!m || !(port >= 1 && port <= 65535)) throw new CliError(ExitCode.USAGE, usage)
  return { id, host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port }
}

const urlHost = (host: string) => (host.includes(':') ? `[${host}]` : host)

/**
 * The config of one member. Every secret is a file reference, so configs can be read,
 * diffed and shared; paths are relative to the config file (the CLI resolves them so).
 */
export function memberConfig(m: InitMember, all: readonly InitMember[], adminPort: number): Record<string, unknown> {
  return {
    id: m.id,
    path: `./data/${m.id}.db`,
    listen: { host: m.host, port: m.port },
    // The admin API stays on loopback: operators reach it on the machine (or through a tunnel).
    admin: { host: '127.0.0.1', port: adminPort, tokenFile: './admin-token' },
    peers: all.filter((p) => p.id !== m.id).map((p) => ({ id: p.id, url: `ws://${urlHost(p.host)}:${p.port}` })),
    secretFile: './secret',
    keys: { privateKeyFile: `./keys/${m.id}.key`, publicKeysDir: './keys' },
  }
}

/**
 * Writes a cluster's files into `dir`: `<id>.json` per DRU, `keys/<id>.key` (0600) and
 * `keys/<id>.pub`, `secret` and `admin-token` (0600). Refuses to overwrite any of them
 * unless `force`; checks everything before writing anything.
 */
export function initCluster(
  dir: string,
  members: readonly InitMember[],
  opts: { force?: boolean; adminBasePort?: number } = {},
): InitResult {
  if (members.length === 0)
    throw new CliError(
      ExitCode.USAGE,
      'name at least one DRU: dru init us-east=127.0.0.1:7301 eu-west=127.0.0.1:7302 …',
    )
  const ids = new Set<string>()
  const addresses = new Set<string>()
  for (const m of members) {
    if (ids.has(m.id)) throw new CliError(ExitCode.USAGE, `DRU id ${m.id} is given twice`)
    const address = `${m.host}:${m.port}`
    if (addresses.has(address)) throw new CliError(ExitCode.USAGE, `address ${address} is given to two DRUs`)
    ids.add(m.id)
    addresses.add(address)
  }
  // Default admin port: the sync port + 100 (7301 → 7401), or --admin-base-port + index.
  const adminPorts = members.map((m, i) => (opts.adminBasePort !== undefined ? opts.adminBasePort + i : m.port + 100))
  for (const [i, p] of adminPorts.entries()) {
    if (p > 65535)
      throw new CliError(
        ExitCode.USAGE,
        `admin port ${p} for ${members[i]!.id} is out of range: pass --admin-base-port`,
      )
  }

  const planned: Array<{ path: string; content: string; mode: number }> = []
  const plan = (path: string, content: string, mode: number) => planned.push({ path: join(dir, path), content, mode })
  plan('secret', `${randomBytes(32).toString('base64url')}\n`, PRIVATE)
  plan('admin-token', `${randomBytes(32).toString('base64url')}\n`, PRIVATE)
  for (const [i, m] of members.entries()) {
    const { privateKey, publicKey } = generateKeys()
    plan(`keys/${m.id}.key`, privateKey, PRIVATE)
    plan(`keys/${m.id}.pub`, publicKey, PUBLIC)
    plan(`${m.id}.json`, `${JSON.stringify(memberConfig(m, members, adminPorts[i]!), null, 2)}\n`, PUBLIC)
  }
  const existing = planned.filter((f) => existsSync(f.path)).map((f) => f.path)
  if (existing.length > 0 && !opts.force) {
    throw new CliError(
      ExitCode.REFUSED,
      `refusing to overwrite ${existing.length} existing file(s), e.g. ${existing[0]} (new keys and secrets would lock the running cluster out): pass --force to replace them`,
    )
  }

  mkdirSync(join(dir, 'keys'), { recursive: true, mode: 0o755 })
  mkdirSync(join(dir, 'data'), { recursive: true, mode: 0o700 })
  for (const f of planned) {
    writeFileSync(f.path, f.content, { mode: f.mode })
    chmodSync(f.path, f.mode) // an overwritten file keeps its old mode otherwise
  }
  const copy = Object.fromEntries(
    members.map((m) => [
      m.id,
      [`${m.id}.json`, 'secret', 'admin-token', `keys/${m.id}.key`, ...members.map((p) => `keys/${p.id}.pub`)],
    ]),
  )
  return {
    dir,
    members,
    files: planned.map((f) => ({ path: f.path, mode: f.mode, private: f.mode === PRIVATE })),
    copy,
  }
}

/** Human summary: what was written and what to copy where, then how to start. */
export function renderInit(r: InitResult, cwd: string): string {
  const shown = relative(cwd, r.dir) || '.'
  const lines = [`wrote a ${r.members.length}-DRU cluster to ${shown}/:`, '']
  for (const f of r.files)
    lines.push(`  ${f.mode.toString(8).padStart(4, '0')}  ${relative(r.dir, f.path)}${f.private ? '   (secret)' : ''}`)
  lines.push('', 'next:')
  if (r.members.length > 1) {
    lines.push("  copy to each DRU's machine only what it needs (keep the modes; never copy another DRU's .key):")
    for (const [id, files] of Object.entries(r.copy)) lines.push(`    ${id}: ${files.join(' ')}`)
  }
  for (const m of r.members) lines.push(`  start ${m.id}:  dru start --config ${join(shown, `${m.id}.json`)}`)
  const first = r.members[0]!
  lines.push(
    `  check:  dru status --config ${join(shown, `${first.id}.json`)}    (the CLI reads the admin address and token from the config)`,
  )
  return `${lines.join('\n')}\n`
}

export const initCommand: CommandModule = {
  register(program: Command, ctx: CliContext) {
    program
      .command('init')
      .description('scaffold a cluster: a config, an Ed25519 key pair per DRU, the shared secret and an admin token')
      .argument(
        '<members...>',
        'ID=HOST:PORT for each DRU: its id and the address peers dial (e.g. us-east=127.0.0.1:7301)',
      )
      .option('--dir <dir>', 'folder to write into', './cluster')
      .option('--admin-base-port <port>', 'admin ports BASE, BASE+1, … (default: each sync port + 100)')
      .option('--force', 'replace existing files (new keys and secret: restart every DRU with the new files)')
      .option('--json', 'print what was written as JSON')
      .action((args: string[], opts: { dir: string; adminBasePort?: string; force?: boolean; json?: boolean }) => {
        const members = args.map(parseMember)
        let adminBasePort: number | undefined
        if (opts.adminBasePort !== undefined) {
          adminBasePort = Number(opts.adminBasePort)
          if (!Number.isInteger(adminBasePort) || adminBasePort < 1 || adminBasePort > 65535) {
            throw new CliError(
              ExitCode.USAGE,
              `--admin-base-port must be a port 1-65535 (got ${JSON.stringify(opts.adminBasePort)})`,
            )
          }
        }
        const dir = isAbsolute(opts.dir) ? opts.dir : resolve(ctx.cwd, opts.dir)
        const result = initCluster(dir, members, {
          ...(opts.force ? { force: true } : {}),
          ...(adminBasePort !== undefined ? { adminBasePort } : {}),
        })
        if (opts.json) printJson(ctx, result)
        else ctx.stdout(renderInit(result, ctx.cwd))
      })
  },
}
