import fc from 'fast-check'
import { countMissing, type VersionVector } from '@dru/core'
import { describe, expect, it } from 'vitest'
import { compactionFloor } from '../src/compaction.js'

// The floor decides which events may leave the log: it must never pass what this DRU or
// any member durably holds, except that a member always holds what it wrote itself.

const vvArb = fc.dictionary(
  fc.constantFrom('a/1', 'a/2', 'b/1', 'c/1', 'c/5'),
  fc.nat(50),
) as fc.Arbitrary<VersionVector>

describe('compactionFloor', () => {
  it("property: never above our vector or a member's acks (other than its own writes); waitingFor is exactly who lacks something", () => {
    fc.assert(
      fc.property(vvArb, fc.array(vvArb, { minLength: 2, maxLength: 2 }), (own, acks) => {
        const members = ['b', 'c'].map((id, i) => ({ id, acked: acks[i]! }))
        const { floor, waitingFor } = compactionFloor(own, members)
        for (const [origin, seq] of Object.entries(floor)) {
          expect(seq).toBeLessThanOrEqual(own[origin] ?? 0)
          for (const m of members) {
            if (origin.startsWith(`${m.id}/`)) continue
            expect(seq).toBeLessThanOrEqual(m.acked[origin] ?? 0)
          }
        }
        for (const m of members) {
          const lacks = Object.entries(own).some(([o, s]) => !o.startsWith(`${m.id}/`) && (m.acked[o] ?? 0) < s)
          expect(waitingFor.includes(m.id)).toBe(lacks)
        }
      }),
      { seed: 20261125, numRuns: 500 },
    )
  })

  it('a member that never acknowledged holds the floor at zero, except for its own writes', () => {
    const own = { 'a/1': 10, 'b/1': 4 }
    const r = compactionFloor(own, [{ id: 'b', acked: {} }])
    expect(r.floor).toEqual({ 'b/1': 4 })
    expect(r.waitingFor).toEqual(['b'])
    expect(countMissing(own, r.floor)).toBe(10)
  })

  it('no members: the floor is our own vector', () => {
    expect(compactionFloor({ 'a/1': 3 }, []).floor).toEqual({ 'a/1': 3 })
  })
})
