import { afterEach, describe, expect, it } from 'vitest'
import { Cluster } from './cluster.js'

let cluster: Cluster | undefined
afterEach(async () => {
  await cluster?.dispose()
  cluster = undefined
})

describe('procedure: a write that waits for acknowledgement (acks: 1)', () => {
  it('resolves while a peer is up, rejects with ACK_TIMEOUT when none is reachable, and the event still replicates after heal', async () => {
    const c = (cluster = await Cluster.create(['a', 'b']))
    await Promise.all(['a', 'b'].map((id) => c.start(id)))
    await c.waitConverged(['a', 'b'])

    const ok = await c.write('a', 'order-1', { qty: 1 }, '?acks=1&timeoutMs=3000')
    expect(ok.status).toBe(200)
    // Resolved means b durably holds it now, not eventually.
    const e1 = ok.body.event as { origin: string; seq: number }
    expect((await c.status('b')).fingerprint.vv[e1.origin]).toBeGreaterThanOrEqual(e1.seq)

    c.cut('a')
    await c.waitFor('a isolated', async () => (await c.status('a')).state === 'isolated', 5_000)
    const started = Date.now()
    const timedOut = await c.write('a', 'order-2', { qty: 2 }, '?acks=1&timeoutMs=400')
    expect(Date.now() - started).toBeGreaterThanOrEqual(350)
    expect(timedOut.status).toBe(504)
    expect(timedOut.body.code).toBe('ACK_TIMEOUT')
    expect(String(timedOut.body.message)).toContain('stays committed')
    // Committed locally all the same.
    expect(await c.read('a', 'order-2')).toEqual({ qty: 2 })
    expect(await c.read('b', 'order-2')).toBeNull()

    c.heal('a')
    await c.waitConverged(['a', 'b'])
    expect(await c.read('b', 'order-2')).toEqual({ qty: 2 })
  })
})
