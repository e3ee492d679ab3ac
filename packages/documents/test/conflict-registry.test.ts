import { EventStore } from '@dru/store-sqlite'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import type { ConflictValue } from '../src/conflict-policy.js'
import { ConflictRegistry, MAX_UNWRITTEN_SETTLED } from '../src/conflict-registry.js'
import { DOCUMENT_MIGRATIONS } from '../src/schema.js'

const stores: EventStore[] = []
afterEach(() => {
  for (const s of stores.splice(0)) s.close()
})

function registry(): { store: EventStore; registry: ConflictRegistry } {
  const store = EventStore.open({ path: ':memory:', druId: 'eu-west-1', now: () => 1_700_000_000_000 })
  store.migrate('documents', DOCUMENT_MIGRATIONS)
  stores.push(store)
  return {
    store,
    registry: new ConflictRegistry(store, (err) => {
      throw err
    }),
  }
}

/** One settled conflict as the tracker hands it over: few documents, paths and op ids, so repeats are common. */
const settled = fc.record({
  docId: fc.constantFrom('d1', 'd2'),
  path: fc.constantFrom(['k0'], ['k1'], ['list', 0]),
  opIds: fc.uniqueArray(fc.constantFrom('1@aa', '2@aa', '1@bb', '3@cc'), { minLength: 2, maxLength: 3 }),
  at: fc.integer({ min: 1, max: 1000 }),
  value: fc.oneof(fc.integer(), fc.string({ maxLength: 4 }), fc.constant(null)),
})
type Settled = typeof settled extends fc.Arbitrary<infer T> ? T : never

const valuesOf = (s: Settled): ConflictValue[] =>
  [...s.opIds].sort().map((opId, i) => ({ opId, origin: `o-${i}`, hlc: `${s.at}-${i}`, value: s.value }))

/** Every row of the conflicts table, as stored. */
const rows = (store: EventStore): unknown[] => store.db.prepare('select * from conflicts order by id').all()

describe('ConflictRegistry settled rows held for the turn', () => {
  it('writes the same table as recording each conflict at once, repeats included (the first one found is kept)', () => {
    fc.assert(
      fc.property(fc.array(settled, { maxLength: 40 }), (found) => {
        const held = registry()
        const atOnce = registry()
        for (const s of found) {
          const how = { resolution: s.value, by: 'policy' }
          held.registry.recordSettled(s.docId, s.path, valuesOf(s), s.at, how)
          atOnce.registry.record(s.docId, s.path, valuesOf(s), s.at, how)
        }
        held.registry.flush()
        expect(rows(held.store)).toEqual(rows(atOnce.store))
      }),
    )
  })

  it('knows a held conflict exists before it is written, and only that one', () => {
    const { store, registry: r } = registry()
    const values: ConflictValue[] = [
      { opId: '1@aa', origin: 'a', hlc: null, value: 1 },
      { opId: '1@bb', origin: 'b', hlc: null, value: 2 },
    ]
    r.recordSettled('d1', ['k0'], values, 5, { resolution: 1, by: 'policy' })
    expect(r.exists('d1', '["k0"]', '1@aa,1@bb')).toBe(true)
    expect(r.exists('d1', '["k1"]', '1@aa,1@bb')).toBe(false)
    expect(r.exists('d2', '["k0"]', '1@aa,1@bb')).toBe(false)
    expect(rows(store)).toHaveLength(0)
  })

  it('writes the held rows once they reach the bound, without waiting for the turn to end', () => {
    const { store, registry: r } = registry()
    for (let i = 0; i < MAX_UNWRITTEN_SETTLED; i++) {
      const values: ConflictValue[] = [
        { opId: `${i + 1}@aa`, origin: 'a', hlc: null, value: i },
        { opId: `${i + 1}@bb`, origin: 'b', hlc: null, value: -i },
      ]
      r.recordSettled('d1', ['k0'], values, 5, { resolution: i, by: 'policy' })
    }
    expect(rows(store)).toHaveLength(MAX_UNWRITTEN_SETTLED)
  })
})
