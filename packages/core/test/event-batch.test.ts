import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  DruError,
  eventHashMatches,
  eventHashVerified,
  hashedEvent,
  isHashComputed,
  validateBatch,
  validateEvent,
  type DruEvent,
} from '../src/index.js'
import { chain } from './chain.js'

const runs = Number(process.env.DRU_PROPERTY_RUNS ?? 300)

const errorOf = (fn: () => unknown): DruError => {
  try {
    fn()
  } catch (err) {
    if (err instanceof DruError) return err
    throw err
  }
  throw new Error('did not throw')
}

// Each way to spoil an event, with the field validateEvent names for it.
const spoilers: Array<[string, (e: DruEvent) => unknown]> = [
  ['origin', (e) => ({ ...e, origin: 'no-incarnation' })],
  ['seq', (e) => ({ ...e, seq: 0 })],
  ['hlc', (e) => ({ ...e, hlc: '2026-11-29' })],
  ['docId', (e) => ({ ...e, docId: '' })],
  ['change', (e) => ({ ...e, change: 'bytes' })],
  ['prev', (e) => ({ ...e, prev: e.prev.toUpperCase() + 'x' })],
  ['hash', (e) => ({ ...e, hash: 'F'.repeat(64) })],
  ['sig', (e) => ({ ...e, sig: new Uint8Array(129) })],
  ['extra', (e) => ({ ...e, extra: 1 })],
]

