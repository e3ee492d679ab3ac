import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { afterEach, describe, expect, it } from 'vitest'
import { GENESIS_HASH, encodeHlc, sealEvent, type DruEvent, type Origin } from '@dru/core'
import { EventStore } from '../src/index.js'
import { bytes, memStore, setChange, tempDir } from './helpers.js'

// Attacks on the recent reads (recent-reads.ts) and on the refusal of an application's own
// transaction: can a peer be served an event that is not what the log holds now?

const stores: EventStore[] = []
const cleanups: Array<() => void> = []
afterEach(() => {
  for (const s of stores.splice(0)) if (!s.closed) s.close()
  for (const c of cleanups.splice(0)) c()
})

const served = (s: EventStore) => [...s.eventsMissing({})].flat()

/** The events the log holds now, read without the recent reads. */
function held(s: EventStore): DruEvent[] {
  s.forgetRecentReads()
  return served(s)
}

function remoteEvent(origin: string, seq: number, prev: string, change: number): DruEvent {
  return sealEvent({
    origin: origin as Origin,
    seq,
    hlc: encodeHlc({ wall: Date.now() - 1_000 + seq, counter: 0, node: origin }),
    docId: 'd',
    change: bytes(change),
    prev,
  })
}

describe('recent reads never serve what the log no longer holds', () => {
  it('a storing validator that reads the log mid-ingest and then throws: the rolled-back events are not served later', () => {
    const s = memStore('a')
    stores.push(s)
    s.append('d', bytes(1))
    served(s)
    let fail = true
    s.addStoringValidator(() => {
      // An application reading what peers lack from inside the batch's transaction (the
      // batch itself is not claimed yet: the heads move after the commit).
      expect(served(s).length).toBeGreaterThan(0)
      if (fail) throw new Error('refused by the application')
    })
    const first = remoteEvent('x/1', 1, GENESIS_HASH, 7)
    expect(() => s.ingest([first])).toThrow()
    fail = false
    // Another event takes the same position: the log now holds it, not the rolled-back one.
    const second = remoteEvent('x/1', 1, GENESIS_HASH, 8)
    expect(s.ingest([second]).stored).toHaveLength(1)
    const out = served(s).filter((e) => e.origin === 'x/1')
    expect(out.map((e) => e.hash)).toEqual([second.hash])
    expect(served(s)).toEqual(held(s))
  })

  it('an inbox handler reading the log mid-ingest does not make a refused batch servable', () => {
    const s = memStore('a')
    stores.push(s)
    s.append('d', bytes(1))
    let reads = 0
    s.onIngest('reader', () => {
      reads += served(s).length
    })
    s.addStoringValidator(() => {
      throw new Error('no')
    })
    expect(() => s.ingest([remoteEvent('x/1', 1, GENESIS_HASH, 7)])).toThrow()
    expect(reads).toBeGreaterThan(0)
    expect(served(s).map((e) => e.origin)).toEqual([s.origin])
    expect(Object.keys(s.vv())).toEqual([s.origin])
  })

  it('reads inside an application transaction of the connection are not kept', () => {
    const s = memStore('a')
    stores.push(s)
    for (let i = 0; i < 5; i++) s.append('d', bytes(i))
    s.db.transaction(() => served(s))()
    setChange(s.db, s.origin, 3, Buffer.from([0xee]))
    expect(() => served(s)).toThrow(expect.objectContaining({ code: 'CORRUPTION' }))
  })

  it('a nested savepoint through tx.db that rolls back an append leaves log, heads and what is served in agreement', () => {
    const s = memStore('a')
    stores.push(s)
    s.append('d', bytes(0))
    let outcome: unknown
    try {
      s.transact((tx) => {
        tx.append('d', bytes(1))
        try {
          tx.db.transaction(() => {
            tx.append('d', bytes(2))
            throw new Error('inner')
          })()
        } catch {
          // The application carries on with the outer transaction.
        }
        tx.append('d', bytes(3))
      })
      outcome = 'committed'
    } catch (err) {
      outcome = (err as { code?: string }).code
    }
    // Whatever the outcome, the log must be whole and match the version vector.
    expect(() => s.verifyLog()).not.toThrow()
    const all = held(s)
    expect(all.length).toBe(s.vv()[s.origin] ?? 0)
    expect(served(s)).toEqual(all)
    expect(outcome).toBeDefined()
  })

  it('compaction after a run was served: the events below the base are refused, never served from memory', () => {
    const s = memStore('a', { sign: (hash) => Buffer.from(`sig:${hash}`) })
    stores.push(s)
    for (let i = 0; i < 10; i++) s.append('d', bytes(i))
    expect(served(s)).toHaveLength(10)
    s.raiseBase({ [s.origin]: 10 })
    s.deleteBelowBase()
    expect(() => served(s)).toThrow(expect.objectContaining({ code: 'BELOW_FLOOR' }))
    expect([...s.eventsMissing({}, { belowBase: 'skip' })].flat()).toEqual([])
  })
})

