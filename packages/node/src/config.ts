import { checkRamp, DruError, parseDruId } from '@dru/core'
import { checkConflictPolicy, type CacheLimits, type ConflictPolicy } from '@dru/documents'
import { INBOX_POLICY_FIELDS, checkInboxPolicy, type Durability, type InboxPolicy } from '@dru/store-sqlite'
import { MAX_TIMER_MS } from '@dru/sync'
import { isLoopbackHost } from './admin-guard.js'

/** The `sync` config's fields: non-negative integers (milliseconds, events for the slack, bytes for the window). */
const SYNC_FIELDS = [
  'heartbeatMs',
  'heartbeatTimeoutMs',
  'startupGraceMs',
  'slackEvents',
  'reconnectBaseMs',
  'reconnectMaxMs',
  'forwardWindowBytes',
]

/**
 * `sync` fields that must be positive: 0 would stop the thing they size, (the reconnect
 * delays) redial a down peer in a tight loop, or (the heartbeat) was taken as "the default".
 */
const POSITIVE_SYNC_FIELDS = new Set([
  'heartbeatMs',
  'heartbeatTimeoutMs',
  'forwardWindowBytes',
  'reconnectBaseMs',
  'reconnectMaxMs',
])

/**
 * The conflict policy when the config names none: `keep-visible`, the value every DRU already
 * shows is recorded as the resolution, nothing is written, every concurrent value stays in the
 * journal (why: docs/ARCHITECTURE.md, *Conflicts*).
 */
export const DEFAULT_CONFLICT_POLICY: ConflictPolicy = 'keep-visible'

/**
 * Ed25519 keys in PEM, inline or as files (`dru init` writes files): our private key
 * (PKCS#8) as `privateKey` or `privateKeyFile` (mode 0600), and every member's public key
 * (SPKI) as a map of PEMs, a map of files, and/or a folder of `<dru-id>.pub` files.
 */
export interface KeysConfig {
  privateKey?: string
  privateKeyFile?: string
  publicKeys?: Record<string, string>
  publicKeyFiles?: Record<string, string>
  publicKeysDir?: string
}

