import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { DruError, GENESIS_HASH, encodeHlc, sealEvent, type DruEvent, type Origin } from '@dru/core'
import { MAX_RUN_BODY_BYTES, MAX_RUN_EVENTS } from '../src/run-body.js'
import type { EventStore } from '../src/index.js'
import { memStore, snapshotState } from './helpers.js'

const runs = Number(process.env.DRU_PROPERTY_RUNS ?? 100)

/** Events a run holds at most: the writer starts a new row past it. */
const ROWS_PER_INSERT = MAX_RUN_EVENTS

/** Batch sizes at every boundary of a run (0, 1, run − 1, run, run + 1, …). */
const BOUNDARY_SIZES = [0, 1, 2, ROWS_PER_INSERT - 1, ROWS_PER_INSERT, ROWS_PER_INSERT + 1, 2 * ROWS_PER_INSERT + 3]

/** A remote origin's chain of `n` events, each with its own document and bytes (so a swap is visible). */
function chain(n: number, origin = 'r/1', from = 1, prev = GENESIS_HASH, tag = 42): DruEvent[] {
  const out: DruEvent[] = []
  for (let seq = from; seq < from + n; seq++) {
    const e = sealEvent({
      origin: origin as Origin,
      seq,
      hlc: encodeHlc({ wall: 1_700_000_000_000 + seq, counter: 0, node: origin }),
      docId: `doc-${seq % 7}`,
      change: new Uint8Array([seq & 0xff, (seq >> 8) & 0xff, tag]),
      prev,
    })
    prev = e.hash
    out.push(e)
  }
  return out
}

/** Everything stored, in local position order, as (origin, seq, hash, change) tuples, checked by the store's own walk. */
function storedInOrder(store: EventStore): Array<[string, number, string, number[]]> {
  store.verifyLog()
  const rows = store.db.prepare('select origin, seq from events order by lsn').all() as Array<{
    origin: string
    seq: number
  }>
  const out: Array<[string, number, string, number[]]> = []
  for (const at of rows) {
    const e = store.getEvent(at.origin, at.seq)!
    out.push([e.origin, e.seq, e.hash, [...e.change]])
  }
  return out
}

const expected = (events: DruEvent[]) => events.map((e) => [e.origin, e.seq, e.hash, [...e.change]])

let open: EventStore[] = []
const store = (name = 'a') => {
  const s = memStore(name)
  open.push(s)
  return s
}
afterEach(() => {
  for (const s of open) s.close()
  open = []
})

