import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { EventStore, MetaKey } from '../src/index.js'
import { bytes, codeOf, exchange, memStore, sequentialIncarnations, tempDir } from './helpers.js'

/**
 * An attacker and a careless operator against the store's bookkeeping: count() read from the
 * chains, the document index's tail merged at close and at its bounds, changes read as hex.
 */

const cleanups: Array<() => void> = []
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!()
})

function filePath(): string {
  const { dir, cleanup } = tempDir('dru-bookkeeping-attack-')
  cleanups.push(cleanup)
  return join(dir, 's.db')
}

const rows = (s: EventStore) => s.db.prepare('select count(*) from events').pluck().get() as number

describe('count() from the chains', () => {
  it('agrees with count(*) through appends, rollbacks, ingest, compaction in steps and reopen', () => {
    const path = filePath()
    const random = sequentialIncarnations()
    let s = EventStore.open({ path, druId: 'h', durability: 'process', random, docIndexMergeEvery: 7 })
    const peer = memStore('a')
    cleanups.push(() => peer.close())
    const check = () => expect(s.count()).toBe(rows(s))
    for (let i = 0; i < 20; i++) s.append(`d${i % 3}`, bytes(i))
    check()
    expect(() =>
      s.transact((tx) => {
        tx.append('d9', bytes(1))
        throw new Error('rolled back')
      }),
    ).toThrow('rolled back')
    check()
    for (let i = 0; i < 15; i++) peer.append(`p${i % 4}`, bytes(i))
    exchange(peer, s)
    check()
    s.raiseBase({ 'h/1': 12, 'a/1': 9 })
    check()
    while (s.deleteBelowBase(4) > 0) check()
    s.close()
    s = EventStore.open({ path, druId: 'h', durability: 'process', random, docIndexMergeEvery: 7 })
    check()
    for (let i = 0; i < 5; i++) s.append('d0', bytes(i))
    check()
    s.close()
  })
})

describe('the tail merged at its bound', () => {
  it('a read failing inside the merge (an I/O error) neither fails the commit it follows nor leaves the heads behind', () => {
    const s = memStore('h', { docIndexMergeEvery: 3 })
    cleanups.push(() => s.close())
    const peer = memStore('a')
    cleanups.push(() => peer.close())
    for (let i = 0; i < 3; i++) peer.append(`p${i}`, bytes(i))
    // better-sqlite3's Statement: the merge's read of the log's top fails like a disk would.
    const proto = Object.getPrototypeOf(s.db.prepare('select 1')) as { get: (...a: unknown[]) => unknown }
    const get = proto.get
    let failing = true
    proto.get = function (this: { source: string }, ...args: unknown[]) {
      if (failing && this.source === 'select lsn + n - 1 from runs order by lsn desc limit 1')
        throw new Error('disk I/O error')
      return get.apply(this, args)
    }
    try {
      s.append('d0', bytes(0))
      s.append('d1', bytes(1))
      expect(() => s.append('d2', bytes(2))).not.toThrow()
      expect(s.vv()).toEqual({ 'h/1': 3 })
      expect(() => exchange(peer, s)).not.toThrow()
      expect(s.vv()).toEqual({ 'h/1': 3, 'a/1': 3 })
    } finally {
      failing = false
      proto.get = get
    }
    expect(s.count()).toBe(rows(s))
    expect([...s.eventsForDoc('p2')]).toHaveLength(1)
  })
})

describe('close() merges the tail', () => {
  it('closes, and refuses writes as CLOSED, when the connection was already closed under it', () => {
    const s = memStore('h')
    s.append('d', bytes(1))
    // What a test simulating a crash does, or an operator holding store.db.
    s.db.close()
    expect(() => s.close()).not.toThrow()
    expect(s.closed).toBe(true)
    expect(codeOf(() => s.append('d', bytes(2)))).toBe('CLOSED')
  })

  it('an inspection writes nothing, with a tail left by a crash to rebuild', () => {
    const path = filePath()
    const s = EventStore.open({ path, druId: 'h', durability: 'process', random: sequentialIncarnations() })
    for (let i = 0; i < 10; i++) s.append(`d${i}`, bytes(i))
    // A crash: the connection goes without the store's close (no merge, no marker).
    s.db.close()
    const indexed = () => {
      const raw = new Database(path, { readonly: true })
      try {
        return raw.prepare("select value from meta where key = 'doc_index_lsn'").pluck().get()
      } finally {
        raw.close()
      }
    }
    const upto = indexed()
    const before = readFileSync(path)
    const mtime = statSync(path).mtimeMs
    const i = EventStore.open({ path, druId: 'h', durability: 'process', inspect: true })
    expect(i.count()).toBe(10)
    expect([...i.eventsForDoc('d3')]).toHaveLength(1)
    i.close()
    expect(readFileSync(path).equals(before)).toBe(true)
    expect(statSync(path).mtimeMs).toBe(mtime)
    expect(indexed()).toBe(upto)
  })
})

