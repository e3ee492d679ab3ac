import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as A from '@automerge/automerge'
import { EventStore } from '@dru/store-sqlite'
import { afterEach, describe, expect, it } from 'vitest'
import { DocumentStore, actorForOrigin, canonicalJson, originForActor, type DocumentStoreOptions } from '@dru/documents'

const open: Array<{ store: EventStore; docs: DocumentStore }> = []
const dirs: string[] = []

function make(druId: string, options: DocumentStoreOptions = {}, path = ':memory:') {
  const store = EventStore.open({ path, druId, skewPolicy: 'tolerate' })
  const docs = new DocumentStore(store, options)
  open.push({ store, docs })
  return { store, docs }
}

function tempDb(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'dru-docs-'))
  dirs.push(dir)
  return join(dir, name)
}

/** Copies every event `from` holds and `to` lacks. */
function sync(from: EventStore, to: EventStore): number {
  let n = 0
  for (const batch of from.eventsMissing(to.vv())) n += to.ingest(batch).stored.length
  return n
}

afterEach(() => {
  for (const { store, docs } of open.splice(0)) {
    docs.close()
    store.close()
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

describe('DocumentStore local changes', () => {
  it('appends the Automerge change in the same transaction and materialises it', () => {
    const { store, docs } = make('eu-west-1')
    const e = docs.change('order-1', (d) => {
      d.status = 'paid'
      d.qty = 2
    })
    expect(e?.docId).toBe('order-1')
    expect(store.count()).toBe(1)
    expect(docs.get('order-1')).toEqual({ qty: 2, status: 'paid' })
    expect(docs.get('missing')).toBeUndefined()
    // A change that changes nothing appends nothing.
    expect(docs.change('order-1', () => {})).toBeUndefined()
    expect(store.count()).toBe(1)
  })

  it('uses the hex of the origin as actor, so op ids name their origin; a reopened log writes as a new actor', () => {
    const path = tempDb('a.db')
    const first = make('eu-west-1', {}, path)
    first.docs.change('d', (d) => {
      d.x = 1
    })
    const actor = A.getActorId(first.docs.doc('d')!)
    expect(actor).toBe(Buffer.from(first.store.origin).toString('hex'))
    expect(originForActor(actor)).toBe(first.store.origin)
    first.docs.close()
    first.store.close()
    open.splice(0)
    // Every open is a new incarnation, so Automerge's per-actor seq is never reused.
    const { store, docs } = make('eu-west-1', {}, path)
    expect(store.origin).not.toBe(first.store.origin)
    docs.change('d', (d) => {
      d.x = 2
    })
    expect(A.getActorId(docs.doc('d')!)).toBe(actorForOrigin(store.origin))
    expect(docs.get('d')).toEqual({ x: 2 })
  })

  it('a rolled-back transaction leaves neither the event nor the cached change', () => {
    const { store, docs } = make('eu-west-1')
    store.db.exec('create table audit (note text)')
    docs.change('d', (d) => {
      d.x = 1
    })
    expect(() =>
      docs.transact((tx) => {
        tx.change('d', (d) => {
          d.x = 99
        })
        tx.change('e', (d) => {
          d.y = 1
        })
        tx.db.prepare('insert into audit values (?)').run('x=99')
        throw new Error('app failure after the change')
      }),
    ).toThrow('app failure')
    expect(store.count()).toBe(1)
    expect(store.db.prepare('select count(*) as n from audit').get()).toEqual({ n: 0 })
    expect(docs.get('d')).toEqual({ x: 1 })
    expect(docs.get('e')).toBeUndefined()
    // The next change works and takes the next seq.
    const e = docs.change('d', (d) => {
      d.x = 2
    })
    expect(e?.seq).toBe(2)
    expect(docs.get('d')).toEqual({ x: 2 })
  })

  it('a failing SQL statement inside the transaction also evicts the changed document', () => {
    const { store, docs } = make('eu-west-1')
    expect(() =>
      docs.transact((tx) => {
        tx.change('d', (d) => {
          d.x = 1
        })
        tx.db.prepare('insert into no_such_table values (1)').run()
      }),
    ).toThrow(/no_such_table/)
    expect(docs.isCached('d')).toBe(false)
    expect(docs.get('d')).toBeUndefined()
    expect(store.count()).toBe(0)
  })
})

describe('DocumentStore remote events', () => {
  it('applies a remote batch to cached documents and leaves cold ones cold', () => {
    const a = make('a')
    const b = make('b', { cache: { maxDocs: 100 } })
    for (let i = 0; i < 5; i++) {
      a.docs.change(`doc-${i}`, (d) => {
        d.v = i
      })
    }
    sync(a.store, b.store)
    b.docs.get('doc-0') // hot
    const loadsBefore = b.docs.stats().loads
    for (let i = 0; i < 5; i++) {
      a.docs.change(`doc-${i}`, (d) => {
        d.v = i * 10 + 1
      })
      a.docs.change(`doc-${i}`, (d) => {
        d.w = true
      })
    }
    sync(a.store, b.store)
    expect(b.docs.stats().loads).toBe(loadsBefore) // no load per event
    // The hot document's changes wait in its queue until it is read, then apply at once.
    expect(b.docs.stats().remoteApplied).toBe(0)
    expect(b.docs.get('doc-0')).toEqual({ v: 1, w: true })
    expect(b.docs.stats().remoteApplied).toBe(2) // only the hot document's two events
    expect(b.docs.stats().loads).toBe(loadsBefore)
    expect(b.docs.isCached('doc-1')).toBe(false)
    expect(b.docs.get('doc-3')).toEqual({ v: 31, w: true })
  })

  it('canonical JSON and digests do not depend on delivery order, while live key order does', () => {
    const a = make('a')
    const b = make('b')
    a.docs.change('d', (d) => {
      d.zeta = 1
    })
    b.docs.change('d', (d) => {
      d.alpha = 2
    })
    const c1 = make('c1')
    const c2 = make('c2')
    sync(a.store, c1.store)
    sync(b.store, c1.store)
    sync(b.store, c2.store)
    sync(a.store, c2.store)
    expect(canonicalJson(c1.docs.doc('d'))).toBe(canonicalJson(c2.docs.doc('d')))
    expect(c1.docs.digest('d')).toEqual(c2.docs.digest('d'))
    expect(c1.docs.clusterDigest()).toEqual(c2.docs.clusterDigest())
  })

  it('tags counters, immutable strings, dates and bytes in canonical JSON', () => {
    const { docs } = make('a')
    docs.change('d', (d) => {
      d.c = new A.Counter(3)
      d.s = new A.ImmutableString('x')
      d.t = new Date(5)
      d.b = new Uint8Array([1, 255])
      d.text = 'hi'
    })
    expect(docs.digest('d')!.json).toBe(
      '{"b":{"$bytes":"01ff"},"c":{"$counter":3},"s":{"$str":"x"},"t":{"$date":5},"text":"hi"}',
    )
    expect(docs.get('d')).toEqual({ b: 'Af8=', c: 3, s: 'x', t: new Date(5).toISOString(), text: 'hi' })
  })
})

describe('DocumentStore cache and snapshots', () => {
  it('keeps at most maxDocs documents and about maxBytes bytes in memory', () => {
    const { docs } = make('a', { cache: { maxDocs: 10 } })
    for (let i = 0; i < 100; i++) {
      docs.change(`doc-${i}`, (d) => {
        d.i = i
      })
    }
    expect(docs.stats().cachedDocs).toBe(10)
    expect(docs.stats().evictions).toBe(90)
    const small = make('b', { cache: { maxBytes: 20_000 } })
    for (let i = 0; i < 100; i++) {
      small.docs.change(`doc-${i}`, (d) => {
        d.i = i
      })
    }
    expect(small.docs.stats().cachedBytes).toBeLessThanOrEqual(20_000)
    expect(small.docs.stats().cachedDocs).toBeLessThan(100)
    expect(small.docs.get('doc-0')).toEqual({ i: 0 })
  })

  it('a document evicted and reloaded from snapshot + tail equals the never-evicted one', () => {
    const hot = make('w', { cache: { maxDocs: 1000 } })
    const cold = make('r', { cache: { maxDocs: 2 }, snapshotAfter: 2 })
    const warm = make('r2', { cache: { maxDocs: 1000 } })
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 8; i++) {
        hot.docs.change(`doc-${i}`, (d) => {
          d[`k${round}`] = round * i
          if (!d.list) d.list = []
          d.list.push(round)
        })
      }
      sync(hot.store, cold.store)
      sync(hot.store, warm.store)
      // Touch documents on the small-cache side so they load, get changed remotely, and are evicted again.
      for (let i = 0; i < 8; i += 3) cold.docs.get(`doc-${i}`)
      for (let i = 0; i < 8; i++) warm.docs.get(`doc-${i}`)
    }
    expect(cold.docs.stats().snapshotsWritten).toBeGreaterThan(0)
    for (let i = 0; i < 8; i++) {
      expect(cold.docs.digest(`doc-${i}`)).toEqual(warm.docs.digest(`doc-${i}`))
      expect(cold.docs.digest(`doc-${i}`)).toEqual(hot.docs.digest(`doc-${i}`))
    }
    expect(cold.docs.clusterDigest()).toEqual(hot.docs.clusterDigest())
  })

  it('snapshots are derived: deleting them and reopening rebuilds the same state', () => {
    const path = tempDb('a.db')
    let { store, docs } = make('a', { cache: { maxDocs: 3 }, snapshotAfter: 1 }, path)
    for (let i = 0; i < 10; i++) {
      for (let j = 0; j < 3; j++) {
        docs.change(`doc-${i}`, (d) => {
          d[`f${j}`] = i * j
          d.n = new A.Counter(j)
        })
      }
    }
    docs.flushSnapshots()
    const before = docs.clusterDigest()
    const rows = (store.db.prepare('select count(*) as n from docs').get() as { n: number }).n
    expect(rows).toBe(10)
    docs.close()
    store.close()
    open.length = 0
    ;({ store, docs } = make('a', { cache: { maxDocs: 3 } }, path))
    expect(docs.clusterDigest()).toEqual(before) // from snapshots
    store.db.exec('delete from docs')
    docs.dropCache()
    expect(docs.clusterDigest()).toEqual(before) // from the log alone
    expect(docs.get('doc-9')).toEqual({ f0: 0, f1: 9, f2: 18, n: 2 })
  })

  it('a snapshot written by an eviction inside an ingest (a handler reading documents) loses nothing', () => {
    const a = make('a')
    const b = make('b', { cache: { maxDocs: 1 }, snapshotAfter: 1 })
    a.docs.change('x', (d) => {
      d.v = 1
    })
    a.docs.change('y', (d) => {
      d.v = 1
    })
    sync(a.store, b.store)
    b.docs.change('x', (d) => {
      d.local = true
    }) // x hot, with an unsnapshotted local event
    for (let i = 2; i < 5; i++) {
      a.docs.change('x', (d) => {
        d.v = i
      })
    }
    // The handler runs inside the ingest transaction, before x's new events are applied;
    // reading y evicts x and writes its snapshot there.
    const off = b.store.onIngest('reader', () => {
      b.docs.get('y')
    })
    sync(a.store, b.store)
    off()
    expect(b.docs.stats().snapshotsWritten).toBeGreaterThan(0)
    b.docs.dropCache()
    expect(b.docs.get('x')).toEqual({ local: true, v: 4 })
  })
})
