import { checkRamp, DruError, parseDruId } from '@dru/core'
import { checkConflictPolicy } from '@dru/documents'
import {
  checkAdmin,
  checkCache,
  checkEndpoint,
  checkInboxConfig,
  checkKeys,
  checkPeers,
  checkSync,
  positiveInt,
  show,
} from './config-sections.js'
import type { DruConfig } from './config-types.js'

/**
 * Validating a configuration: the table of accepted fields (required or not, and each
 * field's check), the checks between fields, and {@link validateConfig}, which runs both
 * and names the first bad field. The shape and defaults are in config-types.ts; the checks
 * of sections with fields of their own in config-sections.ts.
 *
 * @module
 */

/** Checks one field; returns an error message (without the field name) or undefined. */
export type FieldCheck = (value: unknown) => string | undefined

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
  cache: { required: false, check: checkCache },
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
  peers: { required: false, check: checkPeers },
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
  sync: { required: false, check: checkSync },
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
