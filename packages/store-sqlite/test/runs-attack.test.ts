import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { DruError, sealEvent, type DruEvent } from '@dru/core'
import { EventStore, signOwnHistory, unsignedOrigins } from '../src/index.js'
import {
  bytes,
  codeOf,
  memStore,
  rewriteRun,
  runHolding,
  sequentialIncarnations,
  setRun,
  snapshotState,
  storedPositions,
  tempDir,
  toSchema5,
} from './helpers.js'

/**
 * Attacks on the log in runs (schema 6): rows of `runs` edited by hand, compaction cutting runs
 * in steps with reads between them, reads from inside a storing transaction (the writer keeps a
 * run open until it flushes), rollbacks of partly written runs, signatures of events inside
 * runs, and the 5 → 6 migration of damaged rows. The guarantee under attack: every read
 * re-hashes and either returns exactly the stored event or throws CORRUPTION; bad input is a
 * typed error that changes nothing. Tests marked "found by an attacker helper" failed before their fix.
 */

const cleanups: Array<() => void> = []
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!()
})

const NOW = 1_700_000_000_000

/** Events of `druId`'s first origin, committed in transactions of the given sizes (a run per commit). */
function remoteChain(druId: string, commits: number[], docs = ['x', 'y']): DruEvent[] {
  const a = memStore(druId, { now: () => NOW })
  let i = 0
  for (const size of commits)
    a.transact((tx) => {
      for (let k = 0; k < size; k++, i++) tx.append(docs[i % docs.length]!, bytes(i, size))
    })
  const events = [...a.eventsMissing({})].flat()
  a.close()
  return events
}

/** A closed file filled by `fill`, reopened (fresh incarnation) by `reopen`, edited with plain SQL by `edit`. */
function file(fill: (s: EventStore) => void) {
  const { dir, cleanup } = tempDir('dru-runs-attack-')
  cleanups.push(cleanup)
  const path = join(dir, 's.db')
  const s = EventStore.open({
    path,
    druId: 's',
    durability: 'process',
    random: sequentialIncarnations(),
    now: () => NOW,
  })
  fill(s)
  s.close()
  let next = 5
  return {
    path,
    reopen: () => {
      const t = EventStore.open({
        path,
        druId: 's',
        durability: 'process',
        random: sequentialIncarnations(next++),
        now: () => NOW,
      })
      cleanups.push(() => t.close())
      return t
    },
    edit: (change: (db: Database.Database) => void) => {
      const db = new Database(path)
      try {
        change(db)
      } finally {
        db.close()
      }
    },
  }
}

/** The value `fn` returns, or the code of the DruError it throws (anything else is rethrown). */
function outcome<T>(fn: () => T): T | { code: string } {
  try {
    return fn()
  } catch (err) {
    if (err instanceof DruError) return { code: err.code }
    throw err
  }
}

/** One commit of documents x, y, x: a run whose middle event is of another document. */
const xyx = (s: EventStore): void => {
  s.transact((tx) => {
    tx.append('x', bytes(1))
    tx.append('y', bytes(2))
    tx.append('x', bytes(3))
  })
}

/** Another event at the seq of `chain`'s second (document w): a FORK once that one is stored. */
const forkOfSecond = (chain: DruEvent[]): DruEvent =>
  sealEvent({
    origin: chain[1]!.origin,
    seq: 2,
    hlc: chain[1]!.hlc,
    docId: 'w',
    change: bytes(99),
    prev: chain[0]!.hash,
  })

/** A read by document `doc`: only that document's events, or CORRUPTION. */
function expectOnly(doc: string, read: string[] | { code: string }): void {
  if (Array.isArray(read)) expect(read.every((d) => d === doc)).toBe(true)
  else expect(read).toEqual({ code: 'CORRUPTION' })
}

/** An event with its bytes as plain arrays: a Buffer and a Uint8Array of the same bytes compare equal. */
const norm = (e: DruEvent | undefined | { code: string }) =>
  e === undefined || 'code' in e
    ? e
    : { ...e, change: [...e.change], ...(e.sig === undefined ? {} : { sig: [...e.sig] }) }

const strip = (e: DruEvent & { lsn?: number }): DruEvent => {
  const { lsn: _lsn, ...rest } = e
  return rest
}

