import { createHash } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  canonicalEventBytes,
  hashEvent,
  isHex64,
  packCanonical,
  sealEvent,
  sealEventFields,
  type UnhashedEvent,
} from '../src/event.js'
import { canonicalBytesFast } from '../src/event-bytes.js'
import type { Origin } from '../src/ids.js'

const runs = Number(process.env.DRU_PROPERTY_RUNS ?? 300)

/** Lengths at and around every msgpack header boundary (fixstr/str8/str16, bin8/bin16/bin32). */
const boundaryLength = fc.constantFrom(0, 1, 31, 32, 127, 128, 255, 256, 65_535, 65_536, 70_000)
const text = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  boundaryLength.map((n) => 'x'.repeat(n)),
  // A lone surrogate, where msgpackr's short and long string paths differ.
  fc.constantFrom('\ud800', 'a\udc00b', 'é'.repeat(40)),
)
const seq = fc.oneof(
  fc.constantFrom(1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff, 0x100000000, Number.MAX_SAFE_INTEGER),
  fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  fc.integer({ min: 1, max: 70_000 }),
)
const change = fc.oneof(
  fc.uint8Array({ maxLength: 600 }),
  boundaryLength.map((n) => new Uint8Array(n).fill(7)),
  // A view into a larger buffer, and a Buffer: the bytes of the view only.
  fc.uint8Array({ minLength: 4, maxLength: 64 }).map((b) => b.subarray(1, b.length - 1)),
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
)
const event = fc.record({ origin: text, seq, hlc: text, docId: text, change, prev: text })

describe('canonical event bytes without msgpackr', () => {
  it('equal msgpackr’s bytes for every event, on the fast path and off it', () => {
    fc.assert(
      fc.property(event, (raw) => {
        const e = raw as unknown as UnhashedEvent
        const expected = Buffer.from(packCanonical(e))
        // Buffer.equals: a byte-wise deep equality of 200 KiB arrays takes seconds.
        expect(Buffer.from(canonicalEventBytes(e)).equals(expected)).toBe(true)
        const fast = canonicalBytesFast(1, e.origin, e.seq, e.hlc, e.docId, e.change, e.prev)
        const common =
          [e.origin, e.hlc, e.docId, e.prev].every((s) => Buffer.byteLength(s) === s.length) && e.seq < 2 ** 32
        expect(fast !== undefined).toBe(common)
        if (fast) expect(Buffer.from(fast).equals(expected)).toBe(true)
      }),
      { numRuns: runs * 3 },
    )
  })

  it('takes the fast path for a typical event (ASCII text, seq below 2^32)', () => {
    const e: UnhashedEvent = {
      origin: 'eu-west-1/4711042519783' as Origin,
      seq: 70_000,
      hlc: '001700000000000-0000000001-eu-west-1/4711042519783',
      docId: 'orders/42',
      change: new Uint8Array(300).fill(1),
      prev: 'a'.repeat(64),
    }
    expect(canonicalBytesFast(1, e.origin, e.seq, e.hlc, e.docId, e.change, e.prev)).toBeDefined()
    expect(Buffer.from(canonicalEventBytes(e))).toEqual(Buffer.from(packCanonical(e)))
  })

  it('returns bytes the next encoding does not overwrite', () => {
    const a = { origin: 'a/1' as Origin, seq: 1, hlc: 'h', docId: 'd', change: new Uint8Array([1]), prev: 'p' }
    const first = canonicalEventBytes(a)
    const copy = Buffer.from(first)
    canonicalEventBytes({ ...a, origin: 'b/2' as Origin, change: new Uint8Array(5000) })
    expect(Buffer.from(first)).toEqual(copy)
  })

  it('hashes what it encodes: hashEvent is unchanged by the fast path', () => {
    fc.assert(
      fc.property(event, (raw) => {
        const e = raw as unknown as UnhashedEvent
        const viaPack = createHash('sha256').update(packCanonical(e)).digest('hex')
        expect(hashEvent(e)).toBe(viaPack)
      }),
      { numRuns: runs },
    )
  })

  it('seals from fields exactly as sealEvent seals the object (the local write path)', () => {
    fc.assert(
      fc.property(event, (raw) => {
        const e = raw as unknown as UnhashedEvent
        const fromFields = sealEventFields(e.origin, e.seq, e.hlc, e.docId, e.change, e.prev)
        expect(fromFields).toEqual(sealEvent(e))
        expect(fromFields.hash).toBe(createHash('sha256').update(packCanonical(e)).digest('hex'))
        expect('sig' in fromFields).toBe(false)
      }),
      { numRuns: runs },
    )
  })
})

describe('isHex64', () => {
  it('is exactly /^[0-9a-f]{64}$/ on any value (property)', () => {
    // The neighbours of the hex ranges, uppercase, look-alike digits, and any character at all.
    const oneChar = fc.oneof(
      fc.constantFrom('/', ':', '`', 'g', 'A', 'F', 'G', '@', ' ', '\u0130', '\uff10', '\u0660'),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
    )
    const near = fc
      .tuple(fc.stringMatching(/^[0-9a-f]{64}$/), fc.nat(63), oneChar)
      .map(([hex, at, c]) => hex.slice(0, at) + c + hex.slice(at + 1))
    fc.assert(
      fc.property(
        fc.oneof(fc.stringMatching(/^[0-9a-f]{64}$/), near, fc.string({ maxLength: 70 }), fc.anything()),
        (v) => {
          expect(isHex64(v)).toBe(typeof v === 'string' && /^[0-9a-f]{64}$/.test(v))
        },
      ),
      { numRuns: runs * 3 },
    )
  })
})
