import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import {
  DruError,
  GENESIS_HASH,
  HlcClock,
  decodeHlc,
  encodeHlc,
  hashedEvent,
  newIncarnation,
  sealEvent,
  type DruEvent,
} from '@dru/core'
import { DEFAULT_CACHE_KIB, EventStore } from '../src/index.js'
import {
  bytes,
  codeOf,
  exchange,
  memStore,
  runHolding,
  sequentialIncarnations,
  setRun,
  snapshotState,
  tempDir,
} from './helpers.js'

const cleanups: Array<() => void> = []
afterEach(() => {
  while (cleanups.length) cleanups.pop()!()
})

/** A store with `n` local events on docs d0..d2 and an app table. */
function seeded(druId: string, n: number) {
  const s = memStore(druId)
  s.db.exec('create table app (id integer primary key, note text)')
  for (let i = 0; i < n; i++) {
    s.transact((tx) => {
      tx.db.prepare('insert into app (note) values (?)').run(`w${i}`)
      tx.append(`d${i % 3}`, bytes(i, i + 1, i + 2))
    })
  }
  return s
}

describe('outbox: transact()', () => {
  it('commits app rows and events together, with gap-free seqs and a hash chain', () => {
    const s = seeded('a', 5)
    expect(s.vv()).toEqual({ 'a/1': 5 })
    expect(s.db.prepare('select count(*) n from app').get()).toEqual({ n: 5 })
    let prev = GENESIS_HASH
    for (let seq = 1; seq <= 5; seq++) {
      const e = s.getEvent('a/1', seq)!
      expect(e.prev).toBe(prev)
      prev = e.hash
    }
    expect(s.head('a/1')).toEqual({ seq: 5, hash: prev })
    expect(s.verifyLog()).toEqual({ events: 5, origins: 1 })
  })

  it('a throwing transaction leaves neither half and consumes no seq', () => {
    const s = seeded('a', 2)
    const before = snapshotState(s, 'app')
    expect(() =>
      s.transact((tx) => {
        tx.db.prepare('insert into app (note) values (?)').run('doomed')
        tx.append('d1', bytes(9))
        tx.append('d2', bytes(9))
        throw new Error('app failure')
      }),
    ).toThrow('app failure')
    expect(snapshotState(s, 'app')).toEqual(before)
    const { events } = s.transact((tx) => tx.append('d1', bytes(7)))
    expect(events[0]!.seq).toBe(3)
    expect(events[0]!.prev).toBe(before.fingerprint.heads['a/1'])
  })

  it('an empty transaction consumes no seq and notifies nobody', () => {
    const s = seeded('a', 1)
    let notified = 0
    s.onCommit(() => notified++)
    s.transact((tx) => tx.db.prepare('insert into app (note) values (?)').run('no events'))
    expect(s.vv()).toEqual({ 'a/1': 1 })
    expect(notified).toBe(0)
    expect(s.append('d', bytes(1)).seq).toBe(2)
  })

  it('refuses nested and asynchronous transactions, rolling back', () => {
    const s = seeded('a', 1)
    const before = snapshotState(s, 'app')
    expect(codeOf(() => s.transact(() => s.transact(() => 1)))).toBe('INVALID_ARGUMENT')
    expect(codeOf(() => s.transact(async (tx) => tx.append('d', bytes(1))))).toBe('ASYNC_CHANGE')
    expect(codeOf(() => s.transact((tx) => tx.append('', bytes(1))))).toBe('INVALID_ARGUMENT')
    expect(snapshotState(s, 'app')).toEqual(before)
  })

  it("refuses to write inside the application's own transaction of the connection: a rollback after our commit would unpublish events", () => {
    const s = seeded('a', 1)
    const peer = seeded('b', 2)
    const before = snapshotState(s, 'app')
    const inOuter = (fn: () => unknown) => {
      try {
        s.db.transaction(() => {
          fn()
          throw new Error('app rolls back')
        })()
      } catch (err) {
        return (err as DruError).code ?? (err as Error).message
      }
    }
    // Before the fix the append committed as a savepoint, the heads took seq 2, and the
    // outer rollback left a version vector claiming an event the log does not hold.
    expect(inOuter(() => s.append('d', bytes(9)))).toBe('INVALID_ARGUMENT')
    expect(inOuter(() => s.transact((tx) => tx.append('d', bytes(9))))).toBe('INVALID_ARGUMENT')
    expect(inOuter(() => s.ingest([...peer.eventsMissing({})].flat()))).toBe('INVALID_ARGUMENT')
    expect(snapshotState(s, 'app')).toEqual(before)
    expect(s.append('d', bytes(1)).seq).toBe(2)
    s.verifyLog()
  })

  it('refuses a tx used after its transaction ended (an async continuation), storing nothing', async () => {
    const s = seeded('a', 1)
    const before = snapshotState(s, 'app')
    let late: Promise<unknown> | undefined
    expect(
      codeOf(() =>
        s.transact((tx) => {
          late = (async () => {
            await null
            return tx.append('d', bytes(1))
          })()
          return late
        }),
      ),
    ).toBe('ASYNC_CHANGE')
    await expect(late).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    expect(snapshotState(s, 'app')).toEqual(before)
    let kept: Parameters<Parameters<typeof s.transact>[0]>[0] | undefined
    s.transact((tx) => (kept = tx))
    expect(codeOf(() => kept!.append('d', bytes(2)))).toBe('INVALID_ARGUMENT')
    expect(snapshotState(s, 'app')).toEqual(before)
  })
})

