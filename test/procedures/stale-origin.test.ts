import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { GENESIS_HASH, encodeHlc, sealEvent, type DruEvent, type Origin } from '@dru/core'
import { ownWritesMissingAtOpen, type OpenedState } from '@dru/node'

// The rule behind "a restored copy refuses writes once signed events prove it is stale"
// (network.ts): only stored (verified, signed) events count, never a peer's claims. The
// end-to-end side is in restore.test.ts and the hostile-peer suite.

const OPENED_AT = 1_800_000_000_000

function event(origin: string, seq: number, wall: number): DruEvent {
  return sealEvent({
    origin: origin as Origin,
    seq,
    hlc: encodeHlc({ wall, counter: 0, node: origin }),
    docId: 'd',
    change: new Uint8Array([seq]),
    prev: GENESIS_HASH,
  })
}

const state: OpenedState = { druId: 'c', origin: 'c/9', ownAtOpen: { 'c/1': 3, 'c/2': 5 }, openedAt: OPENED_AT }

describe('ownWritesMissingAtOpen', () => {
  it('an own origin the database held: any event past that head is proof, whenever it was stamped', () => {
    expect(ownWritesMissingAtOpen(state, [event('c/1', 4, OPENED_AT + 60_000)]).map((e) => e.seq)).toEqual([4])
    expect(ownWritesMissingAtOpen(state, [event('c/1', 3, OPENED_AT - 1), event('c/2', 5, OPENED_AT - 1)])).toEqual([])
  })

  it('an own origin the database did not hold: proof only when stamped before the open (later: a twin)', () => {
    expect(ownWritesMissingAtOpen(state, [event('c/7', 1, OPENED_AT - 1)])).toHaveLength(1)
    expect(ownWritesMissingAtOpen(state, [event('c/7', 1, OPENED_AT)])).toEqual([])
  })

  it("ignores this process's own origin, other DRUs and ids sharing a prefix", () => {
    expect(
      ownWritesMissingAtOpen(state, [event('c/9', 1, OPENED_AT - 1), event('a/1', 9, 1), event('cc/1', 9, 1)]),
    ).toEqual([])
  })

  it('property: exactly the events past the held head, or of unheld own origins stamped before the open', () => {
    const runs = Number(process.env.DRU_PROPERTY_RUNS ?? 200)
    const origin = fc.constantFrom('c/1', 'c/2', 'c/3', 'c/9', 'a/1', 'cc/1')
    const ev = fc.record({ origin, seq: fc.integer({ min: 1, max: 8 }), dt: fc.integer({ min: -5, max: 5 }) })
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom('c/1', 'c/2', 'c/3'), fc.nat({ max: 6 })),
        fc.array(ev, { maxLength: 12 }),
        (ownAtOpen, raw) => {
          const events = raw.map((r) => event(r.origin, r.seq, OPENED_AT + r.dt))
          const got = ownWritesMissingAtOpen({ ...state, ownAtOpen }, events)
          const expected = raw.filter(
            (r) =>
              r.origin.startsWith('c/') &&
              r.origin !== 'c/9' &&
              (r.origin in ownAtOpen ? r.seq > ownAtOpen[r.origin]! : r.dt < 0),
          )
          expect(got.length).toBe(expected.length)
        },
      ),
      { numRuns: runs, seed: 42 },
    )
  })
})