describe('found by the attacker, fixed', () => {
  it('a storing validator that reads a new document’s event and refuses the batch: the next document reusing its id reads back', () => {
    // Found by an attacker helper, fixed: StoredEvents caches doc_ids id → text (DictionaryNames) and nothing ever calls
    // forgetNames(). A read inside a storing transaction (here a storing validator; an inbox
    // handler does the same) caches the id the transaction gave its new document 'x'; the batch
    // is refused, the row of doc_ids rolls back and SQLite gives the same id to the next new
    // document 'y'. From then on every read of 'y's events rebuilds them with docId 'x': a
    // valid event is reported CORRUPTION (getEvent, eventsForDoc, eventsMissing, verifyLog,
    // compaction refuses to run), and docsChangedAfter — which does not re-hash — names
    // document 'x' for a change of 'y', so derived state is rebuilt for the wrong document.
    // Schema 5 joined doc_ids in SQL and had no cache. Expected: the cache forgets what a
    // rolled-back transaction named (or is not filled inside a writing transaction).
    const s = memStore('s', { now: () => NOW })
    cleanups.push(() => s.close())
    const remote = remoteChain('a', [2], ['x'])
    const off = s.addStoringValidator((events) => {
      for (const e of events) expect(s.getEvent(e.origin, e.seq)).toEqual(e)
      throw new DruError('INVALID_EVENT', 'refused by the application')
    })
    expect(codeOf(() => s.ingest(remote))).toBe('INVALID_EVENT')
    off()
    const e = s.append('y', bytes(7))
    expect(norm(outcome(() => s.getEvent(e.origin, e.seq)))).toEqual(norm(e))
    expect(s.docsChangedAfter(0, s.lastLsn(), 10)).toEqual([{ lsn: s.lastLsn(), docId: 'y' }])
    expect(outcome(() => s.verifyLog())).toEqual({ events: 1, origins: 1 })
  })

  it('the same stale name through an inbox handler whose batch is refused later (FORK of another origin)', () => {
    // Found by an attacker helper, fixed: as above, with no storing validator: an inbox handler reads its event (the
    // writer flushed it for the handler), then a later event of the batch is a FORK and the
    // whole batch rolls back. The next new document takes the rolled-back id and its events
    // read as CORRUPTION.
    const s = memStore('s', { now: () => NOW })
    cleanups.push(() => s.close())
    const b = remoteChain('b', [2], ['w'])
    s.ingest(b)
    const forked = forkOfSecond(b)
    s.onIngest('reader', (e) => {
      expect(s.getEvent(e.origin, e.seq)).toEqual(e)
    })
    expect(codeOf(() => s.ingest([...remoteChain('a', [1], ['x']), forked]))).toBe('FORK')
    const e = s.append('y', bytes(7))
    expect(norm(outcome(() => s.getEvent(e.origin, e.seq)))).toEqual(norm(e))
  })

  it('a run deleted by hand: eventsForDoc reads the same events in pages as unpaged', () => {
    // Found by an attacker helper, fixed: eventsForDoc joins each doc_events row to "the run at or before its position"
    // and drops rows whose run does not reach it, then ends at the first page shorter than
    // pageSize. One run gone from the merged index makes the page short, and every later event
    // of the document is silently left out (the default pageSize of 512 hides it only for
    // documents of fewer events). Schema 5's join dropped missing rows before the LIMIT, so the
    // page stayed full. Expected: CORRUPTION (the index names a position no run holds), or at
    // least the same events whatever the page size.
    const f = file((s) => {
      for (let i = 0; i < 6; i++) s.append('x', bytes(i))
    })
    f.edit((db) => db.prepare('delete from runs where lsn = 2').run())
    const t = f.reopen()
    const all = outcome(() => [...t.eventsForDoc('x')].map((e) => e.lsn))
    expect(all).not.toEqual([1, 2, 3, 4, 5, 6])
    expect(outcome(() => [...t.eventsForDoc('x', 0, 2)].map((e) => e.lsn))).toEqual(all)
  })

  it('a run moved to another position (lsn edited): no read serves another document’s event as this one’s', () => {
    // Found by an attacker helper, fixed: positions are not part of any hash, and the run's body names each event's
    // document, but no read compares it with the document index. A run x, y, x at positions
    // 1–3 moved to start at 2 makes doc_events' (x, 3) land on the y event: eventsForDoc('x')
    // yields y's change (an application would apply it to document x), eventSeqsForDoc('x')
    // names s/1#2 (y's), and verifyLog says the log is whole. A second variant: a run moved
    // into another run's positions (overlapping lsn ranges). Expected: CORRUPTION when the
    // event read at an indexed position is not of that document.
    const f = file(xyx)
    f.edit((db) => db.prepare('update runs set lsn = 2 where lsn = 1').run())
    const t = f.reopen()
    expectOnly(
      'x',
      outcome(() => [...t.eventsForDoc('x')].map((e) => e.docId)),
    )
    const seqs = outcome(() => t.eventSeqsForDoc('x', 0))
    if (Array.isArray(seqs))
      for (const { origin, seq } of seqs as Array<{ origin: string; seq: number }>)
        expect(t.getEvent(origin, seq)?.docId).toBe('x')
    else expect(seqs).toEqual({ code: 'CORRUPTION' })
  })

  it('overlapping positions: a one-event run moved inside another run’s positions is never served for the other’s document', () => {
    // Found by an attacker helper, fixed: see above; here two runs overlap (run [x, y, x] at 1–3, run [z] moved from 4 to 2).
    const f = file((s) => {
      xyx(s)
      s.append('z', bytes(4))
    })
    f.edit((db) => db.prepare('update runs set lsn = 2 where lsn = 4').run())
    const t = f.reopen()
    expectOnly(
      'y',
      outcome(() => [...t.eventsForDoc('y')].map((e) => e.docId)),
    )
  })

  it('a run shortened by hand: eventSeqsForDoc (merged part) names only events a run holds', () => {
    // Found by an attacker helper, fixed: the merged part of eventSeqsForDoc (DerivedReads.docSeqs) computes
    // seq = run.seq + (x.lsn - run.lsn) from the run at or before the position without checking
    // that the run reaches it (the tail part and eventsForDoc check lsn < run.lsn + n). A run
    // x, y, x cut to x, y (its body and n rewritten consistently, so the head is s/1#2) still
    // lists s/1#3 for 'x', a seq beyond the head that getEvent does not find. Expected: only
    // events the log holds (or CORRUPTION).
    const f = file(xyx)
    f.edit((db) => rewriteRun(db as never, 's/1', 1, (events) => void events.pop()))
    const t = f.reopen()
    expect(t.vv()).toEqual({ 's/1': 2 })
    for (const { origin, seq } of t.eventSeqsForDoc('x', 0)) expect(t.getEvent(origin, seq)).toBeDefined()
  })

  it('getEvent and hashAt with a fractional seq: no such event, not CORRUPTION', () => {
    // Found by an attacker helper, fixed: StoredEvents.at finds the run at or before 1.5 and asks its event 0.5, which
    // decodeRunEvent refuses as a damaged body: a caller's bad argument is reported as a
    // damaged file (an operator would restore a backup). Schema 5 matched `seq = 1.5` and
    // returned undefined. Expected: undefined (no such event) or INVALID_ARGUMENT.
    const s = memStore('s', { now: () => NOW })
    cleanups.push(() => s.close())
    s.append('x', bytes(1))
    s.append('x', bytes(2))
    expect(codeOf(() => s.getEvent(s.origin, 1.5))).not.toBe('CORRUPTION')
    expect(codeOf(() => s.hashAt(s.origin, 1.5))).not.toBe('CORRUPTION')
    expect(s.verifyLog().events).toBe(2)
  })

  it("an origin's first run deleted by hand: verifyLog is CORRUPTION", () => {
    // Found by an attacker helper, fixed (the check predates runs, but a run takes up to 32 events with it): verifyLog
    // checks the expected seq only from the base (or from the first event it meets), so when
    // the runs at the start of an origin without a base are gone it starts at the first event
    // left and reports the log whole. vv and count() still claim s/1#1–#3; eventsMissing throws
    // CORRUPTION for the same file. Expected: CORRUPTION (the chain must start at #1 with
    // GENESIS_HASH as prev).
    const f = file((s) => {
      s.transact((tx) => {
        tx.append('x', bytes(1))
        tx.append('x', bytes(2))
      })
      s.append('x', bytes(3))
    })
    f.edit((db) => db.prepare('delete from runs where lsn = 1').run())
    const t = f.reopen()
    expect(t.vv()).toEqual({ 's/1': 3 })
    expect(codeOf(() => [...t.eventsMissing({})])).toBe('CORRUPTION')
    expect(codeOf(() => t.verifyLog())).toBe('CORRUPTION')
  })

  it("a run's seq of another type (2.5, 'abc'): the open refuses with CORRUPTION", () => {
    // Found by an attacker helper, fixed (ChainHeads.load never checked a head's seq; runs make it seq + n - 1): the last
    // run's seq set to 2.5 opens with vv { s/1: 2.5 }; set to 'abc' (text sorts after every
    // integer, so it is the origin's last run) the head's seq is NaN, vv() drops the origin
    // while fingerprint() keeps its hash, and verifyLog passes. Expected: the open refuses with
    // CORRUPTION, as it does for a head whose hash is not 32 bytes.
    for (const seq of [2.5, 'abc']) {
      const f = file((s) => {
        s.append('x', bytes(1))
        s.append('x', bytes(2))
      })
      f.edit((db) => setRun(db as never, 2, { seq }))
      expect(
        codeOf(() => f.reopen()),
        String(seq),
      ).toBe('CORRUPTION')
    }
  })

  it('a run the base cuts keeps its received_at', () => {
    // Found by an attacker helper, fixed (minor): deleteBelowBase rewrites the kept part of a cut run with Date.now() —
    // neither the run's received_at nor the store's clock (`now`) — so the `events` view shows
    // events above the base as received at the compaction (the migration and the writer take
    // care to keep one commit's received_at). Expected: the run's own received_at.
    const s = memStore('s', { now: () => NOW })
    cleanups.push(() => s.close())
    s.ingest(remoteChain('a', [4]))
    s.raiseBase({ 'a/1': 2 })
    expect(s.deleteBelowBase(10)).toBe(2)
    expect(s.db.prepare('select seq, received_at from events order by lsn').all()).toEqual([
      { seq: 3, received_at: NOW },
      { seq: 4, received_at: NOW },
    ])
  })

  it('deleteBelowBase with a limit that is not an integer (NaN, 1.5, Infinity): INVALID_ARGUMENT, nothing changed', () => {
    // Found by an attacker helper, fixed (minor, as in schema 5): the limit is bound straight into LIMIT ?; SQLite's
    // "datatype mismatch" escapes as a SqliteError instead of a DruError. Nothing is deleted
    // (checked). Expected: INVALID_ARGUMENT.
    const s = memStore('s', { now: () => NOW })
    cleanups.push(() => s.close())
    s.ingest(remoteChain('a', [4]))
    s.raiseBase({ 'a/1': 2 })
    const before = snapshotState(s)
    for (const limit of [Number.NaN, 1.5, Number.POSITIVE_INFINITY]) {
      let thrown: unknown
      try {
        s.deleteBelowBase(limit)
      } catch (err) {
        thrown = err
      }
      expect(snapshotState(s)).toEqual(before)
      expect(thrown, String(limit)).toBeInstanceOf(DruError)
    }
  })
})