describe('inbox: ingest()', () => {
  it('stores remote events once and runs each handler exactly once, even when the batch is ingested three times', () => {
    const a = seeded('a', 6)
    const b = memStore('b')
    b.db.exec('create table effects (origin text, seq integer)')
    b.onIngest('effects', (e, tx) => tx.db.prepare('insert into effects values (?, ?)').run(e.origin, e.seq))
    const batch = [...a.eventsMissing({})].flat()
    const results = [b.ingest(batch), b.ingest(batch), b.ingest([...batch].reverse())]
    expect(results.map((r) => [r.stored.length, r.duplicates])).toEqual([
      [6, 0],
      [0, 6],
      [0, 6],
    ])
    expect(
      b.db.prepare('select origin, seq, count(*) n from effects group by origin, seq having n != 1').all(),
    ).toEqual([])
    expect(b.db.prepare('select count(*) n from effects').get()).toEqual({ n: 6 })
    expect(b.fingerprint()).toEqual(a.fingerprint())
  })

  it('accepts a batch in any order and with repeats inside it', () => {
    const a = seeded('a', 5)
    const b = memStore('b')
    const events = [...a.eventsMissing({})].flat()
    const shuffled = [events[3]!, events[0]!, events[4]!, events[0]!, events[2]!, events[1]!]
    const r = b.ingest(shuffled)
    expect(r.stored.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5])
    expect(r.duplicates).toBe(1)
    expect(b.fingerprint()).toEqual(a.fingerprint())
  })

  it("forwards third-party events: c learns a's events from b", () => {
    const a = seeded('a', 3)
    const b = seeded('b', 2)
    const c = memStore('c')
    exchange(a, b)
    exchange(b, c)
    expect(c.fingerprint()).toEqual(b.fingerprint())
    expect(c.vv()).toEqual({ 'a/1': 3, 'b/1': 2 })
  })

  describe('bad input gets a distinct typed error and leaves the store unchanged', () => {
    function setup() {
      const a = seeded('a', 4)
      const b = memStore('b')
      b.db.exec('create table effects (origin text, seq integer)')
      b.onIngest('effects', (e, tx) => tx.db.prepare('insert into effects values (?, ?)').run(e.origin, e.seq))
      b.ingest([a.getEvent('a/1', 1)!, a.getEvent('a/1', 2)!])
      const e = (seq: number) => a.getEvent('a/1', seq)!
      return { a, b, e }
    }
    const forge = (base: DruEvent, patch: Partial<DruEvent>): DruEvent => sealEvent({ ...base, ...patch })

    const cases: Array<[string, string, (e: (seq: number) => DruEvent) => unknown[]]> = [
      ['wrong hash', 'HASH_MISMATCH', (e) => [{ ...e(3), hash: 'f'.repeat(64) }]],
      ['payload altered, hash kept', 'HASH_MISMATCH', (e) => [{ ...e(3), change: bytes(0xde, 0xad) }]],
      ['gap in seq', 'SEQ_GAP', (e) => [e(4)]],
      ['fork: same (origin, seq), other content', 'FORK', (e) => [forge(e(2), { change: bytes(1, 2, 3, 4) })]],
      ['fork below the head', 'FORK', (e) => [forge(e(1), { docId: 'other' })]],
      ['broken chain link', 'CHAIN_BROKEN', (e) => [forge(e(3), { prev: 'a'.repeat(64) })]],
      [
        'skewed HLC (an hour ahead)',
        'CLOCK_SKEW',
        (e) => [forge(e(3), { hlc: encodeHlc({ wall: Date.now() + 3_600_000, counter: 0, node: 'a/1' }) })],
      ],
      ['not an event', 'INVALID_EVENT', () => [{ hello: 'world' }]],
      ['bad origin', 'INVALID_EVENT', (e) => [{ ...e(3), origin: 'no-incarnation' }]],
      ['garbled hlc', 'INVALID_EVENT', (e) => [{ ...e(3), hlc: 'yesterday' }]],
      [
        'good event then bad one: whole batch refused',
        'SEQ_GAP',
        (e) => [e(3), e(4), { ...e(4), seq: 6 }].map((x, i) => (i === 2 ? forge(e(4), { seq: 6 }) : x)),
      ],
    ]
    for (const [name, code, make] of cases) {
      it(`${name} → ${code}`, () => {
        const { b, e } = setup()
        const before = snapshotState(b, 'effects')
        const clockBefore = b.clock.last
        expect(codeOf(() => b.ingest(make(e)))).toBe(code)
        expect(snapshotState(b, 'effects')).toEqual(before)
        expect(b.clock.last).toEqual(clockBefore)
      })
    }

    it('a throwing handler is not bad input: the event is stored, the other handler ran, the failure is owed (inbox.test.ts)', () => {
      const { b, e } = setup()
      b.onIngest('poisoned', () => {
        throw new Error('poison')
      })
      expect(b.ingest([e(3)]).stored).toHaveLength(1)
      expect(b.db.prepare('select count(*) n from effects').get()).toEqual({ n: 3 })
      expect(b.inbox.list().map((x) => [x.handler, x.seq, x.lastError])).toEqual([['poisoned', 3, 'Error: poison']])
    })
  })

  it('with skewPolicy tolerate, stores a skewed event but does not drag the clock forward', () => {
    const a = seeded('a', 1)
    const b = memStore('b', { skewPolicy: 'tolerate' })
    const far = sealEvent({
      ...a.getEvent('a/1', 1)!,
      hlc: encodeHlc({ wall: Date.now() + 3_600_000, counter: 0, node: 'a/1' }),
    })
    const r = b.ingest([far])
    expect(r.stored).toHaveLength(1)
    expect(r.skewed).toBe(1)
    expect(b.skewedEvents).toBe(1)
    expect(b.clock.tick().wall).toBeLessThan(Date.now() + 60_000)
  })
})

