import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { LifecycleState, checkRamp, readyWeight } from '@dru/core'
import { LinkProxy } from '@dru/testkit'
import { generateKeys, openDru, runtimeOf, type Dru } from '../src/index.js'
import { closedAfterEach, until } from './fixtures/wait.js'

// The readiness weight a load balancer follows after a DRU rejoins: 0 unless active, then from
// ramp.startPercent to 100 over ramp.windowMs. The DRU's clock is injected, so the test moves
// time instead of waiting for it.

const cleanups = closedAfterEach()

const states = fc.constantFrom(...Object.values(LifecycleState))
const ramps = fc.record({ startPercent: fc.integer({ min: 0, max: 100 }), windowMs: fc.integer({ min: 0, max: 1e7 }) })

describe('readyWeight (pure)', () => {
  it('is 0 unless active; from startPercent to 100 over the window; never decreasing in time; an integer in 0–100', () => {
    fc.assert(
      fc.property(states, ramps, fc.nat(), fc.nat(), fc.nat(), (state, ramp, since, d1, d2) => {
        const a = readyWeight(state, since, since + d1, ramp)
        const b = readyWeight(state, since, since + d1 + d2, ramp)
        expect(Number.isInteger(a) && a >= 0 && a <= 100).toBe(true)
        if (state !== 'active') {
          expect([a, b]).toEqual([0, 0])
          return
        }
        expect(b).toBeGreaterThanOrEqual(a)
        if (ramp.windowMs === 0 || d1 >= ramp.windowMs) expect(a).toBe(100)
        if (d1 === 0 && ramp.windowMs > 0) expect(a).toBe(Math.floor(ramp.startPercent))
        // A clock that steps back holds the weight at the start, never below.
        if (ramp.windowMs > 0) expect(readyWeight(state, since + 1000, since, ramp)).toBe(ramp.startPercent)
      }),
      { numRuns: 500 },
    )
  })

  it('config: ramp is checked like every other field', () => {
    expect(checkRamp({ startPercent: 10, windowMs: 60_000 })).toBeUndefined()
    expect(checkRamp({ startPercent: 101 })).toMatch(/startPercent/)
    expect(checkRamp({ windowMs: -1 })).toMatch(/windowMs/)
    expect(checkRamp({ window: 5 })).toMatch(/unknown field "window"/)
    expect(checkRamp('fast')).toMatch(/must be an object/)
  })
})

describe('the ramp after a heal', () => {
  it('a DRU cut off and healed reports weight 0, then 20 % on becoming active, 60 % half a window later, 100 % after it', async () => {
    const keys = { a: generateKeys(), b: generateKeys() }
    const publicKeys = { a: keys.a.publicKey, b: keys.b.publicKey }
    const common = {
      path: ':memory:',
      secret: 'ramp-test-secret-0123456789',
      // The test jumps the DRU's clock by 30 s while a session is open: a heartbeat timeout below
      // that would close the session on the next tick and race the reads (seen under load).
      sync: { heartbeatMs: 100, heartbeatTimeoutMs: 120_000, startupGraceMs: 300 },
    }
    const b: Dru = await openDru({
      ...common,
      id: 'b',
      listen: { host: '127.0.0.1', port: 0 },
      keys: { privateKey: keys.b.privateKey, publicKeys },
    })
    cleanups.push(() => b.close())
    const link = await LinkProxy.start({ target: runtimeOf(b).network!.sync.port })
    cleanups.push(() => link.close())
    let offset = 0
    const a: Dru = await openDru({
      ...common,
      id: 'a',
      peers: [{ id: 'b', url: link.url }],
      keys: { privateKey: keys.a.privateKey, publicKeys },
      admin: { host: '127.0.0.1', port: 0 },
      ramp: { startPercent: 20, windowMs: 60_000 },
      now: () => Date.now() + offset,
    })
    cleanups.push(() => a.close())
    const admin = runtimeOf(a).admin!.url
    const readyz = async () => (await (await fetch(`${admin}/readyz`)).json()) as { weight: number; state: string }
    const status = async () => (await (await fetch(`${admin}/status`)).json()) as { readyWeight: number }
    const gauge = async () =>
      Number(/^dru_ready_weight\{[^}]*\} (\d+)$/m.exec(await (await fetch(`${admin}/metrics`)).text())?.[1])

    await until('a active', () => a.state() === 'active')
    link.cut()
    await until('a isolated', () => a.state() === 'isolated')
    expect(await readyz()).toMatchObject({ state: 'isolated', weight: 0 })
    expect(await gauge()).toBe(0)

    offset += 3_600_000 // an hour cut off changes nothing: the ramp starts when it is active again
    link.heal()
    await until('a active again', () => a.state() === 'active')
    const first = (await readyz()).weight
    // Real milliseconds pass between the transition and the read: 20 % plus at most a sliver.
    expect(first).toBeGreaterThanOrEqual(20)
    expect(first).toBeLessThan(25)
    offset += 30_000
    const half = await status()
    expect(half.readyWeight).toBeGreaterThanOrEqual(60)
    expect(half.readyWeight).toBeLessThan(65)
    expect(await gauge()).toBeGreaterThanOrEqual(60)
    offset += 30_000
    expect(await readyz()).toMatchObject({ state: 'active', weight: 100 })
    expect(await gauge()).toBe(100)
  })
})