/** Configuration of {@link openDru}. */
export interface DruConfig {
  /** Stable DRU id, e.g. `eu-west-1`. */
  id: string
  /** SQLite file, or ':memory:' for tests. */
  path: string
  /** `machine` (default, synchronous=FULL) or `process` (WAL + NORMAL, survives process crashes only). */
  durability?: Durability
  /** Document cache bounds. Default `{ maxDocs: 10000 }`. */
  cache?: CacheLimits
  /**
   * How conflicts are settled. Default {@link DEFAULT_CONFLICT_POLICY} (`keep-visible`: the
   * value every DRU shows, journaled, nothing written); `manual` leaves them open for an
   * operator; `newest-hlc-wins`, `{ priority }` or a function write a winner.
   */
  conflictPolicy?: ConflictPolicy
  /**
   * The readiness weight after the DRU becomes `active` (`/readyz` `weight`, `/status`
   * `readyWeight`, `dru_ready_weight`): from `startPercent` (default 10) to 100 over `windowMs`
   * (default 300,000), for a load balancer returning traffic gradually.
   */
  ramp?: { startPercent?: number; windowMs?: number }
  /** Wall clock (ms) for HLCs and timestamps; injectable for tests. */
  now?: () => number
  /**
   * Uniform [0, 1) source for the fresh incarnation each open draws (default: the OS's
   * cryptographic generator). Injectable so a seeded simulation replays exactly.
   */
  random?: () => number
  /** How far (ms) a remote timestamp may run ahead before it counts as skewed. Default 60 s. */
  maxClockSkewMs?: number
  /** Where peers reach us (WebSocket). Loopback by default in examples; port 0 picks one. */
  listen?: { host?: string; port?: number }
  /**
   * Admin HTTP (`/healthz`, `/readyz`, `/status`, `/metrics`, …); 127.0.0.1 unless given.
   * `token` (or `tokenFile`, a file readable only by its owner) is required for every POST
   * and, off loopback, for every read but `/healthz` and `/readyz`; a DRU refuses to bind the
   * admin API off loopback without one. `allowedHosts`: more `Host` names it answers to.
   */
  admin?: { host?: string; port?: number; token?: string; tokenFile?: string; allowedHosts?: string[] }
  /** The other members; we dial those with a `url` (they may dial us too). */
  peers?: Array<{ id: string; url?: string }>
  /** Cluster credential (at least 16 characters); required with `listen` or `peers`. */
  secret?: string
  /** The cluster credential read from a file (mode 0600); instead of `secret`. */
  secretFile?: string
  /** Ed25519 keys: ours and every member's public key, ours included, inline or in files. */
  keys?: KeysConfig
  /** Optional TLS for `wss://` (PEM strings). */
  tls?: { cert?: string; key?: string; ca?: string | string[] }
  /** Sync timing: heartbeatMs, heartbeatTimeoutMs, startupGraceMs, slackEvents. */
  sync?: {
    heartbeatMs?: number
    heartbeatTimeoutMs?: number
    startupGraceMs?: number
    slackEvents?: number
    /** Redial backoff after a failed dial or a dropped session: first delay and cap (ms; defaults 100 and 1,000). */
    reconnectBaseMs?: number
    reconnectMaxMs?: number
    /**
     * Bytes of third parties' events a session keeps unacknowledged at once while the peer may
     * get them by another path (default 262,144): what a race between two paths can cost.
     */
    forwardWindowBytes?: number
  }
  /** Start in restore mode: no writes until our earlier events are back from a peer (`dru restore`). */
  restore?: boolean
  /** Accept writes while restoring (operator override; forks stay impossible, reads may be stale). */
  allowWritesWhileRestoring?: boolean
  /**
   * Failing event handlers (see `Dru.onEvent`): `immediateRetries` (default 2), then
   * `delayedRetries` (default 5) after `backoffMs` (default 1,000) doubling up to
   * `maxBackoffMs` (default 60,000), then the event is a dead letter; at most `batch`
   * (default 100) retries per worker turn. `autoRetry: false` stops the retry timer (tests
   * call `dru.inbox.runDue()` themselves).
   */
  inbox?: Partial<InboxPolicy> & { autoRetry?: boolean }
  /** `silent` (default) or `json` (one pino JSON line per event on stdout). */
  log?: 'silent' | 'json'
  /** A logger object instead of `log` (console-shaped: info/warn/error(message, details)). */
  logger?: { info: LogFn; warn: LogFn; error: LogFn; debug?: LogFn }
}

type LogFn = (message: string, details?: Record<string, unknown>) => void

/** Checks one field; returns an error message (without the field name) or undefined. */
export type FieldCheck = (value: unknown) => string | undefined

const positiveInt = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v > 0

/**
 * One row per accepted field: whether it is required and how it is checked. Other
 * modules (sync, admin) extend it with {@link extendConfigFields} before opening.
 */