describe('a commit’s events written as runs (log-writer)', () => {
  it.each(BOUNDARY_SIZES)('ingest of %i events stores each once, in order, at consecutive positions', (n) => {
    const s = store()
    const events = chain(n)
    expect(s.ingest(events).stored).toHaveLength(n)
    expect(storedInOrder(s)).toEqual(expected(events))
    expect(s.count()).toBe(n)
    expect(s.lastLsn()).toBe(n)
    expect(s.vv()).toEqual(n > 0 ? { 'r/1': n } : {})
  })

  it.each(BOUNDARY_SIZES)('transact appending %i events stores each once, in order', (n) => {
    const s = store()
    const { events } = s.transact((tx) => {
      for (let i = 0; i < n; i++) tx.append(`doc-${i % 5}`, new Uint8Array([i & 0xff, i >> 8]))
    })
    expect(storedInOrder(s)).toEqual(expected(events))
    expect(s.count()).toBe(n)
  })

  it('any split of several origins into batches, with repeats, stores every event once (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 3 * ROWS_PER_INSERT }), { minLength: 1, maxLength: 3 }),
        fc.array(fc.integer({ min: 1, max: 2 * ROWS_PER_INSERT + 1 }), { minLength: 1, maxLength: 6 }),
        fc.boolean(),
        (lengths, batchSizes, withRepeats) => {
          const s = memStore('a')
          try {
            const all = lengths.flatMap((n, i) => chain(n, `r/${i + 1}`))
            // Interleave origins (ingest sorts them), cut into batches of the drawn sizes, maybe repeating some.
            const shuffled = [...all].sort((x, y) => x.seq - y.seq || (x.origin < y.origin ? -1 : 1))
            let at = 0
            for (let b = 0; at < shuffled.length; b++) {
              const size = batchSizes[b % batchSizes.length]!
              const batch = shuffled.slice(at, at + size)
              if (withRepeats && at > 0) batch.push(shuffled[at - 1]!, batch[0]!)
              s.ingest(batch)
              at += size
            }
            expect(s.count()).toBe(all.length)
            const held = storedInOrder(s)
            expect(new Set(held.map(([o, q]) => `${o}#${q}`)).size).toBe(all.length)
            for (const e of all) expect(s.getEvent(e.origin, e.seq)?.hash).toBe(e.hash)
            // Positions follow ingest's order: per origin, seq order.
            for (const origin of new Set(all.map((e) => e.origin))) {
              const seqs = held.filter(([o]) => o === origin).map(([, q]) => q)
              expect(seqs).toEqual([...seqs].sort((x, y) => x - y))
            }
          } finally {
            s.close()
          }
        },
      ),
      { numRuns: runs },
    )
  })

  it.each([ROWS_PER_INSERT + 1, 2 * ROWS_PER_INSERT, 2 * ROWS_PER_INSERT + 3])(
    'a batch of %i whose last row fails in SQLite stores nothing, and the same batch then stores whole',
    (n) => {
      const s = store()
      s.ingest(chain(3, 'q/1'))
      const before = snapshotState(s)
      const events = chain(n)
      // The last row of the batch is refused by SQLite itself, inside its chunk's statement.
      s.db.exec(
        `create trigger refuse_last before insert on runs when new.seq <= ${n} and new.seq + new.n > ${n} begin select raise(abort, 'refused'); end`,
      )
      expect(() => s.ingest(events)).toThrow(/refused/)
      expect(snapshotState(s)).toEqual(before)
      expect(s.eventsForDoc('doc-5').next().done).toBe(true)
      s.db.exec('drop trigger refuse_last')
      expect(s.ingest(events).stored).toHaveLength(n)
      expect(storedInOrder(s).slice(3)).toEqual(expected(events))
      expect(s.lastLsn()).toBe(3 + n)
    },
  )

  it('a local commit whose last row fails stores nothing and consumes no seq', () => {
    const s = store()
    const n = ROWS_PER_INSERT + 2
    s.db.exec(
      `create trigger refuse_last before insert on runs when new.seq <= ${n} and new.seq + new.n > ${n} begin select raise(abort, 'refused'); end`,
    )
    const append = () =>
      s.transact((tx) => {
        for (let i = 0; i < n; i++) tx.append('doc', new Uint8Array([i]))
      })
    expect(append).toThrow(/refused/)
    expect(s.count()).toBe(0)
    expect(s.vv()).toEqual({})
    s.db.exec('drop trigger refuse_last')
    expect(append().events.map((e) => e.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1))
    expect(s.count()).toBe(n)
  })

  it('an inbox handler finds its own event stored when it runs, at every position of a batch', () => {
    const s = store()
    const seen: Array<[number, boolean, boolean]> = []
    s.onIngest('reader', (e) => {
      seen.push([e.seq, s.getEvent(e.origin, e.seq)?.hash === e.hash, s.getEvent(e.origin, e.seq + 1) === undefined])
    })
    const n = ROWS_PER_INSERT + 1
    s.ingest(chain(n))
    expect(seen).toEqual(Array.from({ length: n }, (_, i) => [i + 1, true, true]))
  })

  it('a storing validator sees every new row of the batch in the log', () => {
    const s = store()
    const seen: Array<[number, number]> = []
    s.addStoringValidator((stored, { db }) => {
      seen.push([stored.length, db.prepare('select count(*) from events').pluck().get() as number])
    })
    s.ingest(chain(ROWS_PER_INSERT + 5))
    expect(seen).toEqual([[ROWS_PER_INSERT + 5, ROWS_PER_INSERT + 5]])
  })

  it('a handler reading the log mid-batch (earlier events, its document, the row count) sees exactly what is stored before it, repeats interleaved', () => {
    const s = store()
    const all = [...chain(40, 'r/1'), ...chain(40, 'q/1')]
    const held = new Set(all.slice(0, 10))
    s.ingest([...held])
    const problems: string[] = []
    s.onIngest('reader', (e) => {
      // Ingest stores in (origin, seq) order: everything up to this event is in the log, nothing after it.
      held.add(all.find((x) => x.origin === e.origin && x.seq === e.seq)!)
      for (let q = 1; q <= e.seq; q++)
        if (!s.getEvent(e.origin, q)) problems.push(`${e.origin}#${q} missing at ${e.seq}`)
      const ofDoc = [...held].filter((x) => x.docId === e.docId).length
      const read = [...s.eventsForDoc(e.docId)].length
      if (read !== ofDoc) problems.push(`${e.docId} at ${e.origin}#${e.seq}: ${read} events, ${ofDoc} stored`)
      const rows = s.db.prepare('select count(*) from events').pluck().get() as number
      if (rows !== held.size) problems.push(`${rows} rows at ${e.origin}#${e.seq}, ${held.size} stored`)
    })
    const batch = [...all.slice(5), ...all.slice(0, 12)].reverse()
    const r = s.ingest(batch)
    expect(problems).toEqual([])
    expect([r.stored.length, r.duplicates]).toEqual([70, 17])
    s.verifyLog()
  })

  it.each([1, 2, ROWS_PER_INSERT - 1, ROWS_PER_INSERT, ROWS_PER_INSERT + 1, 2 * ROWS_PER_INSERT + 5])(
    'a fork or a broken link after %i new rows of a batch is the typed error and stores nothing',
    (n) => {
      const s = store()
      const good = chain(n + 4)
      s.ingest(good.slice(0, 2))
      const before = snapshotState(s)
      const run = good.slice(2, n + 2)
      // The position of one of the batch's own queued rows, other content (ingest sorts it next to its twin).
      const fork = chain(1, 'r/1', n + 1, good[n - 1]!.hash, 7)[0]!
      expect(() => s.ingest([...run, fork])).toThrow(expect.objectContaining({ code: 'FORK' }))
      expect(snapshotState(s)).toEqual(before)
      const broken = chain(1, 'r/1', n + 3, 'f'.repeat(64))[0]!
      let err: unknown
      try {
        s.ingest([...run, broken])
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(DruError)
      expect(err).toMatchObject({ code: 'CHAIN_BROKEN', details: { origin: 'r/1', seq: n + 3 } })
      expect(snapshotState(s)).toEqual(before)
      expect(s.ingest(good).stored).toHaveLength(n + 2)
      s.verifyLog()
    },
  )

  it('a storing validator refusing a batch of several chunks leaves nothing, and the batch then stores whole', () => {
    const s = store()
    let refuse = true
    s.addStoringValidator((stored, { db }) => {
      expect(db.prepare('select count(*) from events').pluck().get()).toBe(stored.length)
      if (refuse) throw new DruError('INVALID_EVENT', 'refused by the application')
    })
    const events = chain(3 * ROWS_PER_INSERT + 7)
    expect(() => s.ingest(events)).toThrow(/refused by the application/)
    expect([s.count(), s.lastLsn(), [...s.eventsForDoc('doc-1')].length]).toEqual([0, 0, 0])
    refuse = false
    expect(s.ingest(events).stored).toHaveLength(events.length)
    expect(storedInOrder(s)).toEqual(expected(events))
    expect([...s.eventsForDoc('doc-1')]).toHaveLength(events.filter((e) => e.docId === 'doc-1').length)
  })

  it("a run of MAX_RUN_BODY_BYTES with every other value at its widest stays in its page (SQLite's rule, checked)", () => {
    const s = store()
    const create = s.db.prepare("select sql from sqlite_schema where name = 'runs'").pluck().get() as string
    s.db.exec(create.replace(/create table "?runs"?/i, 'create table widest_run'))
    const hashes = 32 * MAX_RUN_EVENTS
    s.db
      .prepare(
        'insert into widest_run (lsn, origin_id, seq, n, prev, body, hashes, received_at) values (?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        Number.MAX_SAFE_INTEGER,
        Number.MAX_SAFE_INTEGER,
        Number.MAX_SAFE_INTEGER,
        MAX_RUN_EVENTS,
        Buffer.alloc(32, 1),
        Buffer.alloc(MAX_RUN_BODY_BYTES - hashes, 2),
        Buffer.alloc(hashes, 3),
        Date.now() + 0.5,
      )
    const pages = s.db
      .prepare("select pagetype, count(*) from dbstat where name = 'widest_run' group by pagetype")
      .raw()
      .all()
    expect(pages).toEqual([['leaf', 1]])
  })

  it('runs fill their page and never spill to an overflow page, whatever the changes, nodes, origins and seqs (property)', () => {
    // The longest origin and node texts there are, HLCs at their widest, changes of every size up to 1,200 bytes.
    const origin = `${'o'.repeat(64)}/9007199254740991` as Origin
    const other = `${'n'.repeat(64)}/9007199254740990`
    fc.assert(
      fc.property(
        fc.array(fc.record({ bytes: fc.integer({ min: 0, max: 1200 }), foreignNode: fc.boolean() }), {
          minLength: 1,
          maxLength: 120,
        }),
        (shapes) => {
          const s = memStore('receiver')
          try {
            let prev = GENESIS_HASH
            const events = shapes.map((shape, i) => {
              const e = sealEvent({
                origin,
                seq: i + 1,
                hlc: encodeHlc({
                  wall: 1_700_000_000_000 + i,
                  counter: 999_999,
                  node: shape.foreignNode ? other : origin,
                }),
                docId: `doc-${i}`,
                change: new Uint8Array(shape.bytes).fill(i & 0xff),
                prev,
              })
              prev = e.hash
              return e
            })
            expect(s.db.pragma('page_size', { simple: true })).toBe(4096)
            expect(s.ingest(events).stored).toHaveLength(events.length)
            const overflow = s.db
              .prepare("select count(*) from dbstat where name = 'runs' and pagetype = 'overflow'")
              .pluck()
              .get()
            expect(overflow).toBe(0)
            // Greedy: each run but the last stopped because the next event would not fit, or it was full.
            const rows = s.db
              .prepare('select n, length(body) + length(hashes) from runs order by lsn')
              .raw()
              .all() as Array<[number, number]>
            let at = 0
            for (const [n, bytes] of rows.slice(0, -1)) {
              at += n
              const next = shapes[at]!
              const nextAtMost = next.bytes + 61 + (next.foreignNode ? 5 + other.length * 3 : 0)
              expect(n === MAX_RUN_EVENTS || bytes + nextAtMost > MAX_RUN_BODY_BYTES).toBe(true)
            }
            for (const e of events) expect(s.getEvent(e.origin, e.seq)?.hash).toBe(e.hash)
          } finally {
            s.close()
          }
        },
      ),
      { numRuns: Math.max(20, runs / 2) },
    )
  })

  it('a batch is stored as runs within their bounds: consecutive events of one origin share a row, a big change starts its own', () => {
    const s = store()
    const events = [...chain(3 * ROWS_PER_INSERT + 5, 'r/1'), ...chain(4, 'q/1')]
    // A change larger than a run's body bytes: a run of its own.
    const big = sealEvent({
      origin: 'r/1' as Origin,
      seq: 3 * ROWS_PER_INSERT + 6,
      hlc: encodeHlc({ wall: 1_700_000_000_999, counter: 0, node: 'r/1' }),
      docId: 'doc-big',
      change: new Uint8Array(MAX_RUN_BODY_BYTES + 10).fill(7),
      prev: events[3 * ROWS_PER_INSERT + 4]!.hash,
    })
    s.ingest([...events, big])
    const rows = s.db
      .prepare(
        'select o.origin, r.seq, r.n, length(r.body) + length(r.hashes) as bytes from runs r join origin_ids o on o.id = r.origin_id order by r.lsn',
      )
      .all() as Array<{ origin: string; seq: number; n: number; bytes: number }>
    expect(rows.map((r) => [r.origin, r.seq, r.n])).toEqual([
      ['q/1', 1, 4],
      ['r/1', 1, ROWS_PER_INSERT],
      ['r/1', ROWS_PER_INSERT + 1, ROWS_PER_INSERT],
      ['r/1', 2 * ROWS_PER_INSERT + 1, ROWS_PER_INSERT],
      ['r/1', 3 * ROWS_PER_INSERT + 1, 5],
      ['r/1', 3 * ROWS_PER_INSERT + 6, 1],
    ])
    for (const r of rows.slice(0, -1)) expect(r.bytes).toBeLessThanOrEqual(MAX_RUN_BODY_BYTES)
    expect(storedInOrder(s)).toEqual(expected([...events.slice(-4), ...events.slice(0, -4), big]))
  })
})
