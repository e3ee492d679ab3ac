import { randomInt } from 'node:crypto'
import { DruError } from './errors.js'
import { MAX_DOC_ID_LENGTH, MAX_DRU_ID_LENGTH } from './limits.js'

/** Stable name of a DRU, e.g. `eu-west-1`. */
export type DruId = string & { readonly __druId: true }
/** Writer identity stamped on events: `<druId>/<incarnation>`, e.g. `eu-west-1/3`. */
export type Origin = string & { readonly __origin: true }
/** Application document id, e.g. `order-42`. */
export type DocId = string & { readonly __docId: true }

const DRU_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/
/** Largest incarnation: the largest integer a JS number holds exactly (2^53 - 1, 16 digits). */
export const MAX_INCARNATION = Number.MAX_SAFE_INTEGER
const ORIGIN = /^([A-Za-z0-9][A-Za-z0-9._-]*)\/([1-9][0-9]{0,15})$/

/** Validates and brands a DRU id. */
export function parseDruId(value: unknown, field = 'id'): DruId {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_DRU_ID_LENGTH || !DRU_ID.test(value)) {
    throw new DruError(
      'CONFIG_INVALID',
      `${field} must be 1-${MAX_DRU_ID_LENGTH} characters of letters, digits, '.', '_' or '-' (got ${JSON.stringify(value)})`,
      { details: { field } },
    )
  }
  return value as DruId
}

/** Builds the origin of a DRU's incarnation. */
export function formatOrigin(druId: DruId, incarnation: number): Origin {
  if (!Number.isInteger(incarnation) || incarnation < 1 || incarnation > MAX_INCARNATION) {
    throw new DruError(
      'INVALID_ARGUMENT',
      `incarnation must be an integer in 1..${MAX_INCARNATION}, got ${incarnation}`,
    )
  }
  return `${druId}/${incarnation}` as Origin
}

/** True for a well-formed origin string. */
export function isOrigin(value: unknown): value is Origin {
  if (typeof value !== 'string' || value.length > MAX_DRU_ID_LENGTH + 17) return false
  const m = ORIGIN.exec(value)
  return m !== null && Number(m[2]) <= MAX_INCARNATION
}

/** Splits an origin into its DRU id and incarnation; throws INVALID_EVENT when malformed. */
export function parseOrigin(value: unknown): { origin: Origin; druId: DruId; incarnation: number } {
  const m = typeof value === 'string' && value.length <= MAX_DRU_ID_LENGTH + 17 ? ORIGIN.exec(value) : null
  if (!m || m[1]!.length > MAX_DRU_ID_LENGTH || Number(m[2]) > MAX_INCARNATION) {
    throw new DruError('INVALID_EVENT', `origin must look like "<dru-id>/<incarnation>" (got ${JSON.stringify(value)})`)
  }
  return { origin: value as Origin, druId: m[1] as DruId, incarnation: Number(m[2]) }
}

/**
 * A fresh incarnation: uniformly random in 1..2^53-1. Every open of a database writes
 * under a new one, so two processes started from copies of one file (a backup put back, a
 * live copy, the same DRU id on two machines) never write the same origin: with 2^53
 * values two draws collide with probability about 1e-16, and no coordination is needed,
 * which a DRU cut off from every peer could not get anyway.
 */
export function newIncarnation(randomUint32: () => number = () => randomInt(0, 2 ** 32)): number {
  for (;;) {
    // Two 32-bit draws make the 53 bits (randomInt's range is below 2^48).
    const n = (randomUint32() % 2 ** 21) * 2 ** 32 + (randomUint32() >>> 0)
    if (n >= 1 && n <= MAX_INCARNATION) return n
  }
}

// C0 controls, DEL and C1 controls: invisible in logs and tables, and NUL ends C strings.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/**
 * True for an acceptable document id: a non-empty string within the length cap, without
 * control characters, and well-formed UTF-16 (a lone surrogate would not survive the UTF-8
 * round trip through the log, so the id read back would differ from the one signed).
 */
export function isDocId(value: unknown): value is DocId {
  return (
    typeof value === 'string' &&
    value.length > 0 &&
    value.length <= MAX_DOC_ID_LENGTH &&
    !CONTROL.test(value) &&
    !hasLoneSurrogate(value)
  )
}

/** Whether `s` holds half a surrogate pair: text with no UTF-8 form. */
export function hasLoneSurrogate(s: string): boolean {
  return LONE_SURROGATE.test(s)
}

/** Validates and brands a document id. */
export function parseDocId(value: unknown): DocId {
  if (!isDocId(value)) {
    throw new DruError(
      'INVALID_ARGUMENT',
      `docId must be a string of 1-${MAX_DOC_ID_LENGTH} characters without control characters (got ${JSON.stringify(typeof value === 'string' ? value.slice(0, 100) : value)})`,
    )
  }
  return value
}