/** Every event the store holds, read back through each read it offers, against `expected` (by origin#seq). */
function readsAgree(s: EventStore, expected: Map<string, DruEvent>): void {
  const positions = storedPositions(s.db)
  const base = s.baseVv()
  expect(s.count()).toBe(positions.length)
  for (const p of positions) {
    const e = expected.get(`${p.origin}#${p.seq}`)!
    expect(s.getEvent(p.origin, p.seq)).toEqual(e)
    expect(p.doc_id).toBe(e.docId)
  }
  // Above each base, every event streams, in order, linked.
  const streamed = [...s.eventsMissing(base)].flat()
  expect(streamed).toEqual(
    positions
      .filter((p) => p.seq > (base[p.origin] ?? 0))
      .sort((a, b) => (a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : a.seq - b.seq))
      .map((p) => expected.get(`${p.origin}#${p.seq}`)),
  )
  expect(s.verifyLog().events).toBe(streamed.length)
  for (const doc of ['x', 'y', 'z']) {
    const mine = positions.filter((p) => p.doc_id === doc)
    expect([...s.eventsForDoc(doc, 0, 3)].map((e) => [e.lsn, strip(e)])).toEqual(
      mine.map((p) => [p.lsn, expected.get(`${p.origin}#${p.seq}`)]),
    )
    expect(s.eventSeqsForDoc(doc, 0)).toEqual(mine.map((p) => ({ origin: p.origin, seq: p.seq })))
  }
  expect(s.docsChangedAfter(0, s.lastLsn(), 10_000)).toEqual(positions.map((p) => ({ lsn: p.lsn, docId: p.doc_id })))
  // The events view: one row per stored event, its hashes and chain link as read.
  const view = s.db.prepare('select lsn, origin, seq, prev, hash from events order by lsn').all()
  expect(view).toEqual(
    positions.map((p) => {
      const e = expected.get(`${p.origin}#${p.seq}`)!
      return { lsn: p.lsn, origin: p.origin, seq: p.seq, prev: e.prev, hash: e.hash }
    }),
  )
}