describe('close() when things went wrong before it', () => {
  it('a full disk: close() fails to merge and to mark, closes anyway, and the next open reads every event', () => {
    const path = filePath()
    const random = sequentialIncarnations()
    const s = EventStore.open({ path, druId: 'h', durability: 'process', random })
    // More index rows than the doc_events root page holds: the merge needs new pages.
    s.transact((tx) => {
      for (let i = 0; i < 2000; i++) tx.append(`d${i % 4}`, bytes(i % 256))
    })
    // No page may be added: the merge's doc_events rows cannot be written.
    const pages = s.db.pragma('page_count', { simple: true }) as number
    s.db.pragma(`max_page_count = ${pages}`)
    let full: string | undefined
    for (let i = 0; i < 2000 && full === undefined; i++)
      full = codeOf(() => s.append(`filler-${i}`, new Uint8Array(512)))
    expect(full).toBeDefined()
    expect(() => s.close()).not.toThrow()
    expect(s.closed).toBe(true)
    const t = EventStore.open({ path, druId: 'h', durability: 'process', random })
    cleanups.push(() => t.close())
    // The merge did fail: the index part on disk stops where the store's last merge left it.
    expect(t.getMeta(MetaKey.DOC_INDEX_LSN)).toBe(0)
    expect(t.count()).toBe(rows(t))
    expect([...t.eventsForDoc('d1')].map((e) => e.change[0])).toEqual(
      Array.from({ length: 500 }, (_, i) => (1 + 4 * i) % 256),
    )
  })

  it('after a rolled back transact, and twice: the merged index holds the committed events only', () => {
    const path = filePath()
    const random = sequentialIncarnations()
    const s = EventStore.open({ path, druId: 'h', durability: 'process', random })
    s.append('d', bytes(1))
    expect(() =>
      s.transact((tx) => {
        tx.append('d', bytes(2))
        tx.append('e', bytes(3))
        throw new Error('no')
      }),
    ).toThrow('no')
    s.append('d', bytes(4))
    s.close()
    s.close()
    const t = EventStore.open({ path, druId: 'h', durability: 'process', random })
    cleanups.push(() => t.close())
    expect([...t.eventsForDoc('d')].map((e) => e.change[0])).toEqual([1, 4])
    expect([...t.eventsForDoc('e')]).toEqual([])
    expect(t.db.prepare('select count(*) from doc_events').pluck().get()).toBe(2)
  })
})

describe('a merge by the documents bound inside an ingest with handlers and validators', () => {
  it('readers inside and after the ingest see every event once', () => {
    const s = memStore('b', { docIndexMergeEvery: 1000, docIndexMergeDocs: 4 })
    cleanups.push(() => s.close())
    const peer = memStore('a')
    cleanups.push(() => peer.close())
    const seen: number[] = []
    s.onIngest('reader', (e) => {
      seen.push([...s.eventsForDoc(e.docId)].length)
    })
    s.addStoringValidator((events) => {
      for (const e of events) expect(s.eventCountForDoc(e.docId, e.origin)).toBeGreaterThan(0)
    })
    for (let i = 0; i < 30; i++) peer.append(`p${i % 9}`, bytes(i))
    exchange(peer, s, 200)
    expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => Math.floor(i / 9) + 1))
    for (let d = 0; d < 9; d++) {
      expect([...s.eventsForDoc(`p${d}`)].map((e) => e.change[0])).toEqual(
        Array.from({ length: 30 }, (_, i) => i).filter((i) => i % 9 === d),
      )
    }
    expect(s.count()).toBe(rows(s))
  })
})
