import fc from 'fast-check'
import { Packr } from 'msgpackr'
import { describe, expect, it } from 'vitest'
import { DruError, GENESIS_HASH, encodeHlc, sealEvent, type DruEvent } from '@dru/core'
import {
  decodeFrame,
  decompressFrame,
  compressFrame,
  encodeFrame,
  MAX_EVENTS_PER_FRAME,
  type Frame,
} from '../src/index.js'
import { checkFrameShape } from '../src/frame-shape.js'
import { MAX_FRAME_DEPTH, MAX_FRAME_VALUES, MAX_SNAPSHOT_DOCS, MAX_TREE_DOCS } from '../src/limits.js'

// msgpack spends one byte on an empty array, map or byte string, and the decoder builds a
// JavaScript object for each: a 16 MiB frame of them took ~55 bytes of heap per byte
// (~0.9 GB) and 4–8 s of blocked event loop before the schema check refused it, and
// compressed it crosses the wire in a few KiB. Frames are now walked first, without building
// anything, and refused past MAX_FRAME_VALUES values or MAX_FRAME_DEPTH levels.

function codeOf(bytes: Uint8Array): string {
  try {
    decodeFrame(bytes)
    return 'ok'
  } catch (err) {
    if (!(err instanceof DruError)) throw err
    return `${err.code}: ${err.message}`
  }
}

/** An array32 of `count` copies of `unit`. */
function arrayOf(count: number, unit: number[]): Uint8Array {
  const bytes = Buffer.alloc(5 + count * unit.length)
  bytes[0] = 0xdd
  bytes.writeUInt32BE(count, 1)
  for (let i = 0; i < count; i++) bytes.set(unit, 5 + i * unit.length)
  return bytes
}

describe('frames that would decode into far more objects than their bytes', () => {
  it.each([
    ['empty arrays', [0x90]],
    ['empty maps', [0x80]],
    ['empty byte strings', [0xc4, 0x00]],
    ['one-key maps', [0x81, 0xa0, 0x90]],
  ])('a frame of millions of %s is refused before it is decoded', (_name, unit) => {
    const bytes = arrayOf(3 * MAX_FRAME_VALUES, unit)
    expect(codeOf(bytes)).toMatch(new RegExp(`^INVALID_FRAME: .*more than ${MAX_FRAME_VALUES} values`))
    // Compressed, such a frame is a few KiB on the wire.
    const packed = compressFrame(bytes)
    expect(packed.byteLength).toBeLessThan(64 << 10)
    expect(codeOf(decompressFrame(packed, 16 << 20))).toMatch(
      new RegExp(`^INVALID_FRAME: .*more than ${MAX_FRAME_VALUES} values`),
    )
  })

  it('a frame nested deeper than any frame is refused as such, without recursing', () => {
    expect(codeOf(Buffer.alloc(1_000_000, 0x91))).toMatch(/^INVALID_FRAME: .*nested deeper than/)
    expect(codeOf(Buffer.alloc(MAX_FRAME_DEPTH + 1, 0x91))).toMatch(/^INVALID_FRAME: .*nested deeper/)
  })

  it('a declared count larger than the bytes that follow costs nothing and is malformed', () => {
    const bytes = Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0x90, 0x90])
    expect(codeOf(bytes)).toMatch(/^MALFORMED/)
  })
})

