import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { HlcClock, decodeHlc, encodeHlc, type Hlc } from '../src/index.js'

const runs = Number(process.env.DRU_PROPERTY_RUNS ?? 300)
const NOW = 1_700_000_000_000

// Few walls, counters and nodes, so that equal (wall, counter) pairs with other nodes, and
// the clock's own node, come up often: the cases where folding order could matter.
const hlc: fc.Arbitrary<Hlc> = fc.record({
  wall: fc.integer({ min: NOW - 3, max: NOW + 2 }),
  counter: fc.integer({ min: 0, max: 3 }),
  node: fc.constantFrom('a/1', 'b/2', 'm/1', 'z/9'),
})

/** What ingest did before: one receive per stored event, in the batch's stored order. */
function foldEach(start: Hlc, remotes: readonly Hlc[]): Hlc {
  const clock = new HlcClock({ node: 'm/1', now: () => NOW, maxSkewMs: 1_000, highWater: start })
  for (const r of remotes) clock.receive(r)
  return clock.last
}

/** What ingest does now (event-store.ts): one receive of the greatest timestamp by its text. */
function foldNewest(start: Hlc, remotes: readonly Hlc[]): Hlc {
  const clock = new HlcClock({ node: 'm/1', now: () => NOW, maxSkewMs: 1_000, highWater: start })
  let newest: string | undefined
  for (const r of remotes) {
    const text = encodeHlc(r)
    if (newest === undefined || text > newest) newest = text
  }
  if (newest !== undefined) clock.receive(decodeHlc(newest))
  return clock.last
}

describe('folding a batch of remote timestamps into the clock', () => {
  it('one receive of the newest (by encoded text) leaves the clock where a receive of each, in any order, does', () => {
    fc.assert(
      fc.property(hlc, fc.array(hlc, { maxLength: 12 }), (start, remotes) => {
        const each = foldEach(start, remotes)
        expect(foldNewest(start, remotes)).toEqual(each)
        // And where it lands does not depend on the batch's order.
        expect(foldEach(start, [...remotes].reverse())).toEqual(each)
        // The next local timestamp sorts after every remote one, as with the per-event fold.
        const clock = new HlcClock({
          node: 'm/1',
          now: () => NOW,
          maxSkewMs: 1_000,
          highWater: foldNewest(start, remotes),
        })
        const next = encodeHlc(clock.tick())
        for (const r of remotes) expect(next > encodeHlc(r)).toBe(true)
      }),
      { numRuns: runs },
    )
  })

  it('a newer remote with the same wall and counter but another node still moves a clock of an older node', () => {
    // Regression shape: equal (wall, counter), the clock's own node sorting after one remote and before another.
    const start: Hlc = { wall: NOW, counter: 1, node: 'b/2' }
    const remotes: Hlc[] = [
      { wall: NOW, counter: 1, node: 'a/1' },
      { wall: NOW, counter: 1, node: 'z/9' },
    ]
    expect(foldNewest(start, remotes)).toEqual(foldEach(start, remotes))
    expect(foldNewest(start, remotes)).toEqual({ wall: NOW, counter: 1, node: 'm/1' })
  })
})

describe('receiveStored (the fold after a batch is committed)', () => {
  it('folds exactly as receive does when receive would accept, and leaves the clock unchanged instead of throwing when it would refuse', () => {
    fc.assert(
      fc.property(
        hlc,
        fc.record({
          wall: fc.integer({ min: NOW - 2_000, max: NOW + 2_000 }),
          counter: fc.integer({ min: 0, max: 3 }),
          node: fc.constantFrom('a/1', 'z/9'),
        }),
        (start, remote) => {
          const make = () => new HlcClock({ node: 'm/1', now: () => NOW, maxSkewMs: 1_000, highWater: start })
          const checked = make()
          let refused = false
          try {
            checked.receive(remote)
          } catch {
            refused = true
          }
          const stored = make()
          expect(stored.receiveStored(remote)).toBe(!refused)
          expect(stored.last).toEqual(refused ? make().last : checked.last)
        },
      ),
      { numRuns: runs },
    )
  })
})
