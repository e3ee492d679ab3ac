import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { DruError, GENESIS_HASH, encodeHlc, sealEvent, type DruEvent, type Origin } from '@dru/core'
import { EVENT_OVERHEAD_BYTES, RecentReads } from '../src/recent-reads.js'
import { signOwnHistory, type EventStore } from '../src/index.js'
import { bytes, memStore, setChange } from './helpers.js'

const runs = Number(process.env.DRU_PROPERTY_RUNS ?? 100)

/** Consecutive events of one origin, seq 1…n, each `size` change bytes. */
function chain(origin: string, n: number, size = 10): DruEvent[] {
  const out: DruEvent[] = []
  let prev = GENESIS_HASH
  for (let seq = 1; seq <= n; seq++) {
    const e = sealEvent({
      origin: origin as Origin,
      seq,
      hlc: encodeHlc({ wall: 1_700_000_000_000 + seq, counter: 0, node: origin }),
      docId: 'd',
      change: new Uint8Array(size).fill(seq & 0xff),
      prev,
    })
    prev = e.hash
    out.push(e)
  }
  return out
}

describe('RecentReads: what is kept is what was read, within its budget', () => {
  const logs = { 'a/1': chain('a/1', 60), 'b/1': chain('b/1', 60, 30) }
  type Op =
    | { k: 'keep'; origin: 'a/1' | 'b/1'; from: number; n: number }
    | { k: 'take'; origin: 'a/1' | 'b/1'; from: number; to: number; limit: number }
    | { k: 'forget'; origin: 'a/1' | 'b/1' }
  const origin = fc.constantFrom<'a/1' | 'b/1'>('a/1', 'b/1')
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      k: fc.constant('keep' as const),
      origin,
      from: fc.integer({ min: 1, max: 60 }),
      n: fc.integer({ min: 0, max: 20 }),
    }),
    fc.record({
      k: fc.constant('take' as const),
      origin,
      from: fc.integer({ min: 1, max: 60 }),
      to: fc.integer({ min: 1, max: 60 }),
      limit: fc.integer({ min: 1, max: 30 }),
    }),
    fc.record({ k: fc.constant('forget' as const), origin }),
  )

  it('take answers only kept events, consecutive from `from`, within `to` and `limit`; bytes stay within the budget (property)', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), fc.integer({ min: 0, max: 12_000 }), (ops, budget) => {
        const recent = new RecentReads(budget)
        for (const o of ops) {
          if (o.k === 'keep') recent.keep(logs[o.origin].slice(o.from - 1, o.from - 1 + o.n))
          else if (o.k === 'forget') recent.forget(o.origin)
          else {
            const got = recent.take(o.origin, o.from, o.to, o.limit)
            if (got === undefined) continue
            expect(got.length).toBeGreaterThan(0)
            expect(got.length).toBeLessThanOrEqual(o.limit)
            // The very objects read from the log, in order, none past `to`.
            got.forEach((e, i) => expect(e).toBe(logs[o.origin][o.from - 1 + i]))
            expect(got[got.length - 1]!.seq).toBeLessThanOrEqual(o.to)
          }
          expect(recent.bytes).toBeLessThanOrEqual(budget)
        }
      }),
      { numRuns: runs },
    )
  })

  it('a page kept is served whole, from its middle, and not after forget; overlapping keeps are held once', () => {
    const a = logs['a/1']
    const recent = new RecentReads(1 << 20)
    recent.keep(a.slice(0, 20))
    recent.keep(a.slice(10, 30))
    expect(recent.bytes).toBe(30 * (10 + EVENT_OVERHEAD_BYTES))
    expect(recent.take('a/1', 1, 60, 100)).toEqual(a.slice(0, 20))
    expect(recent.take('a/1', 21, 60, 100)).toEqual(a.slice(20, 30))
    expect(recent.take('a/1', 5, 8, 100)).toEqual(a.slice(4, 8))
    expect(recent.take('a/1', 31, 60, 100)).toBeUndefined()
    recent.forget('a/1')
    expect(recent.take('a/1', 1, 60, 100)).toBeUndefined()
    expect(recent.bytes).toBe(0)
  })

  it('drops the least recently used page first; a page larger than the budget is not kept; a bad budget is refused', () => {
    const a = logs['a/1']
    const per = 10 + EVENT_OVERHEAD_BYTES
    const recent = new RecentReads(25 * per)
    recent.keep(a.slice(0, 10))
    recent.keep(a.slice(10, 20))
    recent.take('a/1', 1, 60, 10) // the first page is now the most recent
    recent.keep(a.slice(20, 30))
    expect(recent.take('a/1', 11, 60, 10)).toBeUndefined()
    expect(recent.take('a/1', 1, 60, 10)).toHaveLength(10)
    expect(recent.take('a/1', 21, 60, 10)).toHaveLength(10)
    const small = new RecentReads(5 * per)
    small.keep(a.slice(0, 6))
    expect(small.bytes).toBe(0)
    expect(() => new RecentReads(-1)).toThrow(DruError)
    expect(() => new RecentReads(1.5)).toThrow(/recentReadBytes/)
  })
})