describe("an application's own transaction around the store's other writes", () => {
  it('raiseBase inside an application transaction that rolls back leaves the base as the database holds it', () => {
    const s = memStore('a', { sign: (hash) => Buffer.from(`sig:${hash}`) })
    stores.push(s)
    for (let i = 0; i < 6; i++) s.append('d', bytes(i))
    s.signOwnTip()
    const rollback = new Error('application rolls back')
    try {
      s.db.transaction(() => {
        s.raiseBase({ [s.origin]: 6 })
        throw rollback
      })()
    } catch (err) {
      if (err !== rollback) expect((err as { code?: string }).code).toBe('INVALID_ARGUMENT')
    }
    const stored = s.db.prepare('select count(*) as n from log_base').get() as { n: number }
    expect(Object.keys(s.base()).length).toBe(stored.n)
    // Nothing may be deleted that the stored base does not cover.
    s.deleteBelowBase()
    expect(s.count()).toBe(6 - (stored.n > 0 ? 6 : 0))
    expect(() => served(s)).not.toThrow(expect.objectContaining({ code: 'CORRUPTION' }))
  })

  it('deleteBelowBase inside an application transaction that rolls back leaves the log and the document index in agreement', () => {
    const s = memStore('a', { sign: (hash) => Buffer.from(`sig:${hash}`) })
    stores.push(s)
    for (let i = 0; i < 6; i++) {
      s.append('d', bytes(i))
      s.signOwnTip()
    }
    expect(s.raiseBase({ [s.origin]: 3 })).toEqual([s.origin])
    const rollback = new Error('application rolls back')
    try {
      s.db.transaction(() => {
        s.deleteBelowBase()
        throw rollback
      })()
    } catch (err) {
      if (err !== rollback) expect((err as { code?: string }).code).toBe('INVALID_ARGUMENT')
    }
    expect([...s.eventsForDoc('d')].length).toBe(s.count())
    expect(s.eventSeqsForDoc('d', 0).length).toBe(s.count())
  })
})

describe('an application holding BEGIN open across an await (what a sync session meets then)', () => {
  it('a batch arriving meanwhile is refused as INVALID_ARGUMENT (not a peer fault) and changes nothing; after COMMIT it is stored', async () => {
    const s = memStore('a', { sign: (hash) => Buffer.from(`sig:${hash}`) })
    const peer = memStore('b')
    stores.push(s, peer)
    s.append('d', bytes(1))
    peer.append('d', bytes(2))
    const batch = [...peer.eventsMissing({})].flat()
    s.db.exec('begin')
    s.db.prepare('create table app (x)').run()
    await Promise.resolve()
    expect(() => s.ingest(batch)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
    expect(() => s.append('d', bytes(3))).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
    // Reads for peers still work meanwhile, and what they read is not kept.
    expect(served(s).map((e) => e.seq)).toEqual([1])
    s.db.exec('rollback')
    expect(s.ingest(batch).stored).toHaveLength(1)
    expect(s.append('d', bytes(3)).seq).toBe(2)
    expect(served(s)).toEqual(held(s))
    s.verifyLog()
  })
})

describe('a bad recentReadBytes', () => {
  it('is refused like the other options, before the database file is created', () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const path = join(dir, 'x.db')
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => EventStore.open({ path, druId: 'a', recentReadBytes: bad })).toThrow(
        expect.objectContaining({ code: 'CONFIG_INVALID', details: { field: 'recentReadBytes' } }),
      )
    }
    expect(existsSync(path)).toBe(false)
  })
})

describe('the recent reads hold about their budget, not more', () => {
  it('tiny events: the heap the kept pages hold stays within the budget (+10 %)', () => {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    const budget = 4 << 20
    const s = memStore('a', { recentReadBytes: budget, sign: () => Buffer.alloc(64, 1) })
    stores.push(s)
    // 2-byte changes under uuid-long document ids: the per-event overhead is nearly all there is.
    for (let i = 0; i < 20_000; i += 100)
      s.transact((tx) => {
        for (let j = 0; j < 100; j++) tx.append(`0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f${j % 7}`, bytes(i & 0xff, j))
      })
    // A first read prepares what reading needs; only the second one's pages are measured.
    served(s)
    s.forgetRecentReads()
    gc()
    gc()
    const before = process.memoryUsage()
    served(s)
    gc()
    gc()
    const after = process.memoryUsage()
    const held = after.heapUsed - before.heapUsed + (after.arrayBuffers - before.arrayBuffers)
    expect(held).toBeLessThanOrEqual(budget * 1.1)
  })
})
