import * as A from '@automerge/automerge'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { headerFromDecoded, storedChangeMakesObjects } from '../src/change-header.js'

// The depth screen passes a stored change on its action column alone when it makes no
// object: a wrong `false` would let a change nest objects past the bound unscreened.

type Step = { kind: 'put'; key: string; n: number } | { kind: 'map' | 'list' | 'text'; key: string } | { kind: 'inc' }

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('put' as const), key: fc.constantFrom('a', 'b', 'c'), n: fc.integer() }),
  fc.record({
    kind: fc.constantFrom('map' as const, 'list' as const, 'text' as const),
    key: fc.constantFrom('a', 'b'),
  }),
  fc.record({ kind: fc.constant('inc' as const) }),
)

/** One change per group of steps, on a document with a counter and a nested map to write into. */
function changesOf(groups: Step[][]): Uint8Array[] {
  let doc = A.from<Record<string, any>>({ counter: new A.Counter(0), nested: { x: 1 }, items: [1] })
  const out: Uint8Array[] = []
  for (const steps of groups) {
    const next = A.change(doc, (d) => {
      for (const s of steps) {
        if (s.kind === 'put') d.nested[s.key] = s.n
        else if (s.kind === 'inc') d.counter.increment(1)
        else if (s.kind === 'map') d.nested[s.key] = { deep: { er: true } }
        else if (s.kind === 'list') d.items.push([1, [2]])
        else d[s.key] = 'text'
      }
    })
    if (next === doc) continue
    doc = next
    out.push(A.getLastLocalChange(doc)!)
  }
  return out
}

describe('storedChangeMakesObjects', () => {
  it('says whether a change makes an object exactly as Automerge decodes it, for any change', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(step, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 5 }),
        (groups) => {
          for (const c of changesOf(groups)) {
            const makes = headerFromDecoded(A.decodeChange(c)).made.length > 0
            expect(storedChangeMakesObjects(c)).toBe(makes)
          }
        },
      ),
      { numRuns: 150 },
    )
  })

  it('leaves to the header what it cannot read: compressed chunks, marks, cut bytes; never throws', () => {
    let doc = A.from<{ t: string }>({ t: 'hello world' })
    doc = A.change(doc, (d) => A.mark(d, ['t'], { start: 0, end: 5, expand: 'both' }, 'bold', true))
    expect(storedChangeMakesObjects(A.getLastLocalChange(doc)!)).toBeUndefined()
    const [c] = changesOf([[{ kind: 'put', key: 'a', n: 1 }]])
    const compressed = Uint8Array.from(c!)
    compressed[8] = 2
    expect(storedChangeMakesObjects(compressed)).toBeUndefined()
    for (let n = 0; n < c!.length; n++) expect(storedChangeMakesObjects(c!.subarray(0, n))).toBeUndefined()
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        expect(() => storedChangeMakesObjects(bytes)).not.toThrow()
      }),
    )
  })
})