export const CONFIG_FIELDS: Record<string, { required: boolean; check: FieldCheck }> = {
  id: {
    required: true,
    check: (v) => {
      try {
        parseDruId(v, 'id')
        return undefined
      } catch (err) {
        return (err as Error).message.replace(/^id /, '')
      }
    },
  },
  path: {
    required: true,
    check: (v) =>
      typeof v === 'string' && v.length > 0 ? undefined : `must be a file path or ":memory:" (got ${show(v)})`,
  },
  durability: {
    required: false,
    check: (v) => (v === 'machine' || v === 'process' ? undefined : `must be 'machine' or 'process' (got ${show(v)})`),
  },
  cache: {
    required: false,
    check: (v) => {
      if (v === null || typeof v !== 'object' || Array.isArray(v))
        return `must be an object { maxDocs?, maxBytes? } (got ${show(v)})`
      for (const k of Object.keys(v)) {
        if (k !== 'maxDocs' && k !== 'maxBytes') return `has an unknown field "${k}" (expected maxDocs, maxBytes)`
        if (!positiveInt((v as Record<string, unknown>)[k]))
          return `.${k} must be a positive integer (got ${show((v as Record<string, unknown>)[k])})`
      }
      return undefined
    },
  },
  conflictPolicy: { required: false, check: checkConflictPolicy },
  ramp: { required: false, check: checkRamp },
  now: {
    required: false,
    check: (v) => (typeof v === 'function' ? undefined : `must be a function returning milliseconds (got ${show(v)})`),
  },
  random: {
    required: false,
    check: (v) =>
      typeof v === 'function' ? undefined : `must be a function returning a number in [0, 1) (got ${show(v)})`,
  },
  maxClockSkewMs: {
    required: false,
    check: (v) => (positiveInt(v) ? undefined : `must be a positive integer of milliseconds (got ${show(v)})`),
  },
  listen: { required: false, check: (v) => checkEndpoint(v) },
  admin: { required: false, check: (v) => checkAdmin(v) },
  peers: {
    required: false,
    check: (v) => {
      if (!Array.isArray(v)) return `must be an array of { id, url? } (got ${show(v)})`
      const seen = new Set<unknown>()
      for (const [i, p] of v.entries()) {
        if (p === null || typeof p !== 'object' || Array.isArray(p)) return `[${i}] must be an object { id, url? }`
        for (const k of Object.keys(p))
          if (k !== 'id' && k !== 'url') return `[${i}] has an unknown field "${k}" (expected id, url)`
        try {
          parseDruId((p as { id: unknown }).id, 'id')
        } catch (err) {
          return `[${i}].${(err as Error).message}`
        }
        const id = (p as { id: unknown }).id
        // Two entries for one peer would dial it twice and count its acks twice.
        if (seen.has(id)) return `[${i}].id ${show(id)} is listed twice (one entry per peer)`
        seen.add(id)
        const url = (p as { url?: unknown }).url
        if (url !== undefined && (typeof url !== 'string' || !/^wss?:\/\/[^\s]+$/.test(url)))
          return `[${i}].url must be a ws:// or wss:// URL (got ${show(url)})`
      }
      return undefined
    },
  },
  secret: {
    required: false,
    check: (v) =>
      typeof v === 'string' && v.length >= 16
        ? undefined
        : 'must be a string of at least 16 characters (it is never logged)',
  },
  secretFile: {
    required: false,
    check: (v) => (typeof v === 'string' && v.length > 0 ? undefined : `must be a file path (got ${show(v)})`),
  },
  keys: { required: false, check: checkKeys },
  tls: {
    required: false,
    check: (v) =>
      v !== null && typeof v === 'object' && !Array.isArray(v)
        ? undefined
        : 'must be an object { cert?, key?, ca? } of PEM strings',
  },
  sync: {
    required: false,
    check: (v) => {
      if (v === null || typeof v !== 'object' || Array.isArray(v))
        return `must be an object { ${SYNC_FIELDS.map((f) => `${f}?`).join(', ')} }`
      for (const [k, x] of Object.entries(v)) {
        if (!SYNC_FIELDS.includes(k)) return `has an unknown field "${k}"`
        if (POSITIVE_SYNC_FIELDS.has(k) ? !positiveInt(x) : !(typeof x === 'number' && Number.isInteger(x) && x >= 0))
          return `.${k} must be a ${POSITIVE_SYNC_FIELDS.has(k) ? 'positive' : 'non-negative'} integer (got ${show(x)})`
        if (k.endsWith('Ms') && (x as number) > MAX_TIMER_MS)
          return `.${k} must be at most ${MAX_TIMER_MS} ms, the longest delay a timer holds (got ${show(x)})`
      }
      return undefined
    },
  },
  restore: {
    required: false,
    check: (v) => (typeof v === 'boolean' ? undefined : `must be true or false (got ${show(v)})`),
  },
  allowWritesWhileRestoring: {
    required: false,
    check: (v) => (typeof v === 'boolean' ? undefined : `must be true or false (got ${show(v)})`),
  },
  inbox: { required: false, check: checkInboxConfig },
  log: {
    required: false,
    check: (v) => (v === 'silent' || v === 'json' ? undefined : `must be 'silent' or 'json' (got ${show(v)})`),
  },
  logger: {
    required: false,
    check: (v) =>
      v !== null &&
      typeof v === 'object' &&
      ['info', 'warn', 'error'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function')
        ? undefined
        : 'must be an object with info, warn and error functions',
  },
}

const KEY_FIELDS = ['privateKey', 'privateKeyFile', 'publicKeys', 'publicKeyFiles', 'publicKeysDir']

function checkKeys(v: unknown): string | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    return 'must be { privateKey | privateKeyFile, publicKeys | publicKeyFiles | publicKeysDir }'
  const k = v as Record<string, unknown>
  for (const extra of Object.keys(k))
    if (!KEY_FIELDS.includes(extra)) return `has an unknown field "${extra}" (expected ${KEY_FIELDS.join(', ')})`
  if ((k.privateKey === undefined) === (k.privateKeyFile === undefined))
    return 'needs exactly one of .privateKey (PEM) and .privateKeyFile'
  if (k.privateKey !== undefined && (typeof k.privateKey !== 'string' || !k.privateKey.includes('PRIVATE KEY')))
    return '.privateKey must be a PEM (PKCS#8) Ed25519 private key'
  if (k.privateKeyFile !== undefined && (typeof k.privateKeyFile !== 'string' || k.privateKeyFile === ''))
    return '.privateKeyFile must be a file path'
  if (k.publicKeys === undefined && k.publicKeyFiles === undefined && k.publicKeysDir === undefined)
    return "needs the members' public keys: .publicKeys, .publicKeyFiles or .publicKeysDir"
  for (const map of ['publicKeys', 'publicKeyFiles'] as const) {
    const m = k[map]
    if (m === undefined) continue
    if (m === null || typeof m !== 'object' || Array.isArray(m))
      return `.${map} must map each DRU id to its ${map === 'publicKeys' ? 'PEM public key' : 'public key file'}`
    for (const [id, x] of Object.entries(m as Record<string, unknown>)) {
      if (map === 'publicKeys' && (typeof x !== 'string' || !x.includes('PUBLIC KEY')))
        return `.publicKeys.${id} must be a PEM (SPKI) Ed25519 public key`
      if (map === 'publicKeyFiles' && (typeof x !== 'string' || x === ''))
        return `.publicKeyFiles.${id} must be a file path`
    }
  }
  if (k.publicKeysDir !== undefined && (typeof k.publicKeysDir !== 'string' || k.publicKeysDir === ''))
    return '.publicKeysDir must be a folder path'
  return undefined
}

