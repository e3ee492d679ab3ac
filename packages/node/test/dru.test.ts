import { afterEach, describe, expect, it } from 'vitest'
import { isDruError } from '@dru/core'
import { openDru, type Dru } from '@dru/node'

const opened: Dru[] = []
async function dru(id: string, extra: Record<string, unknown> = {}) {
  const d = await openDru({ id, path: ':memory:', ...extra })
  opened.push(d)
  return d
}
afterEach(async () => {
  for (const d of opened.splice(0)) await d.close()
})

function exchange(a: Dru, b: Dru) {
  for (const batch of a.store.eventsMissing(b.store.vv())) b.store.ingest(batch)
  for (const batch of b.store.eventsMissing(a.store.vv())) a.store.ingest(batch)
}

describe('openDru in-process API', () => {
  it('change() and get() give plain JSON; a no-op change appends nothing', async () => {
    const d = await dru('eu-west-1')
    const r = await d.change('order-42', (doc) => {
      doc.status = 'paid'
    })
    expect(r.event?.origin).toBe(d.store.origin)
    expect(d.store.origin).toMatch(/^eu-west-1\/[1-9][0-9]*$/)
    expect(d.get('order-42')).toEqual({ status: 'paid' })
    expect(d.get('nope')).toBeUndefined()
    expect((await d.change('order-42', () => {})).event).toBeUndefined()
    await expect(d.change('order-42', (doc) => (doc.x = 1), { acks: 1 })).rejects.toThrow(/sync layer/)
  })

  it('transact() commits app rows and document changes together, or neither', async () => {
    const d = await dru('eu-west-1')
    d.store.db.exec('create table audit (note text)')
    d.transact((tx) => {
      tx.change('order-42', (doc) => {
        doc.qty = 3
      })
      tx.db.prepare('insert into audit values (?)').run('qty=3')
    })
    expect(() =>
      d.transact((tx) => {
        tx.change('order-42', (doc) => {
          doc.qty = 4
        })
        tx.db.prepare('insert into audit values (?)').run('qty=4')
        throw new Error('boom')
      }),
    ).toThrow('boom')
    expect(d.get('order-42')).toEqual({ qty: 3 })
    expect(d.store.db.prepare('select note from audit').all()).toEqual([{ note: 'qty=3' }])
    expect(d.store.count()).toBe(1)
  })

  it('subscribe() reports local and remote updates per document, and "*" for all', async () => {
    const a = await dru('a')
    const b = await dru('b')
    const one: string[] = []
    const all: string[] = []
    b.subscribe('x', (id, source) => one.push(`${id}:${source}`))
    const off = b.subscribe('*', (id, source) => all.push(`${id}:${source}`))
    await a.change('x', (doc) => (doc.v = 1))
    await a.change('y', (doc) => (doc.v = 1))
    await b.change('y', (doc) => (doc.w = 2))
    exchange(a, b)
    expect(one).toEqual(['x:remote'])
    expect(all.sort()).toEqual(['x:remote', 'y:local', 'y:remote'])
    off()
    await a.change('x', (doc) => (doc.v = 2))
    exchange(a, b)
    expect(all).toHaveLength(3)
    expect(one).toEqual(['x:remote', 'x:remote'])
  })

  it('fingerprint() and digest() match after exchange; conflicts API resolves across DRUs', async () => {
    // manual: the conflict must stay open for the API to resolve (the default records it resolved).
    const a = await dru('eu-west-1', { conflictPolicy: 'manual' })
    const b = await dru('us-east-1', { conflictPolicy: 'manual' })
    await a.change('o', (doc) => (doc.s = 'new'))
    exchange(a, b)
    await a.change('o', (doc) => (doc.s = 'paid'))
    await b.change('o', (doc) => (doc.s = 'void'))
    expect(a.digest()).not.toEqual(b.digest())
    exchange(a, b)
    expect(a.fingerprint()).toEqual(b.fingerprint())
    expect(a.digest()).toEqual(b.digest())
    expect(a.digest().documents).toBe(1)
    const [ca] = a.conflicts.list()
    expect(b.conflicts.list()).toHaveLength(1)
    await a.conflicts.resolve(ca!.id, 'paid')
    exchange(a, b)
    expect(a.conflicts.list()).toEqual([])
    expect(b.conflicts.list()).toEqual([])
    expect(b.get('o')).toEqual({ s: 'paid' })
    expect(a.docDigest('o')).toEqual(b.docDigest('o'))
  })

  it('counts events from a peer with a skewed clock but still stores them', async () => {
    const fast = await dru('fast', { now: () => Date.now() + 3_600_000 })
    const d = await dru('d', { maxClockSkewMs: 1000 })
    await fast.change('x', (doc) => (doc.v = 1))
    exchange(fast, d)
    expect(d.store.skewedEvents).toBe(1)
    expect(d.get('x')).toEqual({ v: 1 })
  })

  it('close() is idempotent and later calls fail with CLOSED', async () => {
    const d = await openDru({ id: 'c', path: ':memory:' })
    await d.close()
    await d.close()
    let err: unknown
    try {
      d.get('x')
    } catch (e) {
      err = e
    }
    expect(isDruError(err, 'CLOSED')).toBe(true)
  })
})