describe('held: compaction cutting runs anywhere, in steps, with reads between the steps', () => {
  it('any runs, any base, any limits: between steps every read gives exactly the stored events (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 4 }),
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 3 }),
        fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 3 }),
        fc.nat(),
        fc.nat(),
        fc.array(fc.integer({ min: 1, max: 13 }), { minLength: 1, maxLength: 12 }),
        (aCommits, bCommits, batches, aCut, bCut, limits) => {
          const a = remoteChain('a', aCommits, ['x', 'y', 'z'])
          const b = remoteChain('b', bCommits, ['z', 'x'])
          const s = memStore('s', { now: () => NOW, docIndexMergeEvery: 7 })
          try {
            const expected = new Map<string, DruEvent>()
            // a/1 in several ingests (runs cut where the batches are cut), b/1 in one, local events between.
            let at = 0
            for (const [i, n] of batches.entries()) {
              const batch = a.slice(at, at + n)
              at += n
              if (i === 0) s.ingest(b)
              s.ingest(batch)
              s.transact((tx) => {
                for (let k = 0; k <= i; k++) tx.append(k % 2 ? 'x' : 'y', bytes(i, k))
              })
            }
            s.ingest(a.slice(at))
            for (const e of [...s.eventsMissing({})].flat()) expected.set(`${e.origin}#${e.seq}`, e)
            readsAgree(s, expected)
            const floor = { 'a/1': (aCut % a.length) + 1, 'b/1': (bCut % b.length) + 1 }
            s.raiseBase(floor)
            readsAgree(s, expected)
            let left = floor['a/1'] + floor['b/1']
            for (const limit of [...limits, 1000]) {
              const n = s.deleteBelowBase(limit)
              expect(n).toBe(Math.min(limit, left))
              left -= n
              readsAgree(s, expected)
              if (left === 0) break
            }
            expect(s.folded('a/1', 1, 1000).map((f) => [f.seq, f.hlc])).toEqual(
              a.slice(0, floor['a/1']).map((e) => [e.seq, e.hlc]),
            )
            expect(s.folded('b/1', 1, 1000).map((f) => [f.seq, f.hlc])).toEqual(
              b.slice(0, floor['b/1']).map((e) => [e.seq, e.hlc]),
            )
          } finally {
            s.close()
          }
        },
      ),
      { numRuns: Number(process.env.DRU_PROPERTY_RUNS ?? 40), seed: 61 },
    )
  })

  it('a compaction cut short, then reopened between its steps: heads, count and reads as before', () => {
    const f = file((s) => {
      s.ingest(remoteChain('a', [10, 10]))
      s.raiseBase({ 'a/1': 13 })
      expect(s.deleteBelowBase(4)).toBe(4)
    })
    const t = f.reopen()
    expect(t.vv()).toEqual({ 'a/1': 20 })
    expect(t.count()).toBe(16)
    expect(t.verifyLog().events).toBe(7)
    expect(t.getEvent('a/1', 5)?.seq).toBe(5)
    expect(t.getEvent('a/1', 4)).toBeUndefined()
    expect(t.deleteBelowBase(100)).toBe(9)
    expect(t.count()).toBe(7)
    expect(runHolding(t.db, 'a/1', 14).seq).toBe(14)
  })
})

