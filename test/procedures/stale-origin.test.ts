import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { staleOwnOrigin } from '@dru/node'

// The rule behind "a restored copy refuses writes once a peer shows it is stale"
// (network.ts); the end-to-end side is in restore.test.ts.
describe('staleOwnOrigin', () => {
  it('finds an earlier incarnation of ours that a peer holds more of', () => {
    expect(staleOwnOrigin('c', 'c/9', { 'c/1': 3 }, [{ 'c/1': 7, 'a/1': 2 }])).toEqual({ origin: 'c/1', theirs: 7, mine: 3 })
    expect(staleOwnOrigin('c', 'c/9', {}, [{}, { 'c/1': 1 }])).toEqual({ origin: 'c/1', theirs: 1, mine: 0 })
  })

  it('ignores the current origin, other DRUs, ids sharing a prefix, and origins we hold in full', () => {
    expect(staleOwnOrigin('c', 'c/9', { 'c/9': 1 }, [{ 'c/9': 5 }])).toBeUndefined()
    expect(staleOwnOrigin('c', 'c/9', {}, [{ 'a/1': 5, 'cc/1': 4 }])).toBeUndefined()
    expect(staleOwnOrigin('c', 'c/9', { 'c/1': 7 }, [{ 'c/1': 7 }, { 'c/1': 2 }])).toBeUndefined()
  })

  it('is stale exactly when some peer vector exceeds ours on an earlier own origin (property)', () => {
    const runs = Number(process.env.DRU_PROPERTY_RUNS ?? 200)
    const origin = fc.constantFrom('c/1', 'c/2', 'c/3', 'a/1', 'cc/1')
    const vv = fc.dictionary(origin, fc.nat({ max: 5 }))
    fc.assert(
      fc.property(vv, fc.array(vv, { maxLength: 3 }), (ours, peers) => {
        const expected = peers.some((p) => Object.entries(p).some(([o, n]) => o.startsWith('c/') && o !== 'c/3' && n > (ours[o] ?? 0)))
        const got = staleOwnOrigin('c', 'c/3', ours, peers)
        expect(got !== undefined).toBe(expected)
        if (got) expect(got.theirs).toBeGreaterThan(got.mine)
      }),
      { numRuns: runs, seed: 42 },
    )
  })
})