describe('the skew check of a remote batch', () => {
  const t = 1_800_000_000_000
  const single = (origin: string, wall: number): DruEvent =>
    sealEvent({
      origin: origin as never,
      seq: 1,
      hlc: encodeHlc({ wall, counter: 0, node: origin }),
      docId: 'd',
      change: bytes(1),
      prev: GENESIS_HASH,
    })

  it('refuses (reject) naming the first skewed event of the batch, not its greatest timestamp', () => {
    const b = memStore('b', { now: () => t, maxClockSkewMs: 1_000 })
    const batch = [single('w/1', t), single('x/1', t + 10_000), single('y/1', t + 60_000)]
    let message = ''
    try {
      b.ingest(batch)
    } catch (err) {
      message = (err as Error).message
    }
    expect(message).toBe('remote timestamp from x/1 is 10000 ms ahead of our clock (limit 1000 ms)')
    expect(b.count()).toBe(0)
  })

  it('counts (tolerate) each skewed event, and none when the greatest is within the bound', () => {
    const b = memStore('b', { now: () => t, skewPolicy: 'tolerate', maxClockSkewMs: 1_000 })
    expect(b.ingest([single('x/1', t + 10_000), single('w/1', t), single('y/1', t + 60_000)]).skewed).toBe(2)
    expect(b.ingest([single('u/1', t + 1_000), single('v/1', t - 5)]).skewed).toBe(0)
  })

  it('refuses an event built as the wire decoder builds them (hash computed here) with a bad field', () => {
    const b = memStore('b')
    const good = single('x/1', Date.now())
    for (const [field, bad] of [
      ['docId', { ...good, docId: 'd\u0007' }],
      ['origin', { ...good, origin: 'x' }],
      ['hlc', { ...good, hlc: `${good.hlc.slice(0, 27)}x\ny` }],
      ['seq', { ...good, seq: 0 }],
    ] as const) {
      let err: unknown
      try {
        b.ingest([hashedEvent(bad as DruEvent)])
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(DruError)
      expect((err as DruError).details).toEqual({ field })
    }
    expect(b.count()).toBe(0)
  })
})

describe('the clock after a remote batch', () => {
  it('lands where a receive of each stored, unskewed event would: newest in the middle of the batch, ties on (wall, counter), a skewed one left out', () => {
    const now = 1_800_000_000_000
    const b = memStore('b', { now: () => now, skewPolicy: 'tolerate', maxClockSkewMs: 1_000 })
    const chain = (origin: string, walls: Array<[number, number]>): DruEvent[] => {
      let prev = GENESIS_HASH
      return walls.map(([wall, counter], i) => {
        const e = sealEvent({
          origin: origin as never,
          seq: i + 1,
          hlc: encodeHlc({ wall, counter, node: origin }),
          docId: 'd',
          change: bytes(i),
          prev,
        })
        prev = e.hash
        return e
      })
    }
    // x's newest is its middle event; y ties it on (wall, counter) with a node that sorts after; z is skewed.
    const x = chain('x/1', [
      [now - 5, 0],
      [now + 500, 3],
      [now - 1, 9],
    ])
    const y = chain('y/1', [
      [now + 500, 3],
      [now + 2, 0],
    ])
    const z = chain('z/1', [[now + 60_000, 0]])
    const batch = [y[1]!, x[0]!, z[0]!, x[1]!, y[0]!, x[2]!]
    const expected = new HlcClock({ node: b.clock.node, now: () => now, maxSkewMs: 1_000, highWater: b.clock.last })
    for (const e of [...x, ...y]) expected.receive(decodeHlc(e.hlc))
    expect(b.ingest(batch)).toMatchObject({ skewed: 1 })
    expect(b.clock.last).toEqual(expected.last)
    expect(b.clock.last).toMatchObject({ wall: now + 500, counter: 3 })
  })

  it('a wall clock stepping back between the skew check and the fold leaves the batch stored, reported and notified', () => {
    const t = 1_800_000_000_000
    let stepped = false
    // Past the check, our wall clock jumps back a minute: the event is now too far ahead to fold in.
    const b = memStore('b', { now: () => (stepped ? t - 60_000 : t), maxClockSkewMs: 1_000 })
    const e = sealEvent({
      origin: 'x/1' as never,
      seq: 1,
      hlc: encodeHlc({ wall: t, counter: 0, node: 'x/1' }),
      docId: 'd',
      change: bytes(1),
      prev: GENESIS_HASH,
    })
    b.addStoringValidator(() => {
      stepped = true
    })
    const notified: string[] = []
    b.onCommit((events) => notified.push(...events.map((x) => `${x.origin}#${x.seq}`)))
    const before = b.clock.last
    // Before: CLOCK_SKEW thrown after the commit, the event stored and nobody told.
    expect(b.ingest([e]).stored).toHaveLength(1)
    expect(b.getEvent('x/1', 1)?.hash).toBe(e.hash)
    expect(notified).toEqual(['x/1#1'])
    // Not folded: a timestamp the clock would refuse now does not drag it forward.
    expect(b.clock.last).toEqual(before)
  })
})

describe('streaming what a peer lacks', () => {
  it('yields exactly the missing events, in bounded batches, origin by origin in seq order', () => {
    const a = seeded('a', 40)
    const b = seeded('b', 25)
    exchange(b, a)
    const batches = [...a.eventsMissing({ 'a/1': 10, 'b/1': 25 }, { maxBatchBytes: 10, pageSize: 7 })]
    const ids = batches.flat().map((e) => `${e.origin}#${e.seq}`)
    expect(ids).toEqual(Array.from({ length: 30 }, (_, i) => `a/1#${i + 11}`))
    for (const batch of batches) {
      const size = batch.reduce((n, e) => n + e.change.byteLength, 0)
      expect(batch.length === 1 || size <= 10).toBe(true)
    }
    expect([...a.eventsMissing(a.vv())]).toEqual([])
  })

  it('lets local writes continue between batches (no open cursor)', () => {
    const a = seeded('a', 30)
    const it = a.eventsMissing({}, { maxBatchBytes: 12, pageSize: 4 })
    const first = it.next()
    expect(first.done).toBe(false)
    a.append('d', bytes(1))
    const rest = [...it].flat()
    expect((first.value as DruEvent[]).length + rest.length).toBe(30)
  })
})

describe('corruption is detected on read', () => {
  /** Flips one bit or byte of a stored value: text, blob or integer. */
  function flip(v: Buffer | string | number | null, pos: number): Buffer | string | number {
    if (v === null) return 'elsewhere/9'
    if (typeof v === 'number') return v ^ (1 << (pos % 20))
    if (Buffer.isBuffer(v)) {
      const out = Buffer.from(v)
      out[pos % out.length] = out[pos % out.length]! ^ 0x10
      return out
    }
    const i = pos % v.length
    return v.slice(0, i) + String.fromCharCode(v.charCodeAt(i) ^ 0x10) + v.slice(i + 1)
  }

  function expectCorruptionOf(s: EventStore, seq: number): void {
    let err: unknown
    try {
      s.getEvent('a/1', seq)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(DruError)
    expect((err as DruError).code).toBe('CORRUPTION')
    expect((err as DruError).details).toMatchObject({ origin: 'a/1', seq })
    expect((err as DruError).message).toContain(`a/1#${seq}`)
    expect(codeOf(() => [...s.eventsMissing({})])).toBe('CORRUPTION')
    expect(codeOf(() => s.verifyLog())).toBe('CORRUPTION')
  }

  it('a flipped byte or bit in any stored part of a one-event run is reported with the event id (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.constantFrom('body', 'hashes', 'prev'),
        fc.nat(),
        (seq, column, pos) => {
          const s = seeded('a', 5)
          const run = runHolding(s.db, 'a/1', seq)
          setRun(s.db, run.lsn, { [column]: flip(run[column as 'body' | 'hashes' | 'prev'], pos) })
          expectCorruptionOf(s, seq)
          s.close()
        },
      ),
      { numRuns: 100, seed: 31 },
    )
  })

  it('a flipped byte anywhere in a run of several events: each of its events reads as it was or CORRUPTION, never another (property)', () => {
    const source = seeded('a', 12)
    const events = [...source.eventsMissing({})].flat()
    source.close()
    fc.assert(
      fc.property(fc.constantFrom('body', 'hashes', 'prev'), fc.nat(), (column, pos) => {
        const s = memStore('b')
        s.ingest(events)
        const run = runHolding(s.db, 'a/1', 1)
        expect(run.n).toBe(12)
        setRun(s.db, run.lsn, { [column]: flip(run[column as 'body' | 'hashes' | 'prev'], pos) })
        let corrupt = 0
        for (const e of events) {
          let read: DruEvent | undefined
          try {
            read = s.getEvent('a/1', e.seq)
          } catch (err) {
            expect((err as DruError).code).toBe('CORRUPTION')
            expect((err as DruError).message).toContain('a/1#')
            corrupt++
            continue
          }
          expect(read).toEqual(e)
        }
        expect(corrupt).toBeGreaterThan(0)
        expect(codeOf(() => [...s.eventsMissing({})])).toBe('CORRUPTION')
        expect(codeOf(() => s.verifyLog())).toBe('CORRUPTION')
        s.close()
      }),
      { numRuns: 150, seed: 33 },
    )
  })

  it('a run body replaced by a value of another type is reported like a changed byte', () => {
    for (const value of ['text', 42, 1.5, Buffer.alloc(0), 'x'.repeat(300)]) {
      const s = seeded('a', 5)
      setRun(s.db, runHolding(s.db, 'a/1', 3).lsn, { body: value })
      expectCorruptionOf(s, 3)
      s.close()
    }
  })

  it("a flipped byte in a document's dictionary entry is reported on each of its events", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.nat(), (seq, pos) => {
        const s = seeded('a', 5)
        const docId = `d${(seq - 1) % 3}`
        s.db.prepare('update doc_ids set doc_id = ? where doc_id = ?').run(flip(docId, pos), docId)
        expectCorruptionOf(s, seq)
        s.close()
      }),
      { numRuns: 30, seed: 32 },
    )
  })

  it("a flipped byte in an origin's dictionary entry leaves its events missing: CORRUPTION on every walk", () => {
    const s = seeded('a', 5)
    s.db.prepare("update origin_ids set origin = 'a/2' where origin = 'a/1'").run()
    expect(s.getEvent('a/1', 3)).toBeUndefined()
    expect(codeOf(() => [...s.eventsMissing({})])).toBe('CORRUPTION')
    expect(codeOf(() => s.verifyLog())).toBe('CORRUPTION')
    s.close()
  })

  it('a byte flipped inside the database file (invisible to integrity_check) is caught', () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const path = join(dir, 'a.db')
    const s = EventStore.open({ path, druId: 'a', random: sequentialIncarnations() })
    const marker = Buffer.from('PAYLOAD-MARKER-0123456789')
    s.append('doc', marker)
    s.close()
    const file = readFileSync(path)
    const at = file.indexOf(marker)
    expect(at).toBeGreaterThan(0)
    file[at + 8] = file[at + 8]! ^ 0x01
    writeFileSync(path, file)
    const reopened = EventStore.open({ path, druId: 'a', random: sequentialIncarnations() })
    cleanups.push(() => reopened.close())
    expect(reopened.db.pragma('integrity_check', { simple: true })).toBe('ok')
    expect(reopened.origin).toBe('a/2')
    expect(codeOf(() => reopened.getEvent('a/1', 1))).toBe('CORRUPTION')
    expect(codeOf(() => reopened.verifyLog())).toBe('CORRUPTION')
  })
})

