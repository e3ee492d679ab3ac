import { afterEach, describe, expect, it } from 'vitest'
import { isDruError } from '@dru/core'
import { LinkProxy } from '@dru/testkit'
import { generateKeys, openDru, runtimeOf } from '../src/index.js'

// dru.ready(): the way an embedder waits for a networked DRU instead of polling state() or
// catching NOT_WRITABLE on its first write.

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

const codeOf = async (p: Promise<unknown>) => {
  try {
    await p
  } catch (err) {
    if (isDruError(err)) return err.code
    throw err
  }
  return 'resolved'
}

describe('dru.ready()', () => {
  it('a standalone DRU is active and writable at once', async () => {
    const dru = await openDru({ id: 'solo', path: ':memory:' })
    cleanups.push(() => dru.close())
    expect(await dru.ready()).toBe('active')
    expect(await dru.ready({ state: 'writable' })).toBe('active')
  })

  it('a networked DRU cut off from its peer is not active (TIMEOUT); once the link heals, ready() resolves and the first write is accepted', async () => {
    const keys = { a: generateKeys(), b: generateKeys() }
    const publicKeys = { a: keys.a.publicKey, b: keys.b.publicKey }
    const common = {
      secret: 'ready-test-secret-0123456',
      sync: { heartbeatMs: 100, heartbeatTimeoutMs: 600, startupGraceMs: 300 },
    }
    const b = await openDru({
      id: 'b',
      path: ':memory:',
      listen: { host: '127.0.0.1', port: 0 },
      keys: { privateKey: keys.b.privateKey, publicKeys },
      ...common,
    })
    cleanups.push(() => b.close())
    const link = await LinkProxy.start({ target: runtimeOf(b).network!.sync.port, mode: 'cut' })
    cleanups.push(() => link.close())
    const a = await openDru({
      id: 'a',
      path: ':memory:',
      peers: [{ id: 'b', url: `ws://127.0.0.1:${link.port}` }],
      keys: { privateKey: keys.a.privateKey, publicKeys },
      ...common,
    })
    cleanups.push(() => a.close())

    expect(a.state()).not.toBe('active')
    expect(await codeOf(a.ready({ timeoutMs: 200 }))).toBe('TIMEOUT')
    const waiting = a.ready()
    link.heal()
    expect(await waiting).toBe('active')
    expect(a.state()).toBe('active')
    await a.change<{ total?: number }>(
      'order-1',
      (o) => {
        o.total = 7
      },
      { acks: 1 },
    )
    expect(b.get<{ total: number }>('order-1')?.total).toBe(7)
    expect(await b.ready({ state: 'writable' })).toBe(b.state())
  })

  it('rejects a bad state or timeout with INVALID_ARGUMENT, and CLOSED when the DRU closes first', async () => {
    const dru = await openDru({ id: 'solo', path: ':memory:' })
    expect(await codeOf(dru.ready({ state: 'ready' as never }))).toBe('INVALID_ARGUMENT')
    expect(await codeOf(dru.ready({ timeoutMs: -1 }))).toBe('INVALID_ARGUMENT')
    expect(await codeOf(dru.ready({ timeoutMs: '100' as never }))).toBe('INVALID_ARGUMENT')
    const never = dru.ready({ state: 'isolated' })
    await dru.close()
    expect(await codeOf(never)).toBe('CLOSED')
    expect(await codeOf(dru.ready())).toBe('CLOSED')
  })
})