describe('the store serves a run read moments ago from memory, and only committed, current events', () => {
  const stores: EventStore[] = []
  afterEach(() => {
    for (const s of stores.splice(0)) if (!s.closed) s.close()
  })

  const own = (s: EventStore) => [...s.eventsMissing({})].flat()

  it('a second read of the same run skips the database (a row changed in between is not read), until forgotten', () => {
    const s = memStore('a')
    stores.push(s)
    for (let i = 0; i < 40; i++) s.append(`d${i % 3}`, bytes(i, i + 1))
    const first = own(s)
    setChange(s.db, s.origin, 7, Buffer.from([0xff]))
    // Served from what the first read re-hashed: the same events, no CORRUPTION.
    expect(own(s)).toEqual(first)
    s.forgetRecentReads()
    expect(() => own(s)).toThrow(expect.objectContaining({ code: 'CORRUPTION' }))
  })

  it('a store opened with recentReadBytes 0 reads the database every time', () => {
    const s = memStore('a', { recentReadBytes: 0 })
    stores.push(s)
    for (let i = 0; i < 5; i++) s.append('d', bytes(i))
    own(s)
    setChange(s.db, s.origin, 2, Buffer.from([0xff]))
    expect(() => own(s)).toThrow(expect.objectContaining({ code: 'CORRUPTION' }))
  })

  it('events read inside a transaction are not kept (what it wrote might roll back): the next read goes to the database', () => {
    const s = memStore('a')
    stores.push(s)
    for (let i = 0; i < 3; i++) s.append('d', bytes(i))
    s.transact((tx) => {
      tx.db.exec('select 1')
      expect(own(s)).toHaveLength(3)
    })
    setChange(s.db, s.origin, 2, Buffer.from([0xff]))
    expect(() => own(s)).toThrow(expect.objectContaining({ code: 'CORRUPTION' }))
  })

  it('events read before signOwnHistory signed them are read again with their signatures', () => {
    const s = memStore('a')
    stores.push(s)
    for (let i = 0; i < 4; i++) s.append('d', bytes(i))
    expect(own(s).every((e) => e.sig === undefined)).toBe(true)
    expect(signOwnHistory(s, 'a', (hash) => Buffer.from(`sig:${hash}`))).toBe(1)
    expect(own(s)[3]!.sig).toBeDefined()
  })

  it('events read before deferred signing signed the tip are read again with the signature', () => {
    const signer = { sign: (hash: string) => Buffer.from(`sig:${hash}`) }
    const s = memStore('a', { sign: signer.sign })
    stores.push(s)
    for (let i = 0; i < 3; i++) s.append('d', bytes(i))
    // Read without the flush eventsMissing does first: the tip is still unsigned here.
    const unsigned = [...s.eventsForDoc('d')]
    expect(unsigned[2]!.sig).toBeUndefined()
    expect(own(s)[2]!.sig).toBeDefined()
  })
})