describe('held: runs rows edited by hand', () => {
  type Edit = (db: Database.Database, lsn: number) => void
  const edits: Record<string, Edit> = {
    'n + 1': (db, lsn) => setRun(db as never, lsn, { n: runAt(db, lsn).n + 1 }),
    'n - 1': (db, lsn) => setRun(db as never, lsn, { n: runAt(db, lsn).n - 1 }),
    'n 0': (db, lsn) => setRun(db as never, lsn, { n: 0 }),
    'n -1': (db, lsn) => setRun(db as never, lsn, { n: -1 }),
    'n 2.5': (db, lsn) => setRun(db as never, lsn, { n: 2.5 }),
    "n 'x'": (db, lsn) => setRun(db as never, lsn, { n: 'x' }),
    'seq + 1': (db, lsn) => setRun(db as never, lsn, { seq: runAt(db, lsn).seq + 100 }),
    'prev flipped': (db, lsn) => setRun(db as never, lsn, { prev: flip(runAt(db, lsn).prev, 5) }),
    'prev text': (db, lsn) => setRun(db as never, lsn, { prev: runAt(db, lsn).prev.toString('hex') }),
    'prev short': (db, lsn) => setRun(db as never, lsn, { prev: runAt(db, lsn).prev.subarray(1) }),
    'hashes flipped': (db, lsn) => setRun(db as never, lsn, { hashes: flip(runAt(db, lsn).hashes, 40) }),
    'hashes short': (db, lsn) => setRun(db as never, lsn, { hashes: runAt(db, lsn).hashes.subarray(32) }),
    'hashes text': (db, lsn) => setRun(db as never, lsn, { hashes: runAt(db, lsn).hashes.toString('hex') }),
    'body flipped': (db, lsn) => setRun(db as never, lsn, { body: flip(runAt(db, lsn).body, 7) }),
    'body text': (db, lsn) => setRun(db as never, lsn, { body: runAt(db, lsn).body.toString('latin1') }),
    'body number': (db, lsn) => setRun(db as never, lsn, { body: 12 }),
    'body longer': (db, lsn) => setRun(db as never, lsn, { body: Buffer.concat([runAt(db, lsn).body, bytes(0)]) }),
    'origin unknown': (db, lsn) => db.prepare('update runs set origin_id = 999 where lsn = ?').run(lsn),
    'event dropped, n kept': (db, lsn) => {
      const r = runAt(db, lsn)
      const origin = db.prepare('select origin from origin_ids where id = ?').pluck().get(r.originId) as string
      if (r.n < 2) return setRun(db as never, lsn, { n: 2 })
      rewriteRun(db as never, origin, r.seq, (events) => void events.splice(1, 1))
      setRun(db as never, lsn, { n: r.n })
    },
    'two events swapped': (db, lsn) => {
      const r = runAt(db, lsn)
      const origin = db.prepare('select origin from origin_ids where id = ?').pluck().get(r.originId) as string
      rewriteRun(db as never, origin, r.seq, (events) => {
        if (events.length > 1) [events[0], events[1]] = [events[1]!, events[0]!]
        else events[0]!.doc += 1
      })
    },
    'another origin’s run copied over': (db, lsn) => {
      const other = db.prepare('select lsn from runs where origin_id != ? order by lsn limit 1').pluck()
      const src = runAt(db, other.get(runAt(db, lsn).originId) as number)
      setRun(db as never, lsn, { body: src.body, hashes: src.hashes, n: src.n, prev: src.prev })
    },
  }
  function runAt(db: Database.Database, lsn: number) {
    return db
      .prepare('select lsn, origin_id as originId, seq, n, prev, body, hashes from runs where lsn = ?')
      .get(lsn) as { lsn: number; originId: number; seq: number; n: number; prev: Buffer; body: Buffer; hashes: Buffer }
  }
  function flip(buf: Buffer, at: number): Buffer {
    const out = Buffer.from(buf)
    out[at % out.byteLength]! ^= 0x10
    return out
  }

  it('any edit of any run: every read returns the stored event or throws CORRUPTION; verifyLog notices what reads lost (property)', () => {
    const a = remoteChain('a', [5, 1, 3])
    const originals = new Map<string, DruEvent>()
    const f = file((s) => {
      s.ingest(a.slice(0, 5))
      s.ingest(a.slice(5, 6))
      s.ingest(a.slice(6))
      s.transact((tx) => {
        for (let i = 0; i < 4; i++) tx.append(i % 2 ? 'x' : 'z', bytes(i))
      })
      s.append('y', bytes(9))
      for (const e of [...s.eventsMissing({})].flat()) originals.set(`${e.origin}#${e.seq}`, e)
    })
    const pristine = readFileSync(f.path)
    let runLsns: number[] = []
    let firstRuns: number[] = []
    f.edit((db) => {
      runLsns = db.prepare('select lsn from runs order by lsn').pluck().all() as number[]
      firstRuns = db.prepare('select lsn from runs where seq = 1').pluck().all() as number[]
    })
    fc.assert(
      fc.property(fc.constantFrom(...Object.keys(edits)), fc.constantFrom(...runLsns), (name, lsn) => {
        // The pristine file back, then one edit of it.
        for (const extra of ['-wal', '-shm']) rmSync(f.path + extra, { force: true })
        writeFileSync(f.path, pristine)
        f.edit((db) => edits[name]!(db, lsn))
        const opened = outcome(() => f.reopen())
        if (!(opened instanceof EventStore)) {
          expect(opened).toEqual({ code: 'CORRUPTION' })
          return
        }
        const t = opened
        try {
          let lost = false
          for (const [key, e] of originals) {
            const got = outcome(() => t.getEvent(e.origin, e.seq))
            if (got === undefined || (got as { code?: string }).code === 'CORRUPTION') {
              if (e.seq <= (t.vv()[e.origin] ?? 0)) lost = true
              continue
            }
            expect(got, key).toEqual(e)
          }
          const stream = outcome(() => [...t.eventsMissing({})].flat())
          if (Array.isArray(stream)) for (const e of stream) expect(e).toEqual(originals.get(`${e.origin}#${e.seq}`))
          else expect(stream).toEqual({ code: 'CORRUPTION' })
          for (const doc of ['x', 'y', 'z']) {
            const read = outcome(() => [...t.eventsForDoc(doc)])
            if (Array.isArray(read))
              for (const e of read) {
                expect(strip(e)).toEqual(originals.get(`${e.origin}#${e.seq}`))
                expect(e.docId).toBe(doc)
              }
            else expect(read).toEqual({ code: 'CORRUPTION' })
          }
          const verified = outcome(() => t.verifyLog())
          // A first run left with no events is the finding "an origin's first run deleted by hand".
          const emptiedFirst = (name === 'n 0' || name === 'n -1') && firstRuns.includes(lsn)
          if (lost && !emptiedFirst) expect(verified).toEqual({ code: 'CORRUPTION' })
        } finally {
          t.close()
        }
      }),
      { numRuns: Number(process.env.DRU_PROPERTY_RUNS ?? 150), seed: 62 },
    )
  })
})

