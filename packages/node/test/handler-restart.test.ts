import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { generateKeys, openDru, runtimeOf, type Dru } from '../src/index.js'

// A restarted DRU's network stores events before the application registers its handlers
// again: those events are owed to the handlers, not skipped (CI caught examples/event-reader
// missing orders sent during its restart).

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  for (const deadline = Date.now() + ms; !cond();) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

describe('a handler registered after a restart', () => {
  it('runs once on every event the network stored before it was registered again, in document order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dru-handler-restart-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const keys = { a: generateKeys(), b: generateKeys() }
    const publicKeys = { a: keys.a.publicKey, b: keys.b.publicKey }
    const common = { secret: 'handler-restart-secret-0123', sync: { heartbeatMs: 100, heartbeatTimeoutMs: 600 } }
    const a = await openDru({
      id: 'a',
      path: ':memory:',
      listen: { host: '127.0.0.1', port: 0 },
      keys: { privateKey: keys.a.privateKey, publicKeys },
      ...common,
    })
    cleanups.push(() => a.close())
    const openB = async (): Promise<Dru> => {
      const b = await openDru({
        id: 'b',
        path: join(dir, 'b.db'),
        peers: [{ id: 'a', url: `ws://127.0.0.1:${runtimeOf(a).network!.sync.port}` }],
        keys: { privateKey: keys.b.privateKey, publicKeys },
        ...common,
      })
      cleanups.push(() => b.close())
      return b
    }
    const handled: string[] = []
    const handler = (e: { docId: string; seq: number }) => void handled.push(`${e.docId}#${e.seq}`)
    const write = async (docs: string[]) => {
      for (const d of docs)
        await a.change(d, (doc: Record<string, unknown>) => {
          doc.n = ((doc.n as number | undefined) ?? 0) + 1
        })
    }

    let b = await openB()
    b.onEvent('shipments', handler, { order: 'document' })
    await write(['o-1', 'o-2'])
    await until('b handled the first two', () => handled.length === 2)
    await b.close()

    await write(['o-3', 'o-1', 'o-3'])
    b = await openB()
    // The application is slow to register: the network catches up first.
    await until('b stored all five', () => (b.store.vv()[a.store.origin] ?? 0) === 5)
    expect(handled).toEqual(['o-1#1', 'o-2#2'])
    expect(b.inbox.list()).toMatchObject([
      { seq: 3, state: 'pending', attempts: 0, registered: false },
      { seq: 4, state: 'pending', attempts: 0, registered: false },
      { seq: 5, state: 'waiting', attempts: 0, registered: false },
    ])
    b.onEvent('shipments', handler, { order: 'document' })
    await until('b handled the three stored while it was not registered', () => handled.length === 5)
    await new Promise((r) => setTimeout(r, 200))
    expect(handled).toEqual(['o-1#1', 'o-2#2', 'o-3#3', 'o-1#4', 'o-3#5'])
    expect(b.inbox.list({ state: 'all' })).toEqual([])
  }, 30_000)
})

describe('a handler registered right after openDru', () => {
  it('is owed what was stored before openDru had returned; the window closes one macrotask later', async () => {
    const src = await openDru({ id: 'src', path: ':memory:' })
    for (const [i, d] of ['x', 'y', 'x'].entries())
      await src.change(d, (doc: Record<string, unknown>) => void (doc.n = i))
    const events = [...src.store.eventsMissing({})].flat()
    await src.close()
    const dru = await openDru({ id: 'dst', path: ':memory:', inbox: { autoRetry: false } })
    cleanups.push(() => dru.close())
    // What a network session may do while openDru is still running, stood in for here.
    dru.store.ingest(events.slice(0, 2))
    const seen: number[] = []
    dru.onEvent('first', (e) => void seen.push(e.seq))
    expect(dru.inbox.runDue()).toMatchObject({ attempted: 2, done: 2 })
    expect(seen).toEqual([1, 2])
    await new Promise((r) => setImmediate(r))
    dru.store.ingest(events.slice(2))
    expect(seen).toEqual([1, 2, 3])
    dru.onEvent('second', () => undefined)
    expect(dru.inbox.list({ state: 'all' })).toEqual([])
  })

  it('is owed them even when the application compacts before it registers', async () => {
    const src = await openDru({ id: 'src', path: ':memory:' })
    for (const [i, d] of ['x', 'y', 'x'].entries())
      await src.change(d, (doc: Record<string, unknown>) => void (doc.n = i))
    const events = [...src.store.eventsMissing({})].flat()
    await src.close()
    const dru = await openDru({ id: 'dst', path: ':memory:', inbox: { autoRetry: false } })
    cleanups.push(() => dru.close())
    dru.store.ingest(events) // stored by the network while openDru ran, stood in for here
    // Standalone, the floor is everything this DRU holds: without the window's hold all three go.
    const compacted = dru.compact()
    const seen: number[] = []
    dru.onEvent('first', (e) => void seen.push(e.seq))
    await compacted
    dru.inbox.runDue()
    expect(seen).toEqual([1, 2, 3])
    // Once they ran and the window closed, a compaction folds them.
    expect((await dru.compact()).eventsRemoved).toBe(3)
  })
})