function checkInboxConfig(v: unknown): string | undefined {
  const known = [...INBOX_POLICY_FIELDS, 'autoRetry']
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    return `must be an object { ${known.join(', ')} } (all optional)`
  for (const k of Object.keys(v))
    if (!known.includes(k)) return `has an unknown field "${k}" (expected ${known.join(', ')})`
  const { autoRetry, ...policy } = v as Record<string, unknown>
  if (autoRetry !== undefined && typeof autoRetry !== 'boolean')
    return `.autoRetry must be true or false (got ${show(autoRetry)})`
  return checkInboxPolicy(policy)
}

/** Shortest accepted admin token: guessing it must be hopeless. */
export const MIN_ADMIN_TOKEN_LENGTH = 16

function checkAdmin(v: unknown): string | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    return `must be an object { host?, port?, token?, tokenFile?, allowedHosts? } (got ${show(v)})`
  const { token, tokenFile, allowedHosts, ...endpoint } = v as Record<string, unknown>
  if (token !== undefined && (typeof token !== 'string' || token.length < MIN_ADMIN_TOKEN_LENGTH))
    return `.token must be a string of at least ${MIN_ADMIN_TOKEN_LENGTH} characters`
  if (tokenFile !== undefined && (typeof tokenFile !== 'string' || tokenFile.length === 0))
    return `.tokenFile must be a file path (got ${show(tokenFile)})`
  if (token !== undefined && tokenFile !== undefined) return 'has both .token and .tokenFile: give one'
  if (
    allowedHosts !== undefined &&
    (!Array.isArray(allowedHosts) ||
      !allowedHosts.every((h) => typeof h === 'string' && /^[A-Za-z0-9.[\]:-]{1,255}$/.test(h)))
  ) {
    return '.allowedHosts must be a list of host names (optionally with :port)'
  }
  const bad = checkEndpoint(endpoint)
  if (bad !== undefined) return bad
  // Off loopback anyone on the network could compact or decommission: a token is mandatory.
  const host = (endpoint as { host?: string }).host
  if (host !== undefined && !isLoopbackHost(host) && token === undefined && tokenFile === undefined) {
    return `.host ${show(host)} is off loopback: set .token or .tokenFile (or DRU_ADMIN_TOKEN for dru start)`
  }
  return undefined
}

