import { readFileSync } from 'node:fs'
import { dirname, isAbsolute, resolve } from 'node:path'
import { CliError, ExitCode } from './exit-codes.js'

/** Default admin address when neither `--admin`, `DRU_ADMIN` nor a config file names one. */
export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:7401'

/**
 * The parts of `dru.json` the CLI itself reads. Every other field goes to `openDru`
 * unchanged, and the node validates it (its messages name the bad field).
 */
export interface CliConfig {
  readonly id: string
  readonly path: string
  readonly admin?: {
    readonly host?: string
    readonly port?: number
    readonly token?: string
    readonly tokenFile?: string
  }
  readonly [field: string]: unknown
}

/**
 * Reads and checks a JSON config file. `path` is resolved against the file's folder so
 * a config works from any working directory. Failures throw CliError(CONFIG) naming
 * the file and the field.
 */
export function loadConfig(file: string, cwd = process.cwd()): CliConfig {
  const full = resolve(cwd, file)
  let text: string
  try {
    text = readFileSync(full, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message
    throw new CliError(ExitCode.CONFIG, `cannot read config file ${file}: ${why}`)
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new CliError(ExitCode.CONFIG, `config file ${file} is not valid JSON: ${(err as Error).message}`)
  }
  return checkConfig(raw, file, dirname(full))
}

/** Checks the fields the CLI relies on; `baseDir` anchors a relative `path`. */
export function checkConfig(raw: unknown, file: string, baseDir: string): CliConfig {
  const bad = (field: string, problem: string) =>
    new CliError(ExitCode.CONFIG, `${file}: config field "${field}" ${problem}`, 'CONFIG_INVALID')
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new CliError(ExitCode.CONFIG, `${file}: the config must be a JSON object`, 'CONFIG_INVALID')
  }
  const c = raw as Record<string, unknown>
  if (typeof c.id !== 'string' || c.id === '') throw bad('id', 'is required: the DRU id, e.g. "eu-west-1"')
  if (typeof c.path !== 'string' || c.path === '')
    throw bad('path', 'is required: the SQLite file, e.g. "./eu-west-1.db"')
  if (c.admin !== undefined) {
    const a = c.admin as Record<string, unknown> | null
    if (a === null || typeof a !== 'object' || Array.isArray(a)) throw bad('admin', 'must be an object { host?, port }')
    if (a.host !== undefined && (typeof a.host !== 'string' || a.host === ''))
      throw bad('admin.host', 'must be a host name or address')
    if (a.port !== undefined && !isPort(a.port))
      throw bad('admin.port', `must be an integer 0-65535 (got ${JSON.stringify(a.port)})`)
    if (a.tokenFile !== undefined && (typeof a.tokenFile !== 'string' || a.tokenFile === ''))
      throw bad('admin.tokenFile', 'must be a file path')
  }
  if (c.listen !== undefined) {
    const l = c.listen as Record<string, unknown> | null
    if (l === null || typeof l !== 'object' || Array.isArray(l))
      throw bad('listen', 'must be an object { host?, port }')
    if (l.port !== undefined && !isPort(l.port))
      throw bad('listen.port', `must be an integer 0-65535 (got ${JSON.stringify(l.port)})`)
  }
  if (c.peers !== undefined) {
    if (!Array.isArray(c.peers)) throw bad('peers', 'must be an array of { id, url }')
    c.peers.forEach((p: unknown, i: number) => {
      const peer = p as Record<string, unknown> | null
      if (peer === null || typeof peer !== 'object') throw bad(`peers[${i}]`, 'must be an object { id, url }')
      if (typeof peer.id !== 'string' || peer.id === '') throw bad(`peers[${i}].id`, 'is required')
      if (typeof peer.url !== 'string' || !/^wss?:\/\/./.test(peer.url))
        throw bad(`peers[${i}].url`, `must be a ws:// or wss:// URL (got ${JSON.stringify(peer.url)})`)
    })
  }
  const path = c.path === ':memory:' || isAbsolute(c.path) ? c.path : resolve(baseDir, c.path)
  return { ...c, id: c.id, path, ...withFilesFrom(c, baseDir) } as CliConfig
}

