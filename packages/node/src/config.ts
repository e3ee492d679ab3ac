import { DruError, parseDruId } from '@dru/core'
import { checkConflictPolicy, type CacheLimits, type ConflictPolicy } from '@dru/documents'
import type { Durability } from '@dru/store-sqlite'

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
  /** How conflicts are settled. Default `manual`. */
  conflictPolicy?: ConflictPolicy
  /** Wall clock (ms) for HLCs and timestamps; injectable for tests. */
  now?: () => number
  /** How far (ms) a remote timestamp may run ahead before it counts as skewed. Default 60 s. */
  maxClockSkewMs?: number
}

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
  path: { required: true, check: (v) => (typeof v === 'string' && v.length > 0 ? undefined : `must be a file path or ":memory:" (got ${show(v)})`) },
  durability: { required: false, check: (v) => (v === 'machine' || v === 'process' ? undefined : `must be 'machine' or 'process' (got ${show(v)})`) },
  cache: {
    required: false,
    check: (v) => {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return `must be an object { maxDocs?, maxBytes? } (got ${show(v)})`
      for (const k of Object.keys(v)) {
        if (k !== 'maxDocs' && k !== 'maxBytes') return `has an unknown field "${k}" (expected maxDocs, maxBytes)`
        if (!positiveInt((v as Record<string, unknown>)[k])) return `.${k} must be a positive integer (got ${show((v as Record<string, unknown>)[k])})`
      }
      return undefined
    },
  },
  conflictPolicy: { required: false, check: checkConflictPolicy },
  now: { required: false, check: (v) => (typeof v === 'function' ? undefined : `must be a function returning milliseconds (got ${show(v)})`) },
  maxClockSkewMs: { required: false, check: (v) => (positiveInt(v) ? undefined : `must be a positive integer of milliseconds (got ${show(v)})`) },
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
      throw new DruError('CONFIG_INVALID', `config field "${key}" is not known (known fields: ${Object.keys(fields).join(', ')})`, {
        details: { field: key },
      })
    }
  }
  for (const [key, rule] of Object.entries(fields)) {
    const value = c[key]
    if (value === undefined) {
      if (rule.required) throw new DruError('CONFIG_INVALID', `config field "${key}" is required`, { details: { field: key } })
      continue
    }
    const problem = rule.check(value)
    if (problem !== undefined) throw new DruError('CONFIG_INVALID', `config field "${key}" ${problem}`, { details: { field: key } })
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
