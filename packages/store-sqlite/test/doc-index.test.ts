import { join } from 'node:path'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import Database from 'better-sqlite3'
import { EventStore } from '../src/index.js'
import { compareUtf8 } from '../src/doc-index.js'
import { BELOW_BASE_COUNT } from '../src/statements.js'
import { bytes, exchange, memStore, sequentialIncarnations, storedPositions, tempDir } from './helpers.js'

const cleanups: Array<() => void> = []
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!()
})

const DOCS = ['a', 'b', 'ünï', '文档', '\u{1F600}', '\uE000', 'z']

/** What the document reads must return, from every stored row (the runs and their bodies). */
function expectReadsMatchTheLog(s: EventStore): void {
  const all = storedPositions(s.db)
  // count() is derived from the chains (and a compaction's undeleted rows), not counted.
  expect(s.count()).toBe(all.length)
  // In SQLite's order of text (UTF-8 bytes).
  const ids = [...new Set(all.map((r) => r.doc_id))].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
  expect(s.docIdsAfter('', 1000)).toEqual(ids)
  // Paged two at a time, in SQLite's order (UTF-8 bytes: the astral character after U+E000).
  const paged: string[] = []
  for (let page = s.docIdsAfter('', 2); page.length > 0; page = s.docIdsAfter(paged[paged.length - 1]!, 2))
    paged.push(...page)
  expect(paged).toEqual(ids)
  for (const docId of DOCS) {
    const mine = all.filter((r) => r.doc_id === docId)
    for (const after of [0, ...mine.map((r) => r.lsn)]) {
      const expected = mine.filter((r) => r.lsn > after)
      expect([...s.eventsForDoc(docId, after, 2)].map((e) => e.lsn)).toEqual(expected.map((r) => r.lsn))
      const seqs = s.eventSeqsForDoc(docId, after).map((r) => `${r.origin}#${r.seq}`)
      expect(seqs.sort()).toEqual(expected.map((r) => `${r.origin}#${r.seq}`).sort())
    }
    for (const origin of new Set(all.map((r) => r.origin))) {
      const folded = s.db
        .prepare('select count(*) from folded where doc_id = ? and origin = ?')
        .pluck()
        .get(docId, origin) as number
      expect(s.eventCountForDoc(docId, origin)).toBe(mine.filter((r) => r.origin === origin).length + folded)
    }
  }
}