describe('held: reads from inside a storing transaction, rollbacks of part of a run', () => {
  it('a storing validator and an inbox handler read every event of the open run, stored and checked', () => {
    const s = memStore('s', { now: () => NOW })
    cleanups.push(() => s.close())
    const a = remoteChain('a', [6])
    s.ingest(a.slice(0, 2))
    const seen: string[] = []
    s.onIngest('reader', (e) => {
      // Its own event and the one before it, in the same run of the same batch.
      expect(s.getEvent(e.origin, e.seq)).toEqual(e)
      expect(s.getEvent(e.origin, e.seq - 1)).toEqual(a[e.seq - 2])
      expect([...s.eventsForDoc(e.docId)].map(strip)).toContainEqual(e)
      seen.push(`handler ${e.seq}`)
    })
    s.addStoringValidator((events) => {
      for (const e of events) expect(s.getEvent(e.origin, e.seq)).toEqual(e)
      // Heads move at the commit: inside it the stream still ends at the old heads.
      expect([...s.eventsMissing({})].flat()).toEqual(a.slice(0, 2))
      expect(s.count()).toBe(6)
      expect(s.docsChangedAfter(0, 100, 100).map((p) => p.lsn)).toEqual([1, 2, 3, 4, 5, 6])
      seen.push('validator')
    })
    expect(s.ingest(a).stored).toEqual(a.slice(2))
    expect(seen).toEqual(['handler 3', 'handler 4', 'handler 5', 'handler 6', 'validator'])
    expect(s.verifyLog().events).toBe(6)
  })

  it('a batch refused after part of a run was flushed (a duplicate check of a later origin) changes nothing', () => {
    const s = memStore('s', { now: () => NOW })
    cleanups.push(() => s.close())
    const a = remoteChain('a', [6])
    const b = remoteChain('b', [2])
    s.ingest([...a.slice(0, 2), ...b])
    const before = snapshotState(s)
    const runsBefore = s.db.prepare('select * from runs order by lsn').all()
    const forked = forkOfSecond(b)
    // a/1#3–#6 are queued, b/1#2's duplicate check flushes them, then b/1#2 is a FORK.
    expect(codeOf(() => s.ingest([...a.slice(2), forked]))).toBe('FORK')
    expect(snapshotState(s)).toEqual(before)
    expect(s.db.prepare('select * from runs order by lsn').all()).toEqual(runsBefore)
    expect(s.ingest(a.slice(2)).stored).toHaveLength(4)
    expect(s.verifyLog().events).toBe(8)
    expect([...s.eventsMissing({})].flat()).toEqual([...a, ...b])
  })

  it('a local transaction that throws after appending leaves no run, no position and no seq', () => {
    const s = memStore('s', { now: () => NOW })
    cleanups.push(() => s.close())
    s.append('x', bytes(1))
    const before = snapshotState(s)
    expect(() =>
      s.transact((tx) => {
        tx.append('x', bytes(2))
        tx.append('y', bytes(3))
        throw new Error('app failed')
      }),
    ).toThrow('app failed')
    expect(snapshotState(s)).toEqual(before)
    const e = s.append('y', bytes(4))
    expect(e.seq).toBe(2)
    expect(norm(s.getEvent(e.origin, 2))).toEqual(norm(e))
  })
})

