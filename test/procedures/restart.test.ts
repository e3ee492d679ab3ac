import { afterEach, describe, expect, it } from 'vitest'
import { Cluster, scanForForks } from './cluster.js'

let cluster: Cluster | undefined
afterEach(async () => {
  await cluster?.dispose()
  cluster = undefined
})

const IDS = ['a', 'b', 'c']

/** Stops every unit cleanly and checks that no (origin, seq) has two hashes in any log. */
async function assertNoFork(c: Cluster): Promise<Map<string, Map<string, string>>> {
  for (const id of IDS) await c.kill(id, 'SIGTERM')
  const { forks, events } = scanForForks(IDS.map((id) => c.unit(id).dbPath))
  expect(forks).toEqual([])
  const sets = [...events.values()].map((m) => [...m.keys()].sort().join(','))
  expect(new Set(sets).size).toBe(1)
  return events
}

describe('procedure: region crashed and restarted with its disk', () => {
  it('comes back after SIGKILL with a new incarnation, converges, and loses nothing', async () => {
    const c = (cluster = await Cluster.create(IDS))
    await Promise.all(IDS.map((id) => c.start(id)))
    await c.waitConverged(IDS)
    for (let i = 0; i < 5; i++) expect((await c.write('c', `c-${i}`, { n: i })).status).toBe(200)
    await c.waitConverged(IDS)
    const before = await c.status('c')

    await c.kill('c', 'SIGKILL')
    for (let i = 0; i < 3; i++) expect((await c.write('a', `a-${i}`, { n: i })).status).toBe(200)
    await c.start('c')
    const after = await c.status('c')
    // Every start writes under a fresh incarnation: never a reused (origin, seq).
    expect(after.origin).not.toBe(before.origin)
    expect(c.unit('c').lines.some((l) => l.msg === 'dru open' && l.origin === after.origin)).toBe(true)
    // Crash with the disk is not a restore: its own events are all still here, so it stays writable.
    expect(after.writable).toBe(true)
    expect(after.fingerprint.vv[before.origin]).toBe(5)

    await c.waitConverged(IDS)
    expect((await c.write('c', 'c-after', { ok: true })).status).toBe(200)
    const final = await c.waitConverged(IDS)
    expect(final[0]!.fingerprint.vv[after.origin]).toBe(1)
    for (let i = 0; i < 5; i++) expect(await c.read('b', `c-${i}`)).toEqual({ n: i })
    for (let i = 0; i < 3; i++) expect(await c.read('c', `a-${i}`)).toEqual({ n: i })
    await assertNoFork(c)
  })
})

describe('procedure: region lost its disk', () => {
  it('restarts empty under the same id with a new incarnation, refuses writes until every replicated event is back', async () => {
    const c = (cluster = await Cluster.create(IDS))
    await Promise.all(IDS.map((id) => c.start(id)))
    await c.waitConverged(IDS)
    for (let i = 0; i < 6; i++) expect((await c.write('c', `c-${i}`, { n: i })).status).toBe(200)
    const replicated = (await c.waitConverged(IDS))[0]!.fingerprint.vv
    const oldOrigin = (await c.status('c')).origin

    // No waiting: an empty disk draws a fresh random incarnation like any other start.
    await c.kill('c', 'SIGKILL')
    c.wipe('c')
    c.cut('c') // restart before the network is back: restore mode is visible while isolated
    await c.start('c')
    const s = await c.status('c')
    expect(s.id).toBe('c')
    expect(s.origin).not.toBe(oldOrigin)
    expect(s.writable).toBe(false)
    expect(s.fingerprint.vv[oldOrigin] ?? 0).toBe(0)
    const refused = await c.write('c', 'too-early', { x: 1 })
    expect(refused.status).toBe(503)
    expect(refused.body.code).toBe('NOT_WRITABLE')
    expect(await c.readyz('c')).toBe(503)

    c.heal('c')
    await c.waitConverged(IDS)
    const back = await c.status('c')
    expect(back.writable).toBe(true)
    // Every event it had replicated is back, its own old origin included.
    for (const [origin, seq] of Object.entries(replicated)) expect(back.fingerprint.vv[origin]).toBe(seq)
    for (let i = 0; i < 6; i++) expect(await c.read('c', `c-${i}`)).toEqual({ n: i })
    expect((await c.write('c', 'now-ok', { x: 2 })).status).toBe(200)
    await c.waitConverged(IDS)
    const events = await assertNoFork(c)
    expect([...events.values()][0]!.has(`${back.origin}#1`)).toBe(true)
  })
})
