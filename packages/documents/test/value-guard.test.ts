import * as A from '@automerge/automerge'
import fc from 'fast-check'
import { EventStore } from '@dru/store-sqlite'
import { afterEach, describe, expect, it } from 'vitest'
import { DocumentStore } from '@dru/documents'
import { assertStorable } from '../src/value-guard.js'

// The change function works on a guarded document: it behaves like Automerge's own (lists
// are arrays, iteration, length, splice, counters, moving objects) except that values the
// document would store silently changed are refused with INVALID_VALUE before they land.

const open: EventStore[] = []
afterEach(() => {
  for (const s of open.splice(0)) s.close()
})

function docs(): DocumentStore {
  const store = EventStore.open({ path: ':memory:', druId: 'a', skewPolicy: 'tolerate' })
  open.push(store)
  return new DocumentStore(store)
}

type Doc = Record<string, any>

describe('the guarded document a change function gets', () => {
  it('keeps Automerge list and map behaviour', () => {
    const d = docs()
    d.change('x', (doc: Doc) => {
      doc.items = [1, 2, 3]
      doc.nested = { list: [{ a: 1 }] }
      doc.count = new A.Counter(1)
    })
    const seen: unknown[] = []
    d.change('x', (doc: Doc) => {
      seen.push(
        Array.isArray(doc.items),
        doc.items.length,
        [...doc.items],
        Object.keys(doc).sort(),
        JSON.parse(JSON.stringify(doc.items)),
      )
      seen.push(
        doc.items.map((n: number) => n * 2),
        doc.items.includes(2),
        doc.items.indexOf(3),
      )
      doc.items[0] = 10
      doc.items.splice(1, 1)
      doc.items.insertAt(1, 20, 21)
      doc.items.unshift(0)
      doc.items.push(99)
      doc.nested.list[0].a = 2
      doc.nested.list.push({ b: [true, null, 'x'] })
      doc.count.increment(4)
      delete doc.gone
      doc.moved = { ...doc.nested.list[0] }
      for (const item of doc.nested.list) seen.push(typeof item)
      seen.push('items' in doc, 1 in doc.items)
    })
    expect(seen).toEqual([
      true,
      3,
      [1, 2, 3],
      ['count', 'items', 'nested'],
      [1, 2, 3],
      [2, 4, 6],
      true,
      2,
      'object',
      'object',
      true,
      true,
    ])
    expect(d.get('x')).toEqual({
      count: 5,
      items: [0, 10, 20, 21, 3, 99],
      moved: { a: 2 },
      nested: { list: [{ a: 2 }, { b: [true, null, 'x'] }] },
    })
  })

  it('refuses a bad value however it is written (field, index, push, insertAt, splice, unshift, fill, nested), committing nothing', () => {
    const d = docs()
    d.change('x', (doc: Doc) => {
      doc.items = [1]
      doc.nested = { list: [] }
    })
    const before = d.get('x')
    const writes: Array<(doc: Doc, v: unknown) => void> = [
      (doc, v) => (doc.bad = v),
      (doc, v) => (doc.nested.bad = v),
      (doc, v) => (doc.items[0] = v),
      (doc, v) => doc.items.push(v),
      (doc, v) => doc.items.insertAt(0, v),
      (doc, v) => doc.items.splice(0, 0, 1, v),
      (doc, v) => doc.items.unshift(v),
      (doc, v) => doc.items.fill(v),
      (doc, v) => doc.nested.list.push({ deep: [v] }),
    ]
    for (const write of writes) {
      for (const bad of [() => 1, new Map(), NaN, Symbol('s'), undefined]) {
        expect(() => d.change('x', (doc: Doc) => write(doc, bad))).toThrow(
          expect.objectContaining({ code: 'INVALID_VALUE' }),
        )
      }
    }
    expect(d.get('x')).toEqual(before)
  })

  it('storable values are exactly the JSON-faithful ones (property)', () => {
    const json = fc.jsonValue()
    // JSON values read back as written except integers beyond ±2^53 (Automerge makes them
    // 64-bit ints, read back as bigints) and lone surrogates (read back as U+FFFD).
    const faithful = (v: unknown): boolean =>
      typeof v === 'number'
        ? !Number.isInteger(v) || Number.isSafeInteger(v)
        : typeof v === 'string'
          ? v.isWellFormed()
          : Array.isArray(v)
            ? v.every(faithful)
            : v !== null && typeof v === 'object'
              ? Object.entries(v).every(([k, x]) => k !== '__proto__' && k.isWellFormed() && faithful(x))
              : true
    const accepted = (v: unknown): boolean => {
      try {
        assertStorable(v, '')
        return true
      } catch (err) {
        expect(err).toMatchObject({ code: 'INVALID_VALUE' })
        return false
      }
    }
    fc.assert(
      fc.property(fc.oneof(json, fc.jsonValue({ stringUnit: 'binary' })), (v) => {
        expect(accepted(v)).toBe(faithful(v))
      }),
      { numRuns: 300, examples: [[-9007199254740992], [{ a: [2 ** 60] }], ['\ud800']] },
    )
    fc.assert(
      fc.property(
        json,
        fc.constantFrom<unknown>(NaN, Infinity, undefined, () => 1, new Set(), /r/),
        fc.array(fc.constantFrom('a', 'b')),
        (v, bad, path) => {
          // Put the bad value somewhere inside a JSON value: always refused.
          let holder: Record<string, unknown> = { v }
          const root = holder
          for (const k of path) holder = (holder[k] = {}) as Record<string, unknown>
          holder.bad = bad
          expect(() => assertStorable(root, '')).toThrow(expect.objectContaining({ code: 'INVALID_VALUE' }))
        },
      ),
      { numRuns: 200 },
    )
  })
})
