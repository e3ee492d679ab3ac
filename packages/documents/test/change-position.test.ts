import * as A from '@automerge/automerge'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { readChangePosition } from '../src/change-header.js'

/** Changes of one actor after `before` changes of another (so start ops and deps vary). */
function changes(actor: string, before: number, puts: number[]): Uint8Array[] {
  let other = A.init<Record<string, unknown>>({ actor: 'ab'.repeat(16) })
  for (let i = 0; i < before; i++) other = A.change(other, (d) => (d[`o${i}`] = i))
  let doc = A.merge(A.init<Record<string, unknown>>({ actor }), other)
  const out: Uint8Array[] = []
  for (const n of puts) {
    doc = A.change(doc, (d) => {
      for (let k = 0; k < n; k++) d[`k${k}`] = k
    })
    out.push(A.getLastLocalChange(doc)!)
  }
  return out
}

describe('readChangePosition', () => {
  it('reads the actor, seq and start op decodeChange reads, for any change', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex')),
        fc.nat(5),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 6 }),
        (actor, before, puts) => {
          for (const c of changes(actor, before, puts)) {
            const d = A.decodeChange(c)
            expect(readChangePosition(c)).toEqual({ actor: d.actor, seq: d.seq, startOp: d.startOp })
          }
        },
      ),
      { numRuns: 100 },
    )
  })

  it('returns undefined, never throws, on bytes that are not a whole change header', () => {
    const [c] = changes('cd'.repeat(16), 2, [3])
    for (let n = 0; n < c!.length; n++) {
      const h = readChangePosition(c!.subarray(0, n))
      // A cut inside the header is refused; past it, the header reads whole, as from the full change.
      if (h !== undefined) expect(h).toEqual(readChangePosition(c!))
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        expect(() => readChangePosition(bytes)).not.toThrow()
      }),
    )
    const compressed = Uint8Array.from(c!)
    compressed[8] = 2
    expect(readChangePosition(compressed)).toBeUndefined()
  })
})
