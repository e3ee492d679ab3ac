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
  // Values still to read in each open array or map, innermost last.
  const open: number[] = []
  let values = 0
  let at = 0
  const end = bytes.byteLength
  // The big-endian unsigned integer of `n` bytes at `at` (undefined past the end).
  const uint = (n: number): number | undefined => {
    if (at + n > end) return undefined
    let v = 0
    for (let i = 0; i < n; i++) v = v * 256 + bytes[at + i]!
    at += n
    return v
  }
  do {
    if (at >= end) return
    if (++values > maxValues) invalid(`frame holds more than ${maxValues} values`)
    const b = bytes[at++]!
    let children = 0
    let skip = 0
    // 0x00–0x7f and 0xe0–0xff are whole integers: nothing follows.
    if (b <= 0x7f || b >= 0xe0) {
      // nothing to skip
    } else if (b <= 0x8f) children = 2 * (b & 0x0f)
    else if (b <= 0x9f) children = b & 0x0f
    else if (b <= 0xbf) skip = b & 0x1f
    else {
      const head = HEADS[b - 0xc0]
      if (head === undefined) return
      const size = head.sizeBytes > 0 ? uint(head.sizeBytes) : 0
      if (size === undefined) return
      if (head.container) children = size * head.container
      else skip = size + head.fixed
    }
    at += skip
    if (children > 0) {
      if (open.length >= maxDepth) invalid(`frame is nested deeper than ${maxDepth} levels`)
      open.push(children)
    } else {
      // A finished value finishes each enclosing container it was the last value of.
      while (open.length > 0 && --open[open.length - 1]! === 0) open.pop()
    }
  } while (open.length > 0)
}

/**
 * The msgpack heads 0xc0–0xdf: bytes of the length (or count) that follows, bytes of data
 * besides that length, and for arrays and maps the values per counted entry.
 */
interface Head {
  readonly sizeBytes: number
  readonly fixed: number
  readonly container?: 1 | 2
}
const HEADS: ReadonlyArray<Head | undefined> = [
  { sizeBytes: 0, fixed: 0 }, // c0 nil
  undefined, // c1 never used
  { sizeBytes: 0, fixed: 0 }, // c2 false
  { sizeBytes: 0, fixed: 0 }, // c3 true
  { sizeBytes: 1, fixed: 0 }, // c4 bin 8
  { sizeBytes: 2, fixed: 0 }, // c5 bin 16
  { sizeBytes: 4, fixed: 0 }, // c6 bin 32
  { sizeBytes: 1, fixed: 1 }, // c7 ext 8 (type byte)
  { sizeBytes: 2, fixed: 1 }, // c8 ext 16
  { sizeBytes: 4, fixed: 1 }, // c9 ext 32
  { sizeBytes: 0, fixed: 4 }, // ca float 32
  { sizeBytes: 0, fixed: 8 }, // cb float 64
  { sizeBytes: 0, fixed: 1 }, // cc uint 8
  { sizeBytes: 0, fixed: 2 }, // cd uint 16
  { sizeBytes: 0, fixed: 4 }, // ce uint 32
  { sizeBytes: 0, fixed: 8 }, // cf uint 64
  { sizeBytes: 0, fixed: 1 }, // d0 int 8
  { sizeBytes: 0, fixed: 2 }, // d1 int 16
  { sizeBytes: 0, fixed: 4 }, // d2 int 32
  { sizeBytes: 0, fixed: 8 }, // d3 int 64
  { sizeBytes: 0, fixed: 2 }, // d4 fixext 1
  { sizeBytes: 0, fixed: 3 }, // d5 fixext 2
  { sizeBytes: 0, fixed: 5 }, // d6 fixext 4
  { sizeBytes: 0, fixed: 9 }, // d7 fixext 8
  { sizeBytes: 0, fixed: 17 }, // d8 fixext 16
  { sizeBytes: 1, fixed: 0 }, // d9 str 8
  { sizeBytes: 2, fixed: 0 }, // da str 16
  { sizeBytes: 4, fixed: 0 }, // db str 32
  { sizeBytes: 2, fixed: 0, container: 1 }, // dc array 16
  { sizeBytes: 4, fixed: 0, container: 1 }, // dd array 32
  { sizeBytes: 2, fixed: 0, container: 2 }, // de map 16
  { sizeBytes: 4, fixed: 0, container: 2 }, // df map 32
]

function invalid(message: string): never {
  throw new DruError('INVALID_FRAME', message)
}
