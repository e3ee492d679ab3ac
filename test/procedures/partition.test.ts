import { afterEach, describe, expect, it } from 'vitest'
import { Cluster, SYNC, sleep } from './cluster.js'

let cluster: Cluster | undefined
afterEach(async () => {
  await cluster?.dispose()
  cluster = undefined
})

describe('procedure: region partitioned then healed', () => {
  let measured = ''
  afterEach(() => {
    if (measured) console.log(measured)
  })
  it('goes isolated within the heartbeat timeout and keeps writing, then catching-up/verifying with /readyz 503, then active with equal fingerprints', async () => {
    const c = (cluster = await Cluster.create(['a', 'b', 'c']))
    await Promise.all(['a', 'b', 'c'].map((id) => c.start(id)))
    await c.waitConverged(['a', 'b', 'c'])
    expect(await c.readyz('c')).toBe(200)
    for (let i = 0; i < 3; i++) expect((await c.write('a', `order-${i}`, { qty: i })).status).toBe(200)
    await c.waitConverged(['a', 'b', 'c'])

    // ---- cut c off silently: open connections stay up but carry nothing ---------------
    const cutAt = Date.now()
    c.cut('c', 'silent')
    await c.waitFor('c isolated', async () => (await c.status('c')).state === 'isolated', 5_000, 10)
    const detectMs = Date.now() - cutAt
    // Only the heartbeat timeout can tell a silent link is dead: not before it, and soon after.
    expect(detectMs).toBeGreaterThanOrEqual(SYNC.heartbeatTimeoutMs - SYNC.heartbeatMs)
    expect(detectMs).toBeLessThan(SYNC.heartbeatTimeoutMs + 1_000)
    expect(await c.readyz('c')).toBe(503)
    // Availability first: the isolated DRU keeps taking local writes, and so do the others.
    for (let i = 0; i < 5; i++) expect((await c.write('c', `order-c${i}`, { region: 'c', n: i })).status).toBe(200)
    expect((await c.write('a', 'order-a-during', { region: 'a' })).status).toBe(200)
    const during = await c.status('c')
    expect(during.state).toBe('isolated')
    expect(during.writable).toBe(true)
    await sleep(200)

    // ---- heal ---------------------------------------------------------------------------
    const unit = c.unit('c')
    unit.transitions.length = 0
    const seen503: string[] = []
    const healAt = Date.now()
    c.heal('c')
    // Poll fast so the transient states are observed over HTTP too, not only in the log.
    await c.waitFor(
      'c active',
      async () => {
        const [s, code] = await Promise.all([c.status('c'), c.readyz('c')])
        if (s.state !== 'active' && code === 503) seen503.push(s.state)
        return s.state === 'active' && code === 200
      },
      10_000,
      5,
    )
    // The log lines arrive over a pipe: wait until the child's own record of the heal is in.
    await c.waitFor('log shows active', () => unit.transitions.some((t) => t.to === 'active'), 5_000)
    const path = unit.transitions.map((t) => t.to)
    expect(path[0]).toBe('catching-up')
    expect(path).toContain('verifying')
    expect(path.at(-1)).toBe('active')
    expect(path.indexOf('verifying')).toBeGreaterThan(path.indexOf('catching-up'))
    // /readyz was 503 while not active (observed at least in isolated or a reconciliation state).
    expect(seen503.length).toBeGreaterThan(0)
    // Every state seen over HTTP before active answered /readyz 503.
    expect(seen503.every((s) => ['isolated', 'catching-up', 'verifying'].includes(s))).toBe(true)
    const final = await c.waitConverged(['a', 'b', 'c'])
    measured = `partition: silent cut noticed after ${detectMs} ms (heartbeat timeout ${SYNC.heartbeatTimeoutMs} ms); heal to active ${Date.now() - healAt} ms`
    expect(new Set(final.map((s) => s.fingerprint.digest)).size).toBe(1)
    expect(await c.read('a', 'order-c4')).toEqual({ region: 'c', n: 4 })
    expect(await c.read('c', 'order-a-during')).toEqual({ region: 'a' })
  })
})