describe('validateBatch', () => {
  it('refuses a batch with a bad event anywhere, naming that event by its index and the field, as validateEvent does', () => {
    const events = chain(40)
    fc.assert(
      fc.property(fc.nat(39), fc.constantFrom(...spoilers), (badAt, [field, spoil]) => {
        const batch: unknown[] = [...events]
        batch[badAt] = spoil(events[badAt]!)
        const err = errorOf(() => validateBatch(batch))
        expect(err.code).toBe('INVALID_EVENT')
        expect(err.message.startsWith(`batch[${badAt}].${field} `)).toBe(true)
        expect(err.details).toEqual({ field })
        // The same words as validateEvent's on that event alone, only the label differs.
        expect(err.message.slice(`batch[${badAt}]`.length)).toBe(
          errorOf(() => validateEvent(batch[badAt])).message.slice('event'.length),
        )
      }),
      { numRuns: runs },
    )
  })

  it('names a value that is not an object by its index', () => {
    expect(errorOf(() => validateBatch([...chain(3), null])).message).toBe('batch[3] is not an object')
  })

  it('takes an inherited key as before (Object.keys saw own keys only) and refuses an own one', () => {
    const [e] = chain(1)
    const inherits = Object.create({ stray: 1 }) as Record<string, unknown>
    Object.assign(inherits, e)
    expect(validateBatch([inherits])).toHaveLength(1)
    expect(errorOf(() => validateBatch([{ ...e, stray: 1 }])).message).toBe('batch[0].stray is not an event field')
  })

  // validateBatch remembers the origins, document ids and hashes of a batch that passed: a
  // batch must be refused exactly when one of its events alone is, at the first such event.
  it('refuses a batch exactly when validateEvent refuses one of its events, at the first such one, whatever it remembered', () => {
    // Two origins, two documents each; events valid alone or spoiled in one field.
    const pool: unknown[] = [...chain(6, 'a/1'), ...chain(6, 'b/2')]
    const valid = pool.length
    for (const e of pool.slice(0, valid) as DruEvent[]) for (const [, spoil] of spoilers) pool.push(spoil(e))
    // Values equal in text to a remembered one but of another type, or remembered ones slightly changed.
    const [first] = chain(1, 'a/1')
    pool.push(
      { ...first!, origin: new String('a/1') },
      { ...first!, docId: new String('doc-1') },
      { ...first!, prev: new String(first!.prev) },
      { ...first!, origin: 'a/1 ' },
      { ...first!, docId: 'doc-1\u0000' },
      { ...first!, prev: '' },
      { ...first!, prev: undefined },
    )
    const ok = (v: unknown): boolean => {
      try {
        validateEvent(v)
        return true
      } catch {
        return false
      }
    }
    fc.assert(
      fc.property(fc.array(fc.nat(pool.length - 1), { minLength: 1, maxLength: 30 }), (picks) => {
        const batch = picks.map((i) => pool[i])
        const badAt = batch.findIndex((v) => !ok(v))
        if (badAt < 0) {
          expect(validateBatch(batch)).toEqual(batch)
          return
        }
        const err = errorOf(() => validateBatch(batch))
        expect(err.message).toBe(
          `batch[${badAt}]` + errorOf(() => validateEvent(batch[badAt])).message.slice('event'.length),
        )
      }),
      { numRuns: runs * 3 },
    )
  })

  it('checks a prev equal to the last hash only when that hash passed, and a repeated bad value at each event', () => {
    const [a, b] = chain(2)
    const badHash = 'A'.repeat(64)
    // The first event's hash fails, so the second's prev equal to it is never taken as checked.
    expect(
      errorOf(() =>
        validateBatch([
          { ...a!, hash: badHash },
          { ...b!, prev: badHash },
        ]),
      ).message,
    ).toBe('batch[0].hash must be 64 lowercase hex characters')
    expect(errorOf(() => validateBatch([a, { ...b!, prev: badHash }])).message).toBe(
      'batch[1].prev must be 64 lowercase hex characters',
    )
    expect(errorOf(() => validateBatch([{ ...a!, prev: '' }])).message).toBe(
      'batch[0].prev must be 64 lowercase hex characters',
    )
    expect(errorOf(() => validateBatch([a, { ...b!, docId: 'x'.repeat(257) }])).details).toEqual({ field: 'docId' })
    expect(errorOf(() => validateBatch([a, { ...b!, origin: 'b' }])).details).toEqual({ field: 'origin' })
  })

  it('checks every field of an event hashedEvent built except its hash (computed there), and refuses a key added to it', () => {
    const events = chain(3)
    for (const [field, spoil] of spoilers) {
      if (field === 'hash' || field === 'extra') continue
      const spoiled = spoil(events[1]!) as DruEvent
      const built = hashedEvent(spoiled, spoiled.sig)
      const err = errorOf(() => validateBatch([events[0], built, events[2]]))
      expect(err.message.startsWith(`batch[1].${field} `)).toBe(true)
    }
    const added = Object.assign(hashedEvent({ ...events[0]! }), { extra: 1 })
    expect(errorOf(() => validateBatch([added])).message).toBe('batch[0].extra is not an event field')
  })

  it('checks a document id or origin again whenever it differs from the event before', () => {
    const [a, b, c] = chain(3)
    expect(validateBatch([a, { ...b!, docId: 'd' }, { ...c!, docId: 'd' }])).toHaveLength(3)
    expect(errorOf(() => validateBatch([a, { ...b!, docId: 'd' }, { ...c!, docId: 'd\u0000' }])).message).toBe(
      'batch[2].docId must be a non-empty string of at most 256 characters',
    )
    expect(errorOf(() => validateBatch([a, b, { ...c!, origin: `${c!.origin} ` }])).details).toEqual({
      field: 'origin',
    })
  })

  it('returns the events themselves, in order', () => {
    const events = chain(5)
    const out = validateBatch(events)
    out.forEach((e, i) => expect(e).toBe(events[i]))
  })
})

describe('hashedEvent', () => {
  it('computes the hash sealEvent does, keeps sig only when given, and passes validateEvent', () => {
    for (const e of chain(4)) {
      const built = hashedEvent({ ...e })
      expect(built).toEqual(e)
      expect(Object.keys(built).sort()).toEqual(Object.keys(e).sort())
      expect(validateEvent(built)).toBe(built)
      const signed = hashedEvent({ ...e }, new Uint8Array(64))
      expect(signed.sig).toEqual(new Uint8Array(64))
      expect(signed.hash).toBe(e.hash)
    }
  })

  it('marks only the object it built: a copy, an altered copy or an object with its prototype is hashed again', () => {
    const [e] = chain(1)
    const built = hashedEvent({ ...e! })
    expect(isHashComputed(built)).toBe(true)
    expect(eventHashVerified(built)).toBe(true)
    const altered = { ...built, change: new Uint8Array([9]) }
    expect(isHashComputed(altered)).toBe(false)
    expect(eventHashVerified(altered)).toBe(false)
    const forged = Object.assign(Object.create(Object.getPrototypeOf(built) as object) as object, altered) as DruEvent
    expect(isHashComputed(forged)).toBe(false)
    expect(eventHashVerified(forged)).toBe(false)
    expect(eventHashMatches(built)).toBe(true)
  })
})
