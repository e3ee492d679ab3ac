import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  DruError,
  GENESIS_HASH,
  decodeEvent,
  encodeEvent,
  eventHashMatches,
  verifyChain,
  type DruEvent,
} from '../src/index.js'
import { chain } from './chain.js'

const runs = Number(process.env.DRU_PROPERTY_RUNS ?? 300)

describe('event envelope', () => {
  it('round-trips through its encoding with the same hash', () => {
    for (const e of chain(5)) {
      const back = decodeEvent(encodeEvent(e))
      expect(back.hash).toBe(e.hash)
      expect(eventHashMatches(back)).toBe(true)
      expect(Buffer.from(back.change).equals(Buffer.from(e.change))).toBe(true)
    }
  })

  it('detects any single-byte change to an encoded event', () => {
    const events = chain(4)
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3 }), fc.nat(), fc.integer({ min: 1, max: 255 }), (which, pos, xor) => {
        const bytes = Buffer.from(encodeEvent(events[which]!))
        const i = pos % bytes.length
        bytes[i] = bytes[i]! ^ xor
        let detected = false
        try {
          const e = decodeEvent(bytes)
          detected = !eventHashMatches(e) || e.seq !== events[which]!.seq || e.origin !== events[which]!.origin
          // a change that still decodes to a self-consistent event must break the chain
          if (!detected) {
            const copy = [...events]
            copy[which] = e
            verifyChain(copy, GENESIS_HASH)
          }
        } catch (err) {
          expect(err).toBeInstanceOf(DruError)
          detected = true
        }
        expect(detected).toBe(true)
      }),
      { numRuns: runs * 4, seed: 21 },
    )
  })

  it('detects any single-byte change to a chain (hash mismatch or broken link)', () => {
    const events = chain(6)
    expect(verifyChain(events, GENESIS_HASH)).toBe(events[5]!.hash)
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5 }),
        fc.constantFrom('change', 'prev', 'hash', 'hlc', 'docId'),
        fc.nat(),
        (which, field, pos) => {
          const e = events[which]!
          const mutated = { ...e } as Record<string, unknown>
          if (field === 'change') {
            const c = Buffer.from(e.change)
            c[pos % c.length] = c[pos % c.length]! ^ 1
            mutated.change = c
          } else {
            const s = String(mutated[field])
            const i = pos % s.length
            mutated[field] = s.slice(0, i) + (s[i] === '0' ? '1' : '0') + s.slice(i + 1)
          }
          const copy = [...events]
          copy[which] = mutated as unknown as DruEvent
          expect(() => verifyChain(copy, GENESIS_HASH)).toThrowError(DruError)
        },
      ),
      { numRuns: runs, seed: 22 },
    )
  })

  it('never throws anything but DruError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          decodeEvent(bytes)
        } catch (err) {
          expect(err).toBeInstanceOf(DruError)
          expect(['MALFORMED', 'INVALID_EVENT']).toContain((err as DruError).code)
        }
      }),
      { numRuns: 5_000, seed: 23 },
    )
  })

  it('rejects bad fields with INVALID_EVENT naming the field', () => {
    const [e] = chain(1)
    const cases: Array<[string, Record<string, unknown>]> = [
      ['seq', { seq: 0 }],
      ['seq', { seq: 1.5 }],
      ['docId', { docId: '' }],
      ['docId', { docId: 'x'.repeat(300) }],
      ['docId', { docId: 'order\u00001' }],
      ['docId', { docId: 'order\u001b[2J' }],
      ['change', { change: 'not bytes' }],
      ['prev', { prev: 'abc' }],
      ['hash', { hash: 'Z'.repeat(64) }],
      // 64 lowercase hex exactly: the length is checked apart from the characters.
      ['hash', { hash: 'a'.repeat(63) }],
      ['hash', { hash: 'a'.repeat(65) }],
      ['hash', { hash: 'A'.repeat(64) }],
      ['prev', { prev: `${'a'.repeat(63)}\n` }],
      ['extra', { extra: 1 }],
    ]
    for (const [field, patch] of cases) {
      try {
        decodeEvent(encodeEventLoose({ ...e!, ...patch }))
        expect.unreachable(`accepted bad ${field}`)
      } catch (err) {
        expect((err as DruError).code === 'INVALID_EVENT' || (err as DruError).code === 'MALFORMED').toBe(true)
      }
    }
  })
})

/** Encodes even invalid events (the extra field rides along as a ninth element). */
function encodeEventLoose(e: Record<string, unknown>): Uint8Array {
  if ('extra' in e) {
    const { extra, ...rest } = e
    return Buffer.concat([Buffer.from(encodeEvent(rest as unknown as DruEvent)), Buffer.from([extra as number])])
  }
  return encodeEvent(e as unknown as DruEvent)
}
