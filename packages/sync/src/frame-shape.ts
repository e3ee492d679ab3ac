import { DruError } from '@dru/core'

/**
 * Walks a frame's msgpack bytes without building any value, and refuses (INVALID_FRAME) a
 * frame holding more than `maxValues` values or nesting arrays and maps deeper than
 * `maxDepth`. It runs before the decoder, which builds one JavaScript object per value
 * (an empty array is one byte of msgpack and tens of bytes of heap) and recurses once per
 * level. Bytes that end inside a value, or a byte msgpack does not define, are left to the
 * decoder to refuse (MALFORMED): this walk only counts.
 */
export function checkFrameShape(bytes: Uint8Array, maxValues: number, maxDepth: number): void {
  // Values still to read in each open array or map, innermost at `depth - 1` (a count may
  // reach 2 × 2^32: doubles). A typed stack and the head tables below keep this loop, which
  // runs once per value of every frame received, on numbers only.
  const open = new Float64Array(maxDepth)
  let depth = 0
  let values = 0
  let at = 0
  const end = bytes.byteLength
  do {
    if (at >= end) return
    if (++values > maxValues) invalid(`frame holds more than ${maxValues} values`)
    const b = bytes[at++]!
    let children = 0
    // 0x00–0x7f and 0xe0–0xff are whole integers: nothing follows.
    if (b <= 0x7f || b >= 0xe0) {
      // nothing to skip
    } else if (b <= 0x8f) children = 2 * (b & 0x0f)
    else if (b <= 0x9f) children = b & 0x0f
    else if (b <= 0xbf) at += b & 0x1f
    else {
      const head = b - 0xc0
      const sizeBytes = SIZE_BYTES[head]!
      if (sizeBytes === UNUSED) return
      // The big-endian unsigned length (or count) that follows.
      if (at + sizeBytes > end) return
      let size = 0
      for (let i = 0; i < sizeBytes; i++) size = size * 256 + bytes[at++]!
      const per = VALUES_PER_ENTRY[head]!
      if (per > 0) children = size * per
      else at += size + FIXED[head]!
    }
    if (children > 0) {
      if (depth >= maxDepth) invalid(`frame is nested deeper than ${maxDepth} levels`)
      open[depth++] = children
    } else {
      // A finished value finishes each enclosing container it was the last value of.
      while (depth > 0 && --open[depth - 1]! === 0) depth--
    }
  } while (depth > 0)
}

/** {@link SIZE_BYTES} of a head msgpack never uses (0xc1). */
const UNUSED = 0xff

/**
 * The msgpack heads 0xc0–0xdf, indexed by `head - 0xc0`: bytes of the length (or count) that
 * follows, bytes of data besides that length, and for arrays and maps the values per counted
 * entry (0 for anything else).
 */
// prettier-ignore
const SIZE_BYTES = Uint8Array.from([
  0, UNUSED, 0, 0, // c0 nil, c1 never used, c2 false, c3 true
  1, 2, 4, // c4–c6 bin 8/16/32
  1, 2, 4, // c7–c9 ext 8/16/32
  0, 0, // ca float 32, cb float 64
  0, 0, 0, 0, // cc–cf uint 8/16/32/64
  0, 0, 0, 0, // d0–d3 int 8/16/32/64
  0, 0, 0, 0, 0, // d4–d8 fixext 1/2/4/8/16
  1, 2, 4, // d9–db str 8/16/32
  2, 4, // dc array 16, dd array 32
  2, 4, // de map 16, df map 32
])
// prettier-ignore
const FIXED = Uint8Array.from([
  0, 0, 0, 0, // c0–c3
  0, 0, 0, // bin
  1, 1, 1, // ext: its type byte
  4, 8, // floats
  1, 2, 4, 8, // uints
  1, 2, 4, 8, // ints
  2, 3, 5, 9, 17, // fixext: type byte and data
  0, 0, 0, // str
  0, 0, // arrays
  0, 0, // maps
])
// prettier-ignore
const VALUES_PER_ENTRY = Uint8Array.from([
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  1, 1, // arrays: one value per entry
  2, 2, // maps: a key and a value
])

function invalid(message: string): never {
  throw new DruError('INVALID_FRAME', message)
}