describe('persistence and identity', () => {
  it('reopens with the same vector, chain heads and a clock that never goes back', () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const path = join(dir, 'a.db')
    let wall = 2_000_000_000_000
    const s = EventStore.open({ path, druId: 'a', now: () => wall, random: sequentialIncarnations() })
    for (let i = 0; i < 3; i++) s.append('d', bytes(i))
    const fp = s.fingerprint()
    const lastHlc = s.getEvent('a/1', 3)!.hlc
    s.close()
    wall -= 3_600_000 // the wall clock stepped back an hour across the restart
    const r = EventStore.open({ path, druId: 'a', now: () => wall, random: sequentialIncarnations() })
    cleanups.push(() => r.close())
    expect(r.fingerprint()).toEqual(fp)
    // Every open writes under a fresh incarnation: its seqs start at 1 again.
    const next = r.append('d', bytes(9))
    expect(next).toMatchObject({ origin: 'a/2', seq: 1, prev: GENESIS_HASH })
    expect(next.hlc > lastHlc).toBe(true)
    expect(r.verifyLog().events).toBe(4)
  })

  it('refuses to open a database that belongs to another DRU', () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const path = join(dir, 'a.db')
    EventStore.open({ path, druId: 'a', random: sequentialIncarnations() }).close()
    expect(codeOf(() => EventStore.open({ path, druId: 'b' }))).toBe('CONFIG_INVALID')
  })

  it('rejects bad options naming the field', () => {
    expect(() => EventStore.open({ path: ':memory:', druId: 'bad id!' })).toThrow(/druId/)
    expect(() => EventStore.open({ path: '', druId: 'a' })).toThrow(/path/)
    expect(() => EventStore.open({ path: ':memory:', druId: 'a', durability: 'disk' as never })).toThrow(/durability/)
    expect(() => EventStore.open({ path: ':memory:', druId: 'a', cacheKiB: 8 })).toThrow(/cacheKiB/)
    expect(() => EventStore.open({ path: ':memory:', druId: 'a', cacheKiB: 1500.5 })).toThrow(/cacheKiB/)
  })

  it('bounds the SQLite page cache by its own configuration and maps no file pages', () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const d = EventStore.open({ path: join(dir, 'd.db'), druId: 'a' })
    const c = EventStore.open({ path: join(dir, 'c.db'), druId: 'a', cacheKiB: 2048 })
    expect(d.db.pragma('cache_size', { simple: true })).toBe(-DEFAULT_CACHE_KIB)
    expect(c.db.pragma('cache_size', { simple: true })).toBe(-2048)
    expect(d.db.pragma('mmap_size', { simple: true }) ?? 0).toBe(0)
    d.close()
    c.close()
  })

  it('applies durability as SQLite synchronous settings', () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const m = EventStore.open({ path: join(dir, 'm.db'), druId: 'a' })
    const p = EventStore.open({ path: join(dir, 'p.db'), druId: 'a', durability: 'process' })
    expect(m.db.pragma('synchronous', { simple: true })).toBe(2) // FULL
    expect(p.db.pragma('synchronous', { simple: true })).toBe(1) // NORMAL
    expect(m.db.pragma('journal_mode', { simple: true })).toBe('wal')
    m.close()
    p.close()
  })

  it('a second opener of the same file fails fast with DB_LOCKED while the first keeps working', () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const path = join(dir, 'a.db')
    const first = EventStore.open({ path, druId: 'a', random: sequentialIncarnations() })
    cleanups.push(() => first.close())
    const t0 = Date.now()
    expect(codeOf(() => EventStore.open({ path, druId: 'a', random: sequentialIncarnations() }))).toBe('DB_LOCKED')
    expect(Date.now() - t0).toBeLessThan(1_000)
    expect(first.append('d', bytes(1)).seq).toBe(1)
  })

  it('two processes opening copies of one file never write the same origin', () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const path = join(dir, 'a.db')
    const s = EventStore.open({ path, druId: 'a' })
    s.append('d', bytes(1))
    s.close()
    const copy = join(dir, 'copy.db')
    writeFileSync(copy, readFileSync(path))
    // The original and its copy (with the same clean-close marker) open side by side.
    const x = EventStore.open({ path, druId: 'a' })
    const y = EventStore.open({ path: copy, druId: 'a' })
    cleanups.push(
      () => x.close(),
      () => y.close(),
    )
    expect(x.openedClean && y.openedClean).toBe(true)
    expect(new Set([s.origin, x.origin, y.origin]).size).toBe(3)
    expect(x.previousOrigin).toBe(s.origin)
    expect(y.previousOrigin).toBe(s.origin)
    const ex = x.append('d', bytes(2))
    const ey = y.append('d', bytes(3))
    expect(ex.origin).not.toBe(ey.origin)
    // Both continue the same history and merge without a fork.
    exchange(x, y)
    exchange(y, x)
    expect(x.fingerprint()).toEqual(y.fingerprint())
  })

  it('records peer acknowledgements by max, so a replayed older ack never regresses them', () => {
    const s = memStore('a')
    s.recordPeerAck('b', { 'a/1': 5, 'b/1': 2 })
    s.recordPeerAck('b', { 'a/1': 3, 'c/1': 1 })
    expect(s.peer('b')!.ackedVv).toEqual({ 'a/1': 5, 'b/1': 2, 'c/1': 1 })
    s.recordPeer('b', { url: 'ws://127.0.0.1:1', state: 'connected', lastSeen: 5 })
    expect(s.peers()).toEqual([
      {
        peerId: 'b',
        url: 'ws://127.0.0.1:1',
        ackedVv: { 'a/1': 5, 'b/1': 2, 'c/1': 1 },
        lastSeen: 5,
        state: 'connected',
      },
    ])
  })

  it("keeps other packages' schema steps on their own track", () => {
    const s = memStore('a')
    s.migrate('extra', [(db) => db.exec('create table extra_t (x)')])
    s.migrate('extra', [(db) => db.exec('create table extra_t (x)')]) // already applied: no-op
    expect(s.getMeta('schema_version:extra')).toBe(1)
    expect(codeOf(() => s.migrate('extra', []))).toBe('SCHEMA_TOO_NEW')
  })

  it('throws CLOSED after close', () => {
    const s = seeded('a', 1)
    s.close()
    expect(codeOf(() => s.append('d', bytes(1)))).toBe('CLOSED')
    expect(codeOf(() => s.ingest([]))).toBe('CLOSED')
  })
})

