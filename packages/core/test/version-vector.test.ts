import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  compareVv,
  countMissing,
  dominatesVv,
  equalVv,
  meetVv,
  mergeVv,
  missingRanges,
  normalizeVv,
  type VersionVector,
} from '../src/index.js'

const runs = Number(process.env.DRU_PROPERTY_RUNS ?? 500)
const origin = fc.constantFrom('a/1', 'b/1', 'b/2', 'c/1', 'd/7')
const vv = fc.dictionary(origin, fc.integer({ min: 0, max: 40 })) as fc.Arbitrary<VersionVector>

/** The explicit event set a vector names, for checking the arithmetic against sets. */
function events(v: VersionVector): Set<string> {
  const out = new Set<string>()
  for (const [o, n] of Object.entries(v)) for (let s = 1; s <= n; s++) out.add(`${o}#${s}`)
  return out
}

describe('version vectors', () => {
  it('merge is commutative, associative and idempotent', () => {
    fc.assert(
      fc.property(vv, vv, vv, (a, b, c) => {
        expect(mergeVv(a, b)).toEqual(mergeVv(b, a))
        expect(mergeVv(mergeVv(a, b), c)).toEqual(mergeVv(a, mergeVv(b, c)))
        expect(mergeVv(a, a)).toEqual(normalizeVv(a))
      }),
      { numRuns: runs, seed: 1 },
    )
  })

  it('merge names the union of the event sets', () => {
    fc.assert(
      fc.property(vv, vv, (a, b) => {
        expect(events(mergeVv(a, b))).toEqual(new Set([...events(a), ...events(b)]))
      }),
      { numRuns: runs, seed: 2 },
    )
  })

  it('missingRanges is exactly the set difference, in order, without overlap', () => {
    fc.assert(
      fc.property(vv, vv, (a, b) => {
        const listed: string[] = []
        for (const r of missingRanges(a, b)) {
          expect(r.from).toBeLessThanOrEqual(r.to)
          for (let s = r.from; s <= r.to; s++) listed.push(`${r.origin}#${s}`)
        }
        const diff = [...events(a)].filter((e) => !events(b).has(e))
        expect(new Set(listed)).toEqual(new Set(diff))
        expect(listed.length).toBe(diff.length)
        expect(countMissing(a, b)).toBe(diff.length)
      }),
      { numRuns: runs, seed: 3 },
    )
  })

  it('compare agrees with set inclusion', () => {
    fc.assert(
      fc.property(vv, vv, (a, b) => {
        const ea = events(a)
        const eb = events(b)
        const aHasB = [...eb].every((e) => ea.has(e))
        const bHasA = [...ea].every((e) => eb.has(e))
        const expected = aHasB && bHasA ? 'equal' : aHasB ? 'after' : bHasA ? 'before' : 'concurrent'
        expect(compareVv(a, b)).toBe(expected)
        expect(dominatesVv(a, b)).toBe(aHasB)
        expect(equalVv(a, b)).toBe(aHasB && bHasA)
        // merging never loses anything and dominates both inputs
        expect(dominatesVv(mergeVv(a, b), a) && dominatesVv(mergeVv(a, b), b)).toBe(true)
      }),
      { numRuns: runs, seed: 4 },
    )
  })

  it('meet is what every vector holds', () => {
    fc.assert(
      fc.property(fc.array(vv, { minLength: 1, maxLength: 4 }), (vs) => {
        const common = [...events(vs[0]!)].filter((e) => vs.every((v) => events(v).has(e)))
        expect(events(meetVv(vs))).toEqual(new Set(common))
      }),
      { numRuns: runs, seed: 5 },
    )
  })

  it('zero entries and key order do not change identity', () => {
    expect(equalVv({ 'a/1': 0, 'b/1': 2 }, { 'b/1': 2 })).toBe(true)
    expect(normalizeVv({ 'b/1': 2, 'a/1': 1, 'c/1': 0 })).toEqual({ 'a/1': 1, 'b/1': 2 })
    expect(Object.keys(normalizeVv({ 'b/1': 2, 'a/1': 1 }))).toEqual(['a/1', 'b/1'])
  })
})
