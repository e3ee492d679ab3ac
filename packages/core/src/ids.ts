import { DruError } from './errors.js'
import { MAX_DOC_ID_LENGTH, MAX_DRU_ID_LENGTH } from './limits.js'

/** Stable name of a DRU, e.g. `eu-west-1`. */
export type DruId = string & { readonly __druId: true }
/** Writer identity stamped on events: `<druId>/<incarnation>`, e.g. `eu-west-1/3`. */
export type Origin = string & { readonly __origin: true }
/** Application document id, e.g. `order-42`. */
export type DocId = string & { readonly __docId: true }

const DRU_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/
/** Largest incarnation: 15 digits, exact in a JS number (clock-derived ones are milliseconds since 2024). */
export const MAX_INCARNATION = 999_999_999_999_999
const ORIGIN = /^([A-Za-z0-9][A-Za-z0-9._-]*)\/([1-9][0-9]{0,14})$/

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
    throw new DruError('INVALID_ARGUMENT', `incarnation must be an integer in 1..${MAX_INCARNATION}, got ${incarnation}`)
  }
  return `${druId}/${incarnation}` as Origin
}

/** True for a well-formed origin string. */
export function isOrigin(value: unknown): value is Origin {
  return typeof value === 'string' && value.length <= MAX_DRU_ID_LENGTH + 16 && ORIGIN.test(value)
}

/** Splits an origin into its DRU id and incarnation; throws INVALID_EVENT when malformed. */
export function parseOrigin(value: unknown): { origin: Origin; druId: DruId; incarnation: number } {
  const m = typeof value === 'string' && value.length <= MAX_DRU_ID_LENGTH + 16 ? ORIGIN.exec(value) : null
  if (!m || m[1]!.length > MAX_DRU_ID_LENGTH) {
    throw new DruError('INVALID_EVENT', `origin must look like "<dru-id>/<incarnation>" (got ${JSON.stringify(value)})`)
  }
  return { origin: value as Origin, druId: m[1] as DruId, incarnation: Number(m[2]) }
}

/** True for an acceptable document id (non-empty string within the length cap). */
export function isDocId(value: unknown): value is DocId {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_DOC_ID_LENGTH
}

/** Validates and brands a document id. */
export function parseDocId(value: unknown): DocId {
  if (!isDocId(value)) {
    throw new DruError('INVALID_ARGUMENT', `docId must be a string of 1-${MAX_DOC_ID_LENGTH} characters (got ${JSON.stringify(value)})`)
  }
  return value
}
