/**
 * The canonical bytes of an event (what its hash covers), written directly instead of through
 * msgpackr's generic walk: a fixed 7-element msgpack array `[1, origin, seq, hlc, docId,
 * change, prev]`. Hashing is on every append, every ingest not already hashed by the wire
 * codec, and every read of the log, and the generic encoder cost about three times the
 * SHA-256 itself.
 *
 * The bytes are the ones msgpackr writes (same shortest headers: fixstr/str8/str16/str32,
 * positive fixint/uint8/uint16/uint32, bin8/bin16/bin32), checked by a property test against
 * msgpackr. Only the common case is written here: ASCII strings and a seq below 2^32.
 * Anything else (non-ASCII text, where msgpackr's encoding of lone surrogates depends on the
 * string's length; a larger seq, which msgpackr writes as a float64) returns undefined and
 * the caller falls back to msgpackr, so the bytes never depend on which path ran.
 *
 * @module
 */

/** Scratch space reused by every call (single-threaded; grown when an event is larger). */
let scratch = new Uint8Array(4096)

function strHeaderSize(length: number): number {
  return length < 0x20 ? 1 : length < 0x100 ? 2 : length < 0x10000 ? 3 : 5
}

function binHeaderSize(length: number): number {
  return length < 0x100 ? 2 : length < 0x10000 ? 3 : 5
}

function uintSize(value: number): number {
  return value < 0x80 ? 1 : value < 0x100 ? 2 : value < 0x10000 ? 3 : 5
}

function writeUint32(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24
  out[at + 1] = (value >>> 16) & 0xff
  out[at + 2] = (value >>> 8) & 0xff
  out[at + 3] = value & 0xff
}

/** Writes an ASCII string with its header; -1 when a character is not ASCII. */
function writeAscii(out: Uint8Array, at: number, s: string): number {
  const n = s.length
  if (n < 0x20) out[at++] = 0xa0 | n
  else if (n < 0x100) {
    out[at++] = 0xd9
    out[at++] = n
  } else if (n < 0x10000) {
    out[at++] = 0xda
    out[at++] = n >>> 8
    out[at++] = n & 0xff
  } else {
    out[at++] = 0xdb
    writeUint32(out, at, n)
    at += 4
  }
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0x80) return -1
    out[at++] = c
  }
  return at
}

/**
 * Writes the canonical bytes of `[version, origin, seq, hlc, docId, change, prev]` into a
 * scratch buffer and returns the view of them (valid until the next call), or undefined when
 * the event is outside the common case (see the module note).
 */
export function canonicalBytesFast(
  version: number,
  origin: string,
  seq: number,
  hlc: string,
  docId: string,
  change: Uint8Array,
  prev: string,
): Uint8Array | undefined {
  if (typeof origin !== 'string' || typeof hlc !== 'string' || typeof docId !== 'string' || typeof prev !== 'string')
    return undefined
  if (seq >>> 0 !== seq || version >>> 0 !== version || version >= 0x80) return undefined
  if (!(change instanceof Uint8Array)) return undefined
  const size =
    2 +
    strHeaderSize(origin.length) +
    origin.length +
    uintSize(seq) +
    strHeaderSize(hlc.length) +
    hlc.length +
    strHeaderSize(docId.length) +
    docId.length +
    binHeaderSize(change.byteLength) +
    change.byteLength +
    strHeaderSize(prev.length) +
    prev.length
  if (size > scratch.byteLength) scratch = new Uint8Array(Math.max(size, scratch.byteLength * 2))
  const out = scratch
  out[0] = 0x97
  out[1] = version
  let at = writeAscii(out, 2, origin)
  if (at < 0) return undefined
  if (seq < 0x80) out[at++] = seq
  else if (seq < 0x100) {
    out[at++] = 0xcc
    out[at++] = seq
  } else if (seq < 0x10000) {
    out[at++] = 0xcd
    out[at++] = seq >>> 8
    out[at++] = seq & 0xff
  } else {
    out[at++] = 0xce
    writeUint32(out, at, seq)
    at += 4
  }
  at = writeAscii(out, at, hlc)
  if (at < 0) return undefined
  at = writeAscii(out, at, docId)
  if (at < 0) return undefined
  const n = change.byteLength
  if (n < 0x100) {
    out[at++] = 0xc4
    out[at++] = n
  } else if (n < 0x10000) {
    out[at++] = 0xc5
    out[at++] = n >>> 8
    out[at++] = n & 0xff
  } else {
    out[at++] = 0xc6
    writeUint32(out, at, n)
    at += 4
  }
  out.set(change, at)
  at += n
  at = writeAscii(out, at, prev)
  if (at < 0) return undefined
  return out.subarray(0, at)
}
