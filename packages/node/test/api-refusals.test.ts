import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { generateKeys } from '@dru/sync'
import { openDru, type Dru } from '../src/index.js'

// What the API cannot do, it refuses: each case is a distinct typed error, and the DRU's
// log, documents and fingerprint are exactly as before the call.

const open: Dru[] = []
const dirs: string[] = []
const servers: Server[] = []
afterEach(async () => {
  while (open.length) await open.pop()!.close()
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r))
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

async function standalone(path = ':memory:'): Promise<Dru> {
  const dru = await openDru({ id: 'a', path })
  open.push(dru)
  await dru.change('order-1', (d) => {
    d.status = 'new'
    d.items = [1, 2]
  })
  return dru
}

/** Everything a refused call must leave alone. */
function state(dru: Dru): unknown {
  return { fp: dru.fingerprint(), doc: dru.get('order-1'), digest: dru.digest().digest, count: dru.store.count() }
}

async function codeOf(fn: () => unknown): Promise<string> {
  try {
    await fn()
  } catch (err) {
    return (err as { code?: string }).code ?? `untyped: ${String(err)}`
  }
  return 'no error'
}

type Doc = Record<string, unknown>

describe('Dru API refusals', () => {
  const asyncCases: Array<[string, (dru: Dru) => unknown]> = [
    ['an async change function', (dru) => dru.change('order-1', async (d: Doc) => void (d.status = 'paid'))],
    [
      'a change function returning a promise that writes after await',
      (dru) =>
        dru.change('order-1', (d: Doc) => {
          d.status = 'paid'
          return (async () => {
            await new Promise((r) => setTimeout(r, 1))
            d.late = true
          })() as unknown as void
        }),
    ],
    ['an async change function on a new document', (dru) => dru.change('order-2', async (d: Doc) => void (d.x = 1))],
    [
      'an async transaction',
      (dru) =>
        dru.transact(
          (async (tx: { change: Dru['change'] }) => void tx.change('order-1', (d: Doc) => (d.status = 'x'))) as never,
        ),
    ],
    [
      'a transaction returning a promise that changes after await',
      (dru) =>
        dru.transact((tx) => {
          tx.change('order-1', (d: Doc) => (d.status = 'before-await'))
          return (async () => {
            await null
            tx.change('order-1', (d: Doc) => (d.status = 'after-await'))
          })()
        }),
    ],
  ]
  it.each(asyncCases)('%s: ASYNC_CHANGE, nothing committed, nothing leaks into the next change', async (_, call) => {
    const dru = await standalone()
    const before = state(dru)
    expect(await codeOf(() => call(dru))).toBe('ASYNC_CHANGE')
    expect(state(dru)).toEqual(before)
    // Let any continuation run: it must not reach the document or the log.
    await new Promise((r) => setTimeout(r, 20))
    expect(state(dru)).toEqual(before)
    await dru.change('order-1', (d: Doc) => (d.note = 'next'))
    expect(dru.get('order-1')).toEqual({ items: [1, 2], note: 'next', status: 'new' })
    expect(dru.get('order-2')).toBeUndefined()
  })

  const badIds: Array<[string, unknown]> = [
    ['empty', ''],
    ['NUL', 'order\u00001'],
    ['newline', 'order\n1'],
    ['escape (terminal control)', 'order\u001b[31m'],
    ['DEL', 'order\u007f'],
    ['C1 control', 'order\u0085'],
    ['lone high surrogate', 'order-\ud800'],
    ['lone low surrogate', '\udc00order'],
    ['too long', 'x'.repeat(1025)],
    ['not a string', 42],
  ]
  it.each(badIds)('a document id that is %s: INVALID_ARGUMENT on change, get and transact', async (_, id) => {
    const dru = await standalone()
    const before = state(dru)
    expect(await codeOf(() => dru.change(id as string, (d: Doc) => (d.x = 1)))).toBe('INVALID_ARGUMENT')
    expect(await codeOf(() => dru.get(id as string))).toBe('INVALID_ARGUMENT')
    expect(await codeOf(() => dru.transact((tx) => tx.change(id as string, (d: Doc) => (d.x = 1))))).toBe(
      'INVALID_ARGUMENT',
    )
    expect(state(dru)).toEqual(before)
  })

  it('accepts ids with spaces, slashes, emoji and other scripts', async () => {
    const dru = await standalone()
    for (const id of ['order 1', 'tenant/acme/order-1', 'заказ-1', '注文-1', 'order-🧾']) {
      await dru.change(id, (d: Doc) => (d.ok = true))
      expect(dru.get(id)).toEqual({ ok: true })
    }
  })

  const cyclic = (): Doc => {
    const o: Doc = { a: 1 }
    o.self = o
    return o
  }
  const deep = (): Doc => {
    const root: Doc = {}
    let at = root
    for (let i = 0; i < 20_000; i++) at = (at.next = {}) as Doc
    return root
  }
  const badValues: Array<[string, () => unknown]> = [
    ['undefined', () => undefined],
    ['a function', () => () => 1],
    ['a symbol', () => Symbol('s')],
    ['a Map', () => new Map([['k', 1]])],
    ['a cyclic object', cyclic],
    ['an object nested 20,000 deep', deep],
    ['NaN', () => NaN],
    ['Infinity', () => Infinity],
    ['-Infinity', () => -Infinity],
    ['NaN inside a nested list', () => ({ list: [1, [2, NaN]] })],
    ['a sparse array', () => [1, , 3]], // eslint-disable-line no-sparse-arrays
    ['a Set inside an object', () => ({ tags: new Set(['a']) })],
    ['a RegExp', () => /x/],
    ['an Error', () => new Error('x')],
    ['a Float64Array', () => new Float64Array([1])],
    ['a bigint beyond 64 bits', () => 2n ** 64n],
    ['an integer beyond 2^53', () => 2 ** 60],
    ['1e300 (an integer to JavaScript)', () => 1e300],
    ['an invalid Date', () => new Date('not a date')],
    ['an object without a prototype', () => Object.assign(Object.create(null), { a: 1 })],
    ['an object with a __proto__ key', () => JSON.parse('{"__proto__": {"x": 1}}')],
    ['an object with a symbol key', () => ({ [Symbol('k')]: 1, a: 1 })],
    ['a string with a lone surrogate', () => 'caf\ud800'],
    [
      'an object nested 300 deep',
      () => {
        const root: Doc = {}
        let at = root
        for (let i = 0; i < 300; i++) at = (at.n = {}) as Doc
        return root
      },
    ],
  ]
  it.each(badValues)('%s as a value: INVALID_VALUE, nothing committed, the document still works', async (_, value) => {
    const dru = await standalone()
    const before = state(dru)
    expect(await codeOf(() => dru.change('order-1', (d: Doc) => (d.bad = value())))).toBe('INVALID_VALUE')
    expect(await codeOf(() => dru.change('order-1', (d: Doc) => void (d.items as unknown[]).push(value())))).toBe(
      'INVALID_VALUE',
    )
    expect(await codeOf(() => dru.change('new-doc', (d: Doc) => ((d.ok = 1), (d.bad = value()))))).toBe('INVALID_VALUE')
    expect(state(dru)).toEqual(before)
    expect(dru.get('new-doc')).toBeUndefined()
    await dru.change('order-1', (d: Doc) => (d.status = 'paid'))
    expect(dru.get('order-1')).toEqual({ items: [1, 2], status: 'paid' })
  })

  it('stores what reads back as written: dates, bytes, class instances (own fields), counters, 64-bit bigints, moved objects', async () => {
    const dru = await standalone()
    class Line {
      constructor(readonly sku: string) {}
    }
    await dru.change('order-1', (d: Doc) => {
      d.at = new Date(0)
      d.raw = new Uint8Array([1, 2])
      d.line = new Line('x-1')
      ;(d.items as unknown[]).push({ sku: 'y' }, [3])
      d.big = 2n ** 40n
      d.copy = { ...(d.line as object) }
    })
    expect(dru.get('order-1')).toEqual({
      at: '1970-01-01T00:00:00.000Z',
      big: 2 ** 40,
      copy: { sku: 'x-1' },
      items: [1, 2, { sku: 'y' }, [3]],
      line: { sku: 'x-1' },
      raw: 'AQI=',
      status: 'new',
    })
  })

  it('a document proxy kept past its change cannot write into a later one', async () => {
    const dru = await standalone()
    let kept: Doc | undefined
    await dru.change('order-1', (d: Doc) => {
      kept = d
      d.status = 'paid'
    })
    expect(() => (kept!.sneaky = true)).toThrow(TypeError) // revoked
    await dru.change('order-1', (d: Doc) => (d.note = 'later'))
    expect(dru.get('order-1')).toEqual({ items: [1, 2], note: 'later', status: 'paid' })
  })

  it('a throw inside the change function commits nothing and keeps the document usable', async () => {
    const dru = await standalone()
    const before = state(dru)
    await expect(
      dru.change('order-1', (d: Doc) => {
        d.status = 'half'
        throw new TypeError('application bug')
      }),
    ).rejects.toThrow('application bug')
    expect(state(dru)).toEqual(before)
  })

  const afterClose: Array<[string, (dru: Dru) => unknown]> = [
    ['change', (dru) => dru.change('order-1', (d: Doc) => (d.x = 1))],
    ['get', (dru) => dru.get('order-1')],
    ['transact', (dru) => dru.transact(() => 1)],
    ['onEvent', (dru) => dru.onEvent('refused', () => undefined)],
    ['subscribe', (dru) => dru.subscribe('*', () => undefined)],
    ['fingerprint', (dru) => dru.fingerprint()],
    ['digest', (dru) => dru.digest()],
    ['docDigest', (dru) => dru.docDigest('order-1')],
    ['isolatedDocuments', (dru) => dru.isolatedDocuments()],
    ['gaps', (dru) => dru.gaps()],
    ['verify', (dru) => dru.verify()],
    ['compactionFloor', (dru) => dru.compactionFloor()],
    ['compact', (dru) => dru.compact()],
    ['decommission', (dru) => dru.decommission('b')],
    ['conflicts.list', (dru) => dru.conflicts.list()],
    ['conflicts.get', (dru) => dru.conflicts.get(1)],
    ['conflicts.resolve', (dru) => dru.conflicts.resolve(1, 'x')],
  ]
  it.each(afterClose)('%s after close(): CLOSED', async (_, call) => {
    const dru = await openDru({ id: 'a', path: ':memory:' })
    await dru.close()
    expect(await codeOf(() => call(dru))).toBe('CLOSED')
    await dru.close() // idempotent
  })

  it('an unknown conflict id: NOT_FOUND (get answers undefined)', async () => {
    const dru = await standalone()
    expect(await codeOf(() => dru.conflicts.resolve(12345, 'x'))).toBe('NOT_FOUND')
    expect(dru.conflicts.get(12345)).toBeUndefined()
  })

  it('acks no cluster can give: INVALID_ARGUMENT at once, nothing committed', async () => {
    const keys = { a: generateKeys(), b: generateKeys() }
    const dru = await openDru({
      id: 'a',
      path: ':memory:',
      listen: { host: '127.0.0.1', port: 0 },
      secret: 'refusals-test-secret-0123',
      keys: { privateKey: keys.a.privateKey, publicKeys: { a: keys.a.publicKey, b: keys.b.publicKey } },
      allowWritesWhileRestoring: true,
    })
    open.push(dru)
    const before = dru.fingerprint()
    const started = Date.now()
    expect(await codeOf(() => dru.change('d', (d: Doc) => (d.x = 1), { acks: 2, timeoutMs: 60_000 }))).toBe(
      'INVALID_ARGUMENT',
    )
    expect(Date.now() - started).toBeLessThan(5_000) // refused, not timed out (the wait would be 60 s)
    expect(await codeOf(() => dru.change('d', (d: Doc) => (d.x = 1), { acks: -1 }))).toBe('INVALID_ARGUMENT')
    expect(await codeOf(() => dru.change('d', (d: Doc) => (d.x = 1), { acks: 1.5 }))).toBe('INVALID_ARGUMENT')
    expect(dru.fingerprint()).toEqual(before)
    // A standalone DRU has nobody to ack.
    const alone = await standalone()
    expect(await codeOf(() => alone.change('d', (d: Doc) => (d.x = 1), { acks: 1 }))).toBe('INVALID_ARGUMENT')
  })

  it('a full disk: STORAGE_FULL for change and transact, nothing committed, close() resolves, every committed write is there after reopening', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dru-full-'))
    dirs.push(dir)
    const path = join(dir, 'a.db')
    const dru = await standalone(path)
    for (let i = 0; i < 20; i++) await dru.change(`doc-${i}`, (d: Doc) => (d.n = i))
    // SQLite's page limit stands in for the disk: the next page it needs is refused with SQLITE_FULL.
    const pages = dru.store.db.pragma('page_count', { simple: true }) as number
    dru.store.db.pragma(`max_page_count = ${pages}`)
    const before = state(dru)
    const big = 'x'.repeat(64 * 1024)
    const codes = new Set<string>()
    for (let i = 0; i < 50; i++)
      codes.add(await codeOf(() => dru.change(`big-${i}`, (d: Doc) => (d.blob = `${i}${big}`))))
    expect([...codes]).toContain('STORAGE_FULL')
    expect([...codes].filter((c) => c !== 'STORAGE_FULL' && c !== 'no error')).toEqual([])
    const committed = [...Array(50).keys()].filter((i) => dru.get(`big-${i}`) !== undefined)
    expect(await codeOf(() => dru.transact((tx) => tx.change('big-tx', (d: Doc) => (d.blob = big))))).toBe(
      'STORAGE_FULL',
    )
    expect(dru.get('big-tx')).toBeUndefined()
    expect(dru.get('order-1')).toEqual((before as { doc: unknown }).doc)
    await dru.close() // snapshots it cannot write are skipped: the log holds everything
    open.splice(open.indexOf(dru), 1)

    const again = await openDru({ id: 'a', path })
    open.push(again)
    expect(again.get('order-1')).toEqual({ items: [1, 2], status: 'new' })
    for (let i = 0; i < 20; i++) expect(again.get(`doc-${i}`)).toEqual({ n: i })
    for (let i = 0; i < 50; i++) expect(again.get(`big-${i}`) !== undefined).toBe(committed.includes(i))
    expect(again.get('big-tx')).toBeUndefined()
  })

  it('duplicate peer ids: CONFIG_INVALID naming the field', async () => {
    const keys = { a: generateKeys(), b: generateKeys() }
    const err = await openDru({
      id: 'a',
      path: ':memory:',
      secret: 'refusals-test-secret-0123',
      keys: { privateKey: keys.a.privateKey, publicKeys: { a: keys.a.publicKey, b: keys.b.publicKey } },
      peers: [
        { id: 'b', url: 'ws://127.0.0.1:1' },
        { id: 'b', url: 'ws://127.0.0.1:2' },
      ],
    }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'CONFIG_INVALID', details: { field: 'peers' } })
    expect(String((err as Error).message)).toMatch(/listed twice/)
  })

  it('a taken admin or sync port: ADDRESS_IN_USE naming the address, and nothing left open', async () => {
    const taken = createServer()
    servers.push(taken)
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r))
    const port = (taken.address() as { port: number }).port
    const dir = mkdtempSync(join(tmpdir(), 'dru-port-'))
    dirs.push(dir)
    const path = join(dir, 'a.db')
    const admin = await openDru({ id: 'a', path, admin: { host: '127.0.0.1', port } }).catch((e: unknown) => e)
    expect(admin).toMatchObject({ code: 'ADDRESS_IN_USE' })
    expect(String((admin as Error).message)).toContain(`127.0.0.1:${port}`)
    const keys = generateKeys()
    const sync = await openDru({
      id: 'a',
      path,
      listen: { host: '127.0.0.1', port },
      secret: 'refusals-test-secret-0123',
      keys: { privateKey: keys.privateKey, publicKeys: { a: keys.publicKey } },
    }).catch((e: unknown) => e)
    expect(sync).toMatchObject({ code: 'ADDRESS_IN_USE' })
    // The failed opens released the database: it opens again at once.
    const ok = await openDru({ id: 'a', path })
    open.push(ok)
  })
})
