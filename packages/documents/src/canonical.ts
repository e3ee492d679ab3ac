import { createHash } from 'node:crypto'
import * as A from '@automerge/automerge'

/**
 * A value reduced to plain data with a stable shape: map keys sorted, Automerge's special
 * scalars tagged (`{"$counter": n}`, `{"$date": ms}`, `{"$bytes": hex}`, `{"$str": s}` for
 * an immutable string). Two replicas with the same state give the same canonical form
 * whatever order they received changes in, unlike `Automerge.save()` bytes or
 * `JSON.stringify` of the live document, whose key order follows delivery order.
 */
export function canonicalValue(value: unknown): unknown {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return value
  if (typeof value === 'number') return Object.is(value, -0) ? 0 : value
  if (typeof value === 'bigint') return { $bigint: value.toString() }
  if (value instanceof A.Counter) return { $counter: value.value }
  if (A.isImmutableString(value)) return { $str: value.toString() }
  if (value instanceof Date) return { $date: value.getTime() }
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString('hex') }
  if (Array.isArray(value)) return value.map(canonicalValue)
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const key of Object.keys(value as object).sort())
      out[key] = canonicalValue((value as Record<string, unknown>)[key])
    return out
  }
  return String(value)
}

/** Canonical JSON text of a document or value (see {@link canonicalValue}). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(canonicalValue(value))
}

/**
 * The document as plain JSON for applications: counters become numbers, dates ISO
 * strings, bytes base64, immutable strings plain strings; keys sorted.
 */
export function plainValue(value: unknown): unknown {
  if (value === null || typeof value === 'boolean' || typeof value === 'string' || typeof value === 'number')
    return value
  if (value instanceof A.Counter) return value.value
  if (A.isImmutableString(value)) return value.toString()
  if (value instanceof Date) return value.toISOString()
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64')
  if (Array.isArray(value)) return value.map(plainValue)
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const key of Object.keys(value as object).sort())
      out[key] = plainValue((value as Record<string, unknown>)[key])
    return out
  }
  return String(value)
}

/** Per-document digest input: sorted heads and canonical JSON, hashed. */
export function documentDigest(heads: readonly string[], json: string): string {
  return createHash('sha256')
    .update([...heads].sort().join(','))
    .update('\n')
    .update(json)
    .digest('hex')
}
