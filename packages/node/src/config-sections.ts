import { parseDruId } from '@dru/core'
import { INBOX_POLICY_FIELDS, checkInboxPolicy } from '@dru/store-sqlite'
import { MAX_TIMER_MS } from '@dru/sync'
import { isLoopbackHost } from './admin-guard.js'

/**
 * The checks of the config sections that have fields of their own (`cache`, `peers`, `sync`,
 * `keys`, `inbox`, `admin`, `listen`): each returns the problem with the first bad inner field
 * as a message without the section's name (config.ts's table adds it), or undefined.
 *
 * @module
 */

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

/** A positive integer (a count, a size or a delay that may not be 0). */
export const positiveInt = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v > 0

export function checkCache(v: unknown): string | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    return `must be an object { maxDocs?, maxBytes? } (got ${show(v)})`
  for (const k of Object.keys(v)) {
    if (k !== 'maxDocs' && k !== 'maxBytes') return `has an unknown field "${k}" (expected maxDocs, maxBytes)`
    if (!positiveInt((v as Record<string, unknown>)[k]))
      return `.${k} must be a positive integer (got ${show((v as Record<string, unknown>)[k])})`
  }
  return undefined
}

export function checkPeers(v: unknown): string | undefined {
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
}

export function checkSync(v: unknown): string | undefined {
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
}

const KEY_FIELDS = ['privateKey', 'privateKeyFile', 'publicKeys', 'publicKeyFiles', 'publicKeysDir']

export function checkKeys(v: unknown): string | undefined {
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

export function checkInboxConfig(v: unknown): string | undefined {
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

export function checkAdmin(v: unknown): string | undefined {
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

export function checkEndpoint(v: unknown): string | undefined {
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

/** A value as a refusal quotes it. */
export function show(v: unknown): string {
  if (typeof v === 'function') return 'a function'
  try {
    return JSON.stringify(v) ?? String(v)
  } catch {
    return String(v)
  }
}