function checkEndpoint(v: unknown): string | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    return `must be an object { host?, port? } (got ${show(v)})`
  for (const [k, x] of Object.entries(v)) {
    if (k === 'host') {
      if (typeof x !== 'string' || x.length === 0) return `.host must be a host name or address (got ${show(x)})`
    } else if (k === 'port') {
      if (!(typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 65535))
        return `.port must be an integer in 0..65535 (got ${show(x)})`
    } else return `has an unknown field "${k}" (expected host, port)`
  }
  return undefined
}

/**
 * Checks between fields (after each field passed on its own): networking needs the
 * secret and the keys, and our own public key must be among them.
 */
export function checkNetworkFields(
  c: Pick<DruConfig, 'id' | 'listen' | 'peers' | 'secret'> & { keys?: { publicKeys?: Record<string, string> } },
): void {
  const networked = c.listen !== undefined || (c.peers?.length ?? 0) > 0
  if (!networked) return
  const fail = (field: string, message: string): never => {
    throw new DruError('CONFIG_INVALID', `config field "${field}" ${message}`, { details: { field } })
  }
  if (c.secret === undefined)
    fail('secret', 'is required when listen or peers are set (set it here or in DRU_SECRET for `dru start`)')
  if (c.keys === undefined)
    fail(
      'keys',
      'is required when listen or peers are set: { privateKey, publicKeys } (or their file forms; `dru init` writes them)',
    )
  const publicKeys = c.keys!.publicKeys ?? {}
  if (!Object.hasOwn(publicKeys, c.id)) fail('keys', `.publicKeys must include this DRU's own key (${c.id})`)
  for (const p of c.peers ?? []) {
    if (p.id === c.id) fail('peers', `must not list this DRU itself (${c.id})`)
    if (!Object.hasOwn(publicKeys, p.id)) fail('keys', `.publicKeys has no key for peer ${p.id}`)
  }
}

/** Adds fields (e.g. `listen`, `peers`) that another module validates. */
export function extendConfigFields(fields: Record<string, { required: boolean; check: FieldCheck }>): void {
  Object.assign(CONFIG_FIELDS, fields)
}

/**
 * Validates a configuration object against {@link CONFIG_FIELDS}. The first bad field
 * throws CONFIG_INVALID with a message naming it (and `details.field`); an unknown field
 * is refused too, since a typo would otherwise silently fall back to a default.
 */
export function validateConfig(config: unknown, fields = CONFIG_FIELDS): DruConfig {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new DruError('CONFIG_INVALID', `config must be an object (got ${show(config)})`, { details: { field: '' } })
  }
  const c = config as Record<string, unknown>
  for (const key of Object.keys(c)) {
    if (!(key in fields)) {
      throw new DruError(
        'CONFIG_INVALID',
        `config field "${key}" is not known (known fields: ${Object.keys(fields).join(', ')})`,
        {
          details: { field: key },
        },
      )
    }
  }
  for (const [key, rule] of Object.entries(fields)) {
    const value = c[key]
    if (value === undefined) {
      if (rule.required)
        throw new DruError('CONFIG_INVALID', `config field "${key}" is required`, { details: { field: key } })
      continue
    }
    const problem = rule.check(value)
    if (problem !== undefined)
      throw new DruError('CONFIG_INVALID', `config field "${key}" ${problem}`, { details: { field: key } })
  }
  return c as unknown as DruConfig
}

function show(v: unknown): string {
  if (typeof v === 'function') return 'a function'
  try {
    return JSON.stringify(v) ?? String(v)
  } catch {
    return String(v)
  }
}
