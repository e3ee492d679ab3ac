import { afterEach, describe, expect, it } from 'vitest'
import { LinkProxy } from '@dru/testkit'
import { cluster, DruProcess, killAll, sameFp, tempDir, waitFor } from './helpers.js'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  await killAll()
  for (const c of cleanups.splice(0)) await c()
})

describe('sync between real processes', () => {
  it('two DRUs exchange their logs both ways and push new commits live', async () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const keys = cluster(['a', 'b'])
    const a = await DruProcess.start({ id: 'a', path: `${dir}/a.db`, keys: keys.keys('a') })
    await a.call('write', { n: 500, perCommit: 7 })
    const b = await DruProcess.start({
      id: 'b',
      path: `${dir}/b.db`,
      keys: keys.keys('b'),
      peers: [{ id: 'a', url: `ws://127.0.0.1:${a.port}` }],
    })
    await b.call('write', { n: 300, perCommit: 3 })
    await waitFor('a and b converge', async () => sameFp(await a.fp(), await b.fp()))
    expect((await a.fp()).count).toBe(800)
    await a.call('write', { n: 1 })
    await waitFor('live push', async () => (await b.fp()).count === 801)
    const status = await b.call<Array<{ id: string; connected: boolean }>>('status')
    expect(status.find((s) => s.id === 'a')?.connected).toBe(true)
  })

  it('three DRUs all write during a partition (one link blackholed, two reset) and converge after the heal', async () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const keys = cluster(['a', 'b', 'c'])
    const [ab, ac, bc] = await Promise.all([LinkProxy.start(), LinkProxy.start(), LinkProxy.start()])
    cleanups.push(
      () => ab.close(),
      () => ac.close(),
      () => bc.close(),
    )
    const fast = { heartbeatMs: 100, heartbeatTimeoutMs: 600 }
    const c = await DruProcess.start({ id: 'c', path: `${dir}/c.db`, keys: keys.keys('c'), ...fast })
    const b = await DruProcess.start({
      id: 'b',
      path: `${dir}/b.db`,
      keys: keys.keys('b'),
      peers: [{ id: 'c', url: bc.url }],
      ...fast,
    })
    const a = await DruProcess.start({
      id: 'a',
      path: `${dir}/a.db`,
      keys: keys.keys('a'),
      peers: [
        { id: 'b', url: ab.url },
        { id: 'c', url: ac.url },
      ],
      ...fast,
    })
    ab.target = b.port
    ac.target = c.port
    bc.target = c.port
    for (const d of [a, b, c]) await d.call('write', { n: 200, perCommit: 4, docs: 50 })
    await waitFor('initial convergence', async () => {
      const [x, y, z] = await Promise.all([a.fp(), b.fp(), c.fp()])
      return sameFp(x, y) && sameFp(y, z) && x.count === 600
    })

    // Partition: every link down. a-b silently (blackhole: sockets stay open), the others reset.
    ab.set('blackhole')
    ac.set('cut')
    bc.set('cut')
    for (const d of [a, b, c]) await d.call('write', { n: 300, perCommit: 5, docs: 50 })
    // The blackholed session is only noticed by the heartbeat.
    await waitFor(
      'heartbeat notices the silent partition',
      async () => {
        const st = await a.call<Array<{ id: string; connected: boolean; lastError: { code: string } | null }>>('status')
        return st.every((p) => !p.connected)
      },
      10_000,
    )
    const during = await Promise.all([a.fp(), b.fp(), c.fp()])
    expect(during.map((f) => f.count)).toEqual([900, 900, 900]) // each has its own 300 only
    expect(sameFp(during[0]!, during[1]!)).toBe(false)

    ab.set('pass')
    ac.set('pass')
    bc.set('pass')
    const healedAt = Date.now()
    await waitFor(
      'convergence after heal',
      async () => {
        const [x, y, z] = await Promise.all([a.fp(), b.fp(), c.fp()])
        return sameFp(x, y) && sameFp(y, z) && x.count === 1500
      },
      30_000,
    )
    expect(Date.now() - healedAt).toBeLessThan(30_000)
    // Every remote event applied exactly once at each DRU.
    for (const d of [a, b, c]) {
      const eff = await d.call<{ rows: number; distinct_: number }>('effects')
      expect(eff).toEqual({ rows: 1000, distinct_: 1000 })
      await d.call('verify')
    }
  })

  it("line topology a-b-c: a's events reach c through b after a is killed (forwarded, signatures checked at c)", async () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const keys = cluster(['a', 'b', 'c'])
    const b = await DruProcess.start({ id: 'b', path: `${dir}/b.db`, keys: keys.keys('b') })
    const a = await DruProcess.start({
      id: 'a',
      path: `${dir}/a.db`,
      keys: keys.keys('a'),
      peers: [{ id: 'b', url: `ws://127.0.0.1:${b.port}` }],
    })
    const last = await a.call<{ origin: string; seq: number }>('write', { n: 400, perCommit: 9 })
    await waitFor("b holds a's events", async () => (await b.fp()).fp.vv[last.origin] === last.seq)
    const aFp = await a.fp()
    await a.kill()
    const c = await DruProcess.start({
      id: 'c',
      path: `${dir}/c.db`,
      keys: keys.keys('c'),
      peers: [{ id: 'b', url: `ws://127.0.0.1:${b.port}` }],
    })
    await c.call('write', { n: 10 })
    await waitFor("c holds a's events via b", async () => (await c.fp()).fp.vv[last.origin] === last.seq)
    expect((await c.fp()).fp.heads[last.origin]).toBe(aFp.fp.heads[last.origin])
    await waitFor('b and c converge', async () => sameFp(await b.fp(), await c.fp()))
    const st = await c.call<Array<{ id: string; quarantined: boolean }>>('status')
    expect(st.every((p) => !p.quarantined)).toBe(true)
  })

  it('two DRUs that dial each other keep exactly one session and stay up', async () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const keys = cluster(['a', 'b'])
    const pa = await LinkProxy.start()
    cleanups.push(() => pa.close())
    const b = await DruProcess.start({
      id: 'b',
      path: `${dir}/b.db`,
      keys: keys.keys('b'),
      peers: [{ id: 'a', url: pa.url }],
    })
    const a = await DruProcess.start({
      id: 'a',
      path: `${dir}/a.db`,
      keys: keys.keys('a'),
      peers: [{ id: 'b', url: `ws://127.0.0.1:${b.port}` }],
    })
    pa.target = a.port
    await a.call('write', { n: 50 })
    await b.call('write', { n: 50 })
    await waitFor('converged', async () => sameFp(await a.fp(), await b.fp()) && (await a.fp()).count === 100)
    await new Promise((r) => setTimeout(r, 1000))
    const ev = await a.call<Array<{ name: string; peer: string }>>('peerEvents')
    const stA = await a.call<Array<{ id: string; connected: boolean }>>('status')
    const stB = await b.call<Array<{ id: string; connected: boolean }>>('status')
    expect(stA[0]!.connected && stB[0]!.connected).toBe(true)
    // At most one handover while both dials race; no flapping afterwards.
    expect(ev.filter((e) => e.name === 'peer-up').length).toBeLessThanOrEqual(2)
    const before = ev.length
    await new Promise((r) => setTimeout(r, 500))
    expect((await a.call<unknown[]>('peerEvents')).length).toBe(before)
  })
})