describe('held: signatures of events inside runs', () => {
  const sign = (hash: string) => new Uint8Array(Buffer.from(hash, 'hex').subarray(0, 8))

  it('deferred signatures land on events inside a run, survive a compaction cutting it, and show in the view', () => {
    const a = memStore('a', { now: () => NOW, sign })
    for (let c = 0; c < 2; c++) {
      a.transact((tx) => {
        for (let i = 0; i < 3; i++) tx.append('x', bytes(c, i))
      })
      a.signOwnTip()
    }
    const events = [...a.eventsMissing({})].flat()
    a.close()
    expect(events.map((e) => e.sig !== undefined)).toEqual([false, false, true, false, false, true])
    const s = memStore('s', { now: () => NOW })
    cleanups.push(() => s.close())
    s.ingest(events)
    expect(s.db.prepare('select count(*) from runs').pluck().get()).toBe(1)
    for (const e of events) expect(s.getEvent(e.origin, e.seq)).toEqual(e)
    // The floor is lowered to the signed #3 inside the run; the run is cut after it.
    expect(s.signedFloor({ 'a/1': 5 })).toEqual({ 'a/1': 3 })
    s.raiseBase({ 'a/1': 5 })
    expect(s.deleteBelowBase(2)).toBe(2)
    expect(s.getEvent('a/1', 3)).toEqual(events[2])
    expect(s.deleteBelowBase(2)).toBe(1)
    expect(s.folded('a/1', 1, 10).map((f) => f.sig !== undefined)).toEqual([false, false, true])
    expect(s.getEvent('a/1', 6)).toEqual(events[5])
    expect(s.db.prepare('select seq, sig is not null as signed from events order by lsn').all()).toEqual([
      { seq: 4, signed: 0 },
      { seq: 5, signed: 0 },
      { seq: 6, signed: 1 },
    ])
  })

  it('a local commit signed later: the tip of its run gets the signature, reads see it, nothing else changes', () => {
    const s = memStore('s', { now: () => NOW, sign })
    cleanups.push(() => s.close())
    const { events } = s.transact((tx) => [
      tx.append('x', bytes(1)),
      tx.append('y', bytes(2)),
      tx.append('x', bytes(3)),
    ])
    expect(s.ownTipUnsigned).toBe(true)
    expect(s.getEvent(s.origin, 3)?.sig).toBeUndefined()
    s.signOwnTip()
    expect(norm(s.getEvent(s.origin, 3))).toEqual(norm({ ...events[2]!, sig: sign(events[2]!.hash) }))
    expect(norm(s.getEvent(s.origin, 2))).toEqual(norm(events[1]))
    expect(s.verifyLog().events).toBe(3)
  })

  it('signOwnHistory over runs (a long commit, a compaction cut in between): signs the head and every bound, reads agree', () => {
    const f = file((s) => {
      s.transact((tx) => {
        for (let i = 0; i < 70; i++) tx.append(i % 2 ? 'x' : 'y', bytes(i))
      })
      s.raiseBase({ 's/1': 40 })
      expect(s.deleteBelowBase(5)).toBe(5)
    })
    const t = f.reopen()
    expect(unsignedOrigins(t).map((u) => u.origin)).toEqual(['s/1'])
    const before = [...t.eventsMissing(t.baseVv())].flat()
    expect(signOwnHistory(t, 's', sign)).toBeGreaterThan(0)
    expect(unsignedOrigins(t)).toEqual([])
    const after = [...t.eventsMissing(t.baseVv())].flat()
    expect(after.map((e) => ({ ...e, sig: undefined }))).toEqual(before.map((e) => ({ ...e, sig: undefined })))
    expect([...after[after.length - 1]!.sig!]).toEqual([...sign(after[after.length - 1]!.hash)])
    expect(t.verifyLog().events).toBe(30)
  })
})