describe('the document index (merged part plus in-memory tail)', () => {
  it('orders document ids as SQLite does (UTF-8 bytes), surrogates included (property)', () => {
    const db = new Database(':memory:')
    const cmp = db.prepare('select case when @a < @b then -1 when @a > @b then 1 else 0 end').pluck()
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (a, b) => {
        expect(Math.sign(compareUtf8(a, b))).toBe(cmp.get({ a, b }))
      }),
      { numRuns: 2000, seed: 52 },
    )
    expect(compareUtf8('\u{1F600}', '\uE000')).toBeGreaterThan(0)
    db.close()
  })

  it('answers like a per-event index through appends, rollbacks, ingest, merges, compaction and reopening (property)', () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('append' as const),
        docs: fc.array(fc.constantFrom(...DOCS), { minLength: 1, maxLength: 4 }),
      }),
      fc.record({ kind: fc.constant('rollback' as const), doc: fc.constantFrom(...DOCS) }),
      fc.record({
        kind: fc.constant('refused' as const),
        docs: fc.array(fc.constantFrom(...DOCS), { minLength: 1, maxLength: 4 }),
      }),
      fc.record({
        kind: fc.constant('ingest' as const),
        docs: fc.array(fc.constantFrom(...DOCS), { minLength: 1, maxLength: 4 }),
      }),
      fc.record({ kind: fc.constant('compact' as const), keep: fc.nat({ max: 3 }) }),
      fc.record({ kind: fc.constant('reopen' as const) }),
    )
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 25 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 8 }),
        (ops, mergeEvery, mergeDocs) => {
          const { dir, cleanup } = tempDir('dru-doc-index-')
          const path = join(dir, 'a.db')
          const random = sequentialIncarnations()
          const open = () =>
            EventStore.open({ path, druId: 'a', random, docIndexMergeEvery: mergeEvery, docIndexMergeDocs: mergeDocs })
          let refuse = false
          const openRefusing = () => {
            const store = open()
            // Refuses a batch after its rows were inserted: the transaction rolls back.
            store.addStoringValidator(() => {
              // Inside the transaction the heads have not moved yet: its rows are counted.
              expect(store.count()).toBe(store.db.prepare('select count(*) from events').pluck().get())
              if (refuse) throw new Error('refused')
            })
            return store
          }
          let s = openRefusing()
          const peer = memStore('p')
          try {
            let n = 0
            for (const o of ops) {
              if (o.kind === 'append') s.transact((tx) => o.docs.forEach((d) => tx.append(d, bytes(n++ & 255))))
              else if (o.kind === 'rollback') {
                expect(() =>
                  s.transact((tx) => {
                    tx.append(o.doc, bytes(1))
                    throw new Error('no')
                  }),
                ).toThrow('no')
              } else if (o.kind === 'ingest') {
                for (const d of o.docs) peer.append(d, bytes(n++ & 255))
                exchange(peer, s)
              } else if (o.kind === 'refused') {
                for (const d of o.docs) peer.append(d, bytes(n++ & 255))
                refuse = true
                expect(() => exchange(peer, s)).toThrow('refused')
                refuse = false
              } else if (o.kind === 'compact') {
                const vv = s.vv()
                s.raiseBase(Object.fromEntries(Object.entries(vv).map(([k, v]) => [k, Math.max(0, v - o.keep)])))
                // Between steps the base is raised and rows below it are still there.
                while (s.deleteBelowBase(3) === 3) expectReadsMatchTheLog(s)
              } else {
                s.close()
                s = openRefusing()
              }
              expectReadsMatchTheLog(s)
            }
          } finally {
            s.close()
            peer.close()
            cleanup()
          }
        },
      ),
      { numRuns: 60, seed: 51 },
    )
  })

  it('merges once the tail reaches its bound, and a reopened store reads the same', () => {
    const { dir, cleanup } = tempDir('dru-doc-index-')
    cleanups.push(cleanup)
    const path = join(dir, 'a.db')
    let s = EventStore.open({ path, druId: 'a', random: sequentialIncarnations(), docIndexMergeEvery: 10 })
    for (let i = 0; i < 25; i++) s.append(DOCS[i % DOCS.length]!, bytes(i))
    expect(s.db.prepare('select count(*) from doc_events').pluck().get()).toBe(20)
    expect(s.getMeta('doc_index_lsn')).toBe(20)
    expectReadsMatchTheLog(s)
    s.close()
    // A clean close merges the tail: the next open has nothing to read back from the log.
    const file = new Database(path, { readonly: true })
    expect(file.prepare('select count(*) from doc_events').pluck().get()).toBe(25)
    expect(file.prepare("select value from meta where key = 'doc_index_lsn'").pluck().get()).toBe(25)
    file.close()
    s = EventStore.open({ path, druId: 'a', random: sequentialIncarnations(2), docIndexMergeEvery: 10 })
    cleanups.push(() => s.close())
    expectReadsMatchTheLog(s)
  })

  it('a merge larger than one statement writes every entry (64 rows a statement, then the rest)', () => {
    const s = memStore('a', { docIndexMergeEvery: 150 })
    cleanups.push(() => s.close())
    for (let i = 0; i < 150; i++) s.append(DOCS[(i * 5) % DOCS.length]!, bytes(i))
    expect(s.db.prepare('select count(*) from doc_events').pluck().get()).toBe(150)
    expectReadsMatchTheLog(s)
  })

  it('merges when the tail holds its bound in documents, whatever its number of events', () => {
    const s = memStore('a', { docIndexMergeEvery: 1000, docIndexMergeDocs: 3 })
    cleanups.push(() => s.close())
    const merged = () => s.db.prepare('select count(*) from doc_events').pluck().get()
    for (let i = 0; i < 5; i++) s.append('a', bytes(i))
    s.append('b', bytes(5))
    expect(merged()).toBe(0)
    s.append('c', bytes(6))
    expect(merged()).toBe(7)
    expectReadsMatchTheLog(s)
  })

  it('counts events without walking the log (the query plan seeks per compacted origin)', () => {
    const s = memStore('a')
    cleanups.push(() => s.close())
    const plan = (s.db.prepare(`explain query plan ${BELOW_BASE_COUNT}`).all() as Array<{ detail: string }>).map(
      (r) => r.detail,
    )
    expect(plan[0]).toMatch(/^SCAN b\b/)
    expect(plan.some((d) => /^SEARCH r USING .*INDEX runs_origin_seq \(origin_id=\? AND seq<\?\)/.test(d))).toBe(true)
    expect(plan.some((d) => /^SCAN r\b/.test(d))).toBe(false)
  })

  it('refuses a bound that is not a positive integer (CONFIG_INVALID, nothing opened)', () => {
    for (const field of ['docIndexMergeEvery', 'docIndexMergeDocs'] as const) {
      for (const bad of [0, -1, 1.5, Number.NaN, '10' as unknown as number]) {
        expect(() => memStore('a', { [field]: bad })).toThrow(
          expect.objectContaining({ code: 'CONFIG_INVALID', details: { field } }),
        )
      }
    }
  })

  it("a storing validator counts its own batch's events (they are visible inside the transaction)", () => {
    const a = memStore('a', { docIndexMergeEvery: 3 })
    const b = memStore('b', { docIndexMergeEvery: 3 })
    cleanups.push(
      () => a.close(),
      () => b.close(),
    )
    for (let i = 0; i < 7; i++) a.append('d', bytes(i))
    const seen: number[] = []
    b.addStoringValidator((events) => seen.push(b.eventCountForDoc('d', events[0]!.origin)!))
    exchange(a, b, 24)
    expect(seen.reduce((x, y) => Math.max(x, y), 0)).toBe(7)
    expect(b.eventCountForDoc('d', a.origin)).toBe(7)
  })
})