describe('convergence of logs under random exchange (strong convergence of the event set)', () => {
  it('any exchange order between three stores ends with equal fingerprints', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 3 })),
          { maxLength: 30 },
        ),
        (steps) => {
          const stores = ['a', 'b', 'c'].map((id) => memStore(id))
          for (const [from, to, writes] of steps) {
            for (let i = 0; i < writes; i++) stores[from]!.append(`d${i}`, bytes(from, i))
            if (from !== to) exchange(stores[from]!, stores[to]!, 8)
          }
          for (const x of stores) for (const y of stores) if (x !== y) exchange(x, y)
          const fps = stores.map((s) => JSON.stringify(s.fingerprint()))
          expect(new Set(fps).size).toBe(1)
          stores.forEach((s) => s.close())
        },
      ),
      { numRuns: Number(process.env.DRU_PROPERTY_RUNS ?? 100), seed: 41 },
    )
  })
})

describe('clean-close marker (reported, no longer decisive)', () => {
  it('is true only after a clean close of the same log, and never for a copy of a running file', () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const path = join(dir, 'a.db')
    const first = EventStore.open({ path, druId: 'a' })
    expect(first.isNew).toBe(true)
    expect(first.openedClean).toBe(false)
    first.append('d', bytes(1))
    first.close()
    const second = EventStore.open({ path, druId: 'a' })
    expect(second.isNew).toBe(false)
    expect(second.openedClean).toBe(true)
    // While it runs, the marker is gone from the file: a live copy (backup) has none.
    expect(second.getMeta('clean_close')).toBeUndefined()
    second.append('d', bytes(2))
    second.db.pragma('wal_checkpoint(TRUNCATE)')
    const copy = join(dir, 'copy.db')
    writeFileSync(copy, readFileSync(path))
    second.close()
    const fromCopy = EventStore.open({ path: copy, druId: 'a' })
    expect(fromCopy.openedClean).toBe(false)
    fromCopy.close()
  })
})