describe('held: the 5 → 6 migration of damaged rows', () => {
  const damages: Record<string, string> = {
    'hash as hex text':
      'update log set hash = lower(hex(hash)) where seq = 3 and origin_id = (select min(origin_id) from log)',
    'prev of 31 bytes':
      'update log set prev = substr(prev, 2) where seq = 3 and origin_id = (select min(origin_id) from log)',
    'change as a number': 'update log set change = 7 where seq = 3 and origin_id = (select min(origin_id) from log)',
    'node as a blob':
      "update log set hlc_node = x'ff00' where seq = 3 and origin_id = (select min(origin_id) from log)",
    'wall beyond 15 digits':
      'update log set hlc_wall = 10000000000000000 where seq = 3 and origin_id = (select min(origin_id) from log)',
    'doc of no entry': 'update log set doc = 999 where seq = 3 and origin_id = (select min(origin_id) from log)',
    'a row moved past the others':
      'update log set lsn = 1000 where seq = 3 and origin_id = (select min(origin_id) from log)',
    'received_at in the middle of a commit':
      'update log set received_at = 5 where seq = 3 and origin_id = (select min(origin_id) from log)',
    'seq as real': 'update log set seq = 3.5 where seq = 3 and origin_id = (select min(origin_id) from log)',
  }

  for (const [name, sql] of Object.entries(damages))
    it(`${name}: the damaged event is CORRUPTION or identical, every other reads as before`, () => {
      let originals: DruEvent[] = []
      const f = file((s) => {
        s.ingest(remoteChain('a', [6]))
        s.transact((tx) => {
          for (let i = 0; i < 4; i++) tx.append('y', bytes(i))
        })
        originals = [...s.eventsMissing({})].flat()
      })
      toSchema5(f.path)
      f.edit((db) => expect(db.prepare(sql).run().changes).toBe(1))
      const t = outcome(() => f.reopen())
      if (!(t instanceof EventStore)) {
        expect(t).toEqual({ code: 'CORRUPTION' })
        return
      }
      for (const e of originals) {
        const got = outcome(() => t.getEvent(e.origin, e.seq))
        if (e.origin === 'a/1' && e.seq === 3) {
          if (got !== undefined && !('code' in got)) expect(got).toEqual(e)
          else if (got !== undefined) expect(got).toEqual({ code: 'CORRUPTION' })
        } else expect(got, `${e.origin}#${e.seq}`).toEqual(e)
      }
      const verified = outcome(() => t.verifyLog())
      if (!('code' in verified)) expect([...t.eventsMissing({})].flat()).toEqual(originals)
      else expect(verified).toEqual({ code: 'CORRUPTION' })
    })
})
