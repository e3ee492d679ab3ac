import { Packr, Unpackr } from 'msgpackr'
import { DruError } from './errors.js'

// Private instances with records off: plain msgpack only, no structure-sharing extension
// that a hostile peer could use to smuggle shapes, and deterministic array encoding.
const packr = new Packr({ useRecords: false, moreTypes: false })
const unpackr = new Unpackr({ useRecords: false, moreTypes: false })

/** msgpack-encodes a plain value (arrays, strings, numbers, bytes). */
export function pack(value: unknown): Uint8Array {
  return packr.pack(value)
}

/**
 * Decodes msgpack bytes. Whatever msgpackr throws (Error, RangeError, TypeError) becomes
 * DruError MALFORMED, so callers handle one error type for untrusted input.
 */
export function unpack(bytes: Uint8Array, what = 'value'): unknown {
  try {
    return unpackr.unpack(bytes)
  } catch (cause) {
    throw new DruError('MALFORMED', `${what} does not decode as msgpack: ${(cause as Error).message}`, { cause })
  }
}