describe('fresh incarnations', () => {
  it('are uniform 53-bit draws, never one the log already used', () => {
    fc.assert(
      fc.property(fc.nat({ max: 2 ** 32 - 1 }), fc.nat({ max: 2 ** 32 - 1 }), (high, low) => {
        const draws = [high, low, 0, 1]
        const n = newIncarnation(() => draws.shift()!)
        const drawn = (high % 2 ** 21) * 2 ** 32 + low
        expect(n).toBe(drawn >= 1 ? drawn : 1) // zero is not an incarnation: drawn again
        expect(n).toBeLessThanOrEqual(Number.MAX_SAFE_INTEGER)
      }),
      { numRuns: Number(process.env.DRU_PROPERTY_RUNS ?? 200), seed: 7 },
    )
    // A store never reuses an incarnation its log names, even when the source repeats itself.
    const repeats = (() => {
      const seq = [0, 1, 0, 1, 0, 1, 0, 2]
      return () => seq.shift() ?? 3
    })()
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const path = join(dir, 'a.db')
    const s = EventStore.open({ path, druId: 'a', random: repeats })
    expect(s.origin).toBe('a/1')
    s.append('d', bytes(1))
    s.close()
    const t = EventStore.open({ path, druId: 'a', random: repeats })
    cleanups.push(() => t.close())
    expect(t.origin).toBe('a/2')
  })
})
