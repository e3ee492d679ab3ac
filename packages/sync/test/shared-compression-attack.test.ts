import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { SharedCompression, compressFrame } from '@dru/sync'

/**
 * Attacks on SharedCompression with frames brotli cannot shrink (already compressed or
 * encrypted payloads, random bytes): compressFrame then returns the caller's own buffer.
 */
describe('SharedCompression: incompressible frames', () => {
  it('answers an incompressible frame with its bytes as sent, even when the sender wrote the buffer again', () => {
    const shared = new SharedCompression(1 << 20)
    const buf = new Uint8Array(randomBytes(4_000))
    const original = buf.slice()
    shared.compress(buf)
    // The encoder reuses its buffer for the next frame.
    buf.fill(0)
    const again = shared.compress(original)
    expect(Buffer.from(again).equals(Buffer.from(compressFrame(original)))).toBe(true)
  })

  it('counts the bytes it holds exactly, so the budget bounds incompressible frames too', () => {
    // Of twelve incompressible frames the 1st, 3rd and 7th are tried (the rest go plain
    // untried, see the skip schedule); the budget holds two of them.
    const shared = new SharedCompression(2 * 1_500 + 100)
    const frames = Array.from({ length: 12 }, () => new Uint8Array(randomBytes(1_500)))
    for (const f of frames) shared.compress(f)
    expect({ misses: shared.misses, skipped: shared.skipped }).toEqual({ misses: 3, skipped: 9 })
    expect(shared.bytes).toBe(2 * 1_500)
    // The 1st was evicted: sending it again finds nothing; the 7th is still held.
    shared.compress(frames[0]!.slice())
    expect(shared.hits).toBe(0)
    expect(shared.compress(frames[6]!.slice())).toEqual(frames[6])
    expect(shared.hits).toBe(1)
  })

  it('never holds more than its budget or less than zero bytes, for any mix of compressible and incompressible frames', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ n: fc.integer({ min: 1_024, max: 4_000 }), random: fc.boolean(), repeat: fc.nat(5) }), {
          maxLength: 40,
        }),
        fc.integer({ min: 1, max: 20_000 }),
        (sends, budget) => {
          const shared = new SharedCompression(budget)
          const sent: Uint8Array[] = []
          for (const { n, random, repeat } of sends) {
            const f =
              repeat < sent.length
                ? sent[sent.length - 1 - repeat]!.slice()
                : random
                  ? new Uint8Array(randomBytes(n))
                  : new Uint8Array(n).fill(7)
            sent.push(f.slice())
            const skipped = shared.skipped
            const out = shared.compress(f)
            if (shared.skipped > skipped) expect(out).toBe(f)
            else expect(Buffer.from(out).equals(Buffer.from(compressFrame(f)))).toBe(true)
            expect(shared.bytes).toBeGreaterThanOrEqual(0)
            expect(shared.bytes).toBeLessThanOrEqual(budget)
          }
        },
      ),
      { numRuns: 80 },
    )
  })
})
