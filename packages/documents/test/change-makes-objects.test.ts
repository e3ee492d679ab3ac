import { createHash } from 'node:crypto'
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

const readU = (b: Uint8Array, p: number): [number, number] => {
  let x = 0
  let shift = 0
  let c: number
  do {
    c = b[p++]!
    x += (c & 0x7f) * 2 ** shift
    shift += 7
  } while (c & 0x80)
  return [x, p]
}
const writeU = (x: number): number[] => {
  const out: number[] = []
  do {
    let c = x & 0x7f
    x = Math.floor(x / 128)
    if (x) c |= 0x80
    out.push(c)
  } while (x)
  return out
}

/** `change` with its action column (spec 0x42) replaced by `action` bytes, or dropped; checksum fixed. */
function withActionColumn(change: Uint8Array, action: number[] | undefined): Uint8Array {
  const [, bodyStart] = readU(change, 9)
  let q = bodyStart
  const [deps, a] = readU(change, q)
  q = a + 32 * deps
  const [actorLength, b] = readU(change, q)
  q = b + actorLength
  q = readU(change, readU(change, q)[1])[1] // seq, start op
  while (change[q++]! & 0x80); // time (signed LEB128)
  const [messageLength, c] = readU(change, q)
  q = c + messageLength
  const [others, d] = readU(change, q)
  q = d
  for (let i = 0; i < others; i++) {
    const [l, e] = readU(change, q)
    q = e + l
  }
  const headerEnd = q
  const [count, f] = readU(change, q)
  q = f
  const columns: Array<{ spec: number; data: Uint8Array | number[] }> = []
  const lengths: number[] = []
  for (let i = 0; i < count; i++) {
    const [spec, g] = readU(change, q)
    const [length, h] = readU(change, g)
    q = h
    columns.push({ spec, data: [] })
    lengths.push(length)
  }
  for (const [i, col] of columns.entries()) {
    col.data = change.slice(q, q + lengths[i]!)
    q += lengths[i]!
  }
  const kept = columns.flatMap((col) => (col.spec !== 0x42 ? [col] : action ? [{ spec: 0x42, data: action }] : []))
  const body = [...change.slice(bodyStart, headerEnd), ...writeU(kept.length)]
  for (const col of kept) body.push(...writeU(col.spec), ...writeU(col.data.length))
  for (const col of kept) body.push(...col.data)
  const out = Uint8Array.from([...change.slice(0, 9), ...writeU(body.length), ...body])
  out.set(createHash('sha256').update(out.subarray(8)).digest().subarray(0, 4), 4)
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

  it('a hand-edited action column decides for Automerge too: dropped or cut short, neither sees a make op', () => {
    let doc = A.init<Record<string, unknown>>({ actor: 'aa'.repeat(8) })
    doc = A.change(doc, (d) => {
      d.a = { b: { c: {} } }
    })
    const makes3 = A.getLastLocalChange(doc)!
    expect(A.decodeChange(makes3).ops.map((o) => o.action)).toEqual(['makeMap', 'makeMap', 'makeMap'])
    for (const action of [undefined, [0x01, 0x01]]) {
      const edited = withActionColumn(makes3, action) // no column; one 'set' where three makeMap were
      const decoded = A.decodeChange(edited).ops.map((o) => o.action)
      expect(decoded.some((a) => a.startsWith('make'))).toBe(false)
      expect(storedChangeMakesObjects(edited)).toBe(false)
    }
    // A make op past the other columns' ends: the reader says so (and the screen reads the header).
    expect(storedChangeMakesObjects(withActionColumn(makes3, [0x03, 0x01, 0x01, 0x00]))).toBe(true)
  })
})
