import { afterEach, describe, expect, it } from 'vitest'
import { LinkProxy } from '@dru/testkit'
import { cluster, DruProcess, killAll, SECRET, tempDir, waitFor } from './helpers.js'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  await killAll()
  for (const c of cleanups.splice(0)) await c()
})

describe('semi-sync acks and handshake refusals between processes', () => {
  it('waitForAcks resolves after k durable acks, times out with ACK_TIMEOUT when a peer is cut off, and the event still replicates', async () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const keys = cluster(['a', 'b', 'c'])
    const toC = await LinkProxy.start()
    cleanups.push(() => toC.close())
    const fast = { heartbeatMs: 100, heartbeatTimeoutMs: 600 }
    const b = await DruProcess.start({ id: 'b', path: `${dir}/b.db`, keys: keys.keys('b'), ...fast })
    const c = await DruProcess.start({ id: 'c', path: `${dir}/c.db`, keys: keys.keys('c'), ...fast })
    toC.target = c.port
    const a = await DruProcess.start({
      id: 'a',
      path: `${dir}/a.db`,
      keys: keys.keys('a'),
      peers: [
        { id: 'b', url: `ws://127.0.0.1:${b.port}` },
        { id: 'c', url: toC.url },
      ],
      durability: 'machine',
      ...fast,
    })
    await waitFor('both connected', async () =>
      (await a.call<Array<{ connected: boolean }>>('status')).every((p) => p.connected),
    )
    const e1 = await a.call<{ origin: string; seq: number }>('write', { n: 3 })
    await a.call('waitForAcks', { event: e1, k: 2, timeoutMs: 10_000 })
    // The acked vectors are visible in status and cover the event.
    const st = await a.call<Array<{ id: string; ackedVv: Record<string, number>; lag: number }>>('status')
    expect(st.map((p) => p.ackedVv[e1.origin])).toEqual([3, 3])

    toC.set('cut')
    await waitFor(
      'c down',
      async () =>
        !(await a.call<Array<{ id: string; connected: boolean }>>('status')).find((p) => p.id === 'c')!.connected,
      10_000,
    )
    const e2 = await a.call<{ origin: string; seq: number }>('write', { n: 1 })
    const t0 = Date.now()
    await expect(a.call('waitForAcks', { event: e2, k: 2, timeoutMs: 400 })).rejects.toMatchObject({
      code: 'ACK_TIMEOUT',
    })
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350)
    await a.call('waitForAcks', { event: e2, k: 1, timeoutMs: 5000 }) // b alone
    expect((await a.fp()).fp.vv[e2.origin]).toBe(e2.seq) // still committed locally
    const lagC = (await a.call<Array<{ id: string; lag: number }>>('status')).find((p) => p.id === 'c')!.lag
    expect(lagC).toBe(1)

    // Heal: the event keeps replicating and the k=2 wait now succeeds.
    const pending = a.call('waitForAcks', { event: e2, k: 2, timeoutMs: 15_000 })
    toC.set('pass')
    await pending
    expect((await c.fp()).fp.vv[e2.origin]).toBe(e2.seq)
  })

  it('a DRU with the wrong secret is refused with AUTH_FAILED, backs off, and changes nothing', async () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const keys = cluster(['a', 'z'])
    const a = await DruProcess.start({ id: 'a', path: `${dir}/a.db`, keys: keys.keys('a') })
    await a.call('write', { n: 10 })
    const before = await a.fp()
    const z = await DruProcess.start({
      id: 'z',
      path: `${dir}/z.db`,
      keys: keys.keys('z'),
      secret: `${SECRET}-wrong`,
      peers: [{ id: 'a', url: `ws://127.0.0.1:${a.port}` }],
    })
    await z.call('write', { n: 5 })
    await new Promise((r) => setTimeout(r, 2000))
    const st = (
      await z.call<Array<{ id: string; connected: boolean; attempts: number; lastError: { code: string } | null }>>(
        'status',
      )
    )[0]!
    expect(st.connected).toBe(false)
    expect(st.lastError?.code).toBe('AUTH_FAILED')
    // Backoff (50 ms doubling to 500 ms in the fixture): a handful of attempts in 2 s, not a hot loop.
    expect(st.attempts).toBeGreaterThanOrEqual(2)
    expect(st.attempts).toBeLessThanOrEqual(20)
    expect(await a.fp()).toEqual(before)
    expect((await z.fp()).count).toBe(5)
  })
})