describe('the largest frames the protocol allows still decode', () => {
  it('a tree-report of MAX_TREE_DOCS documents', () => {
    const frame: Frame = {
      type: 'tree-report',
      id: 1,
      hashes: [],
      docs: Array.from({ length: MAX_TREE_DOCS }, (_, i) => ({ docId: `d${i}`, digest: 'isolated', heads: [] })),
    }
    const back = decodeFrame(encodeFrame(frame)) as Extract<Frame, { type: 'tree-report' }>
    expect(back.docs).toHaveLength(MAX_TREE_DOCS)
  }, 20_000)

  it('a snapshot of MAX_SNAPSHOT_DOCS documents', () => {
    const frame: Frame = {
      type: 'snapshot',
      docs: Array.from({ length: MAX_SNAPSHOT_DOCS }, (_, i) => ({ docId: `d${i}`, bytes: new Uint8Array([1]) })),
    }
    expect((decodeFrame(encodeFrame(frame)) as Extract<Frame, { type: 'snapshot' }>).docs).toHaveLength(
      MAX_SNAPSHOT_DOCS,
    )
  }, 20_000)

  it('an events frame of MAX_EVENTS_PER_FRAME events, each of its own origin and document', () => {
    const batch: DruEvent[] = Array.from({ length: MAX_EVENTS_PER_FRAME }, (_, i) =>
      sealEvent({
        origin: `o${i}/1` as never,
        seq: 1,
        hlc: encodeHlc({ wall: 1_700_000_000_000 + i, counter: 0, node: `o${i}/1` }),
        docId: `d${i}`,
        change: new Uint8Array([i & 0xff]),
        prev: GENESIS_HASH,
      }),
    )
    const back = decodeFrame(encodeFrame({ type: 'events', batch })) as Extract<Frame, { type: 'events' }>
    expect(back.batch).toHaveLength(MAX_EVENTS_PER_FRAME)
  }, 20_000)
})

describe('the walk counts what msgpack holds', () => {
  const packr = new Packr({ useRecords: false, moreTypes: false })
  // Every msgpack head the frames use or an attacker can write: nil, booleans, integers and
  // floats of each width, strings and byte strings of each length header, arrays and maps.
  const leaf = fc.oneof(
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: -(2 ** 31), max: 2 ** 32 }),
    fc.constantFrom(2 ** 40, -(2 ** 40), 0.5, Number.MAX_SAFE_INTEGER),
    fc.string({ maxLength: 40 }),
    fc.constantFrom('x'.repeat(300), 'y'.repeat(70_000)),
    fc.uint8Array({ maxLength: 300 }),
  )
  const { value } = fc.letrec<{ value: unknown }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      leaf,
      fc.array(tie('value'), { maxLength: 20 }),
      fc.dictionary(fc.string({ maxLength: 5 }), tie('value'), { maxKeys: 20 }),
    ),
  }))
  /** Values and nesting levels as the walk counts them (a map's keys are values too). */
  const shape = (v: unknown): { values: number; depth: number } => {
    const children = Array.isArray(v)
      ? v
      : v !== null && typeof v === 'object' && !(v instanceof Uint8Array)
        ? Object.entries(v).flat()
        : []
    let values = 1
    let depth = 0
    for (const c of children) {
      const s = shape(c)
      values += s.values
      depth = Math.max(depth, s.depth)
    }
    return { values, depth: children.length > 0 ? depth + 1 : 0 }
  }
  const refusal = (bytes: Uint8Array, maxValues: number, maxDepth: number): string => {
    try {
      checkFrameShape(bytes, maxValues, maxDepth)
      return 'ok'
    } catch (err) {
      if (!(err instanceof DruError)) throw err
      return err.code
    }
  }

  it('passes a value within both limits and refuses it one below either, whatever it holds (property)', () => {
    fc.assert(
      fc.property(value, (v) => {
        const bytes = packr.pack(v)
        const { values, depth } = shape(v)
        expect(refusal(bytes, values, depth)).toBe('ok')
        expect(refusal(bytes, values - 1, depth)).toBe('INVALID_FRAME')
        if (depth > 0) expect(refusal(bytes, values, depth - 1)).toBe('INVALID_FRAME')
        // Cut short anywhere, it is left to the decoder (MALFORMED there), never refused here.
        for (const cut of [1, 2, 3, Math.floor(bytes.byteLength / 2)])
          if (cut < bytes.byteLength) expect(refusal(bytes.subarray(0, cut), values, depth)).toBe('ok')
      }),
      { numRuns: 300 },
    )
  })
})
