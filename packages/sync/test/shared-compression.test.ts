import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { randomBytes } from 'node:crypto'
import {
  COMPRESSED_FRAME_MARK,
  MAX_SHARED_FRAMES,
  MAX_SKIPPED_FRAMES,
  SharedCompression,
  compressFrame,
} from '@dru/sync'

/** A compressible frame of `n` bytes whose content depends on `seed`. */
function frame(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (i % 97 === 0 ? seed + i : i >> 4) & 0xff
  return b
}

describe('SharedCompression: one brotli pass per frame for all sessions', () => {
  it('returns exactly what compressFrame returns, for any sequence of frames with repeats', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ n: fc.integer({ min: 0, max: 6000 }), seed: fc.integer({ min: 0, max: 3 }) }), {
          maxLength: 40,
        }),
        fc.integer({ min: 1, max: 40_000 }),
        (sends, budget) => {
          const shared = new SharedCompression(budget)
          for (const { n, seed } of sends) {
            const f = frame(n, seed)
            expect(Buffer.from(shared.compress(f)).equals(Buffer.from(compressFrame(f)))).toBe(true)
            expect(shared.bytes).toBeLessThanOrEqual(budget)
          }
        },
      ),
      { numRuns: 60 },
    )
  })

  it('compresses a frame sent to a second peer once, and counts it', () => {
    const shared = new SharedCompression(1 << 20)
    const f = frame(50_000, 1)
    const first = shared.compress(f)
    const second = shared.compress(frame(50_000, 1))
    expect(second).toBe(first)
    expect({ hits: shared.hits, misses: shared.misses }).toEqual({ hits: 1, misses: 1 })
  })

  it('never answers a frame with another frame of the same length that differs in one byte', () => {
    const shared = new SharedCompression(1 << 20)
    const a = frame(20_000, 1)
    const b = frame(20_000, 1)
    b[12_345] = b[12_345]! ^ 1
    shared.compress(a)
    expect(Buffer.from(shared.compress(b)).equals(Buffer.from(compressFrame(b)))).toBe(true)
    expect(shared.hits).toBe(0)
  })

  it('keeps a copy: a frame buffer written again after it was sent is not matched by its old bytes', () => {
    const shared = new SharedCompression(1 << 20)
    const buf = frame(8_000, 1)
    const before = Buffer.from(shared.compress(buf))
    buf[100] = buf[100]! ^ 0xff
    const after = shared.compress(buf)
    expect(Buffer.from(after).equals(Buffer.from(compressFrame(buf)))).toBe(true)
    expect(Buffer.from(after).equals(before)).toBe(false)
  })

  it('holds at most its budget and MAX_SHARED_FRAMES frames; short frames are not kept', () => {
    const shared = new SharedCompression(100_000)
    for (let i = 0; i < 3 * MAX_SHARED_FRAMES; i++) shared.compress(frame(30_000, i))
    expect(shared.bytes).toBeLessThanOrEqual(100_000)
    const many = new SharedCompression(1 << 30)
    for (let i = 0; i < 3 * MAX_SHARED_FRAMES; i++) many.compress(frame(2_000, i))
    // The oldest are gone: the first frame is compressed again.
    many.compress(frame(2_000, 0))
    expect(many.hits).toBe(0)
    const short = new SharedCompression(1 << 20)
    short.compress(frame(100, 1))
    expect(short.bytes).toBe(0)
    // A frame larger than the whole budget is compressed and not kept.
    const small = new SharedCompression(1_000)
    small.compress(frame(50_000, 1))
    expect(small.bytes).toBe(0)
  })

  it('after frames compression did not pay for, sends the next 1, 3, 7 … 63 new frames plain untried; one that pays starts it over', () => {
    const shared = new SharedCompression(1 << 20)
    const tried: number[] = []
    for (let i = 0; i < 400; i++) {
      const misses = shared.misses
      shared.compress(new Uint8Array(randomBytes(2_000)))
      if (shared.misses > misses) tried.push(i)
    }
    // tried at 0, 2, 6, 14, 30, 62, 126, then every 64th
    expect(tried.slice(0, 9)).toEqual([0, 2, 6, 14, 30, 62, 126, 190, 254])
    expect(MAX_SKIPPED_FRAMES).toBe(63)
    // a compressible frame inside a skip goes plain; the next tried one pays and the count starts over
    let sent = shared.compress(frame(6_000, 1))
    while (sent[0] !== COMPRESSED_FRAME_MARK) sent = shared.compress(frame(6_000, 1 + shared.skipped))
    const before = shared.misses
    shared.compress(new Uint8Array(randomBytes(2_000)))
    shared.compress(new Uint8Array(randomBytes(2_000)))
    shared.compress(new Uint8Array(randomBytes(2_000)))
    // tried, skipped one, tried
    expect(shared.misses - before).toBe(2)
  })

  it('never skips a stream of frames that pay', () => {
    const shared = new SharedCompression(1 << 16)
    for (let i = 0; i < 200; i++) expect(shared.compress(frame(3_000, i % 4))[0]).toBe(COMPRESSED_FRAME_MARK)
    expect(shared.skipped).toBe(0)
  })
})