/**
 * Every file a config names (admin token, secret, keys) is relative to the config's own
 * folder, like the database path, so `dru init`'s output works from any working directory.
 */
function withFilesFrom(c: Record<string, unknown>, baseDir: string): Record<string, unknown> {
  const at = (f: unknown) => (typeof f === 'string' && f !== '' && !isAbsolute(f) ? resolve(baseDir, f) : f)
  const out: Record<string, unknown> = {}
  const admin = c.admin as Record<string, unknown> | undefined
  if (admin?.tokenFile !== undefined) out.admin = { ...admin, tokenFile: at(admin.tokenFile) }
  if (c.secretFile !== undefined) out.secretFile = at(c.secretFile)
  const keys = c.keys as Record<string, unknown> | null | undefined
  if (keys !== null && typeof keys === 'object' && !Array.isArray(keys)) {
    const files = keys.publicKeyFiles
    out.keys = {
      ...keys,
      ...(keys.privateKeyFile !== undefined ? { privateKeyFile: at(keys.privateKeyFile) } : {}),
      ...(keys.publicKeysDir !== undefined ? { publicKeysDir: at(keys.publicKeysDir) } : {}),
      ...(files !== null && typeof files === 'object' && !Array.isArray(files)
        ? { publicKeyFiles: Object.fromEntries(Object.entries(files).map(([id, f]) => [id, at(f)])) }
        : {}),
    }
  }
  return out
}

function isPort(v: unknown): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 65535
}

/**
 * Where the admin API is: `--admin`, else `DRU_ADMIN`, else the config file's `admin`,
 * else {@link DEFAULT_ADMIN_URL}.
 */
export function resolveAdminUrl(
  opts: { admin?: string; config?: string },
  env: NodeJS.ProcessEnv,
  cwd: string,
): string {
  let url = opts.admin ?? env.DRU_ADMIN
  if (url === undefined && opts.config !== undefined) {
    const config = loadConfig(opts.config, cwd)
    const host = config.admin?.host ?? '127.0.0.1'
    const port = config.admin?.port ?? 7401
    if (port === 0)
      throw new CliError(
        ExitCode.USAGE,
        `${opts.config} sets admin.port 0 (a random port); pass --admin with the real address`,
      )
    url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  }
  url ??= DEFAULT_ADMIN_URL
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new CliError(
      ExitCode.USAGE,
      `admin address ${JSON.stringify(url)} is not a URL (expected e.g. ${DEFAULT_ADMIN_URL})`,
    )
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new CliError(ExitCode.USAGE, `admin address ${JSON.stringify(url)} must start with http:// or https://`)
  }
  return url.replace(/\/+$/, '')
}

/**
 * The admin token to send: `--token-file`, else `DRU_ADMIN_TOKEN`, else the config file's
 * `admin.token` or `admin.tokenFile`; undefined when none is given (a loopback admin API
 * without a token answers reads, and refuses writes only when it has a token).
 */
export function resolveAdminToken(
  opts: { tokenFile?: string; config?: string },
  env: NodeJS.ProcessEnv,
  cwd: string,
): string | undefined {
  const readToken = (file: string, what: string): string => {
    let token: string
    try {
      token = readFileSync(resolve(cwd, file), 'utf8').replace(/\r?\n$/, '')
    } catch (err) {
      throw new CliError(
        ExitCode.CONFIG,
        `cannot read the admin token from ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      )
    }
    // An empty file would silently send no token at all.
    if (token === '') throw new CliError(ExitCode.CONFIG, `the admin token file ${file} (${what}) is empty`)
    return token
  }
  if (opts.tokenFile !== undefined) return readToken(opts.tokenFile, '--token-file')
  if (env.DRU_ADMIN_TOKEN) return env.DRU_ADMIN_TOKEN
  if (opts.config === undefined) return undefined
  const config = loadConfig(opts.config, cwd)
  if (config.admin?.token !== undefined) return config.admin.token
  if (config.admin?.tokenFile !== undefined) return readToken(config.admin.tokenFile, 'admin.tokenFile')
  return undefined
}
