import { execFile } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import { CLI, Cluster, scanForForks, type Status } from './cluster.js'

// Compaction, bootstrap of a DRU below the floor, and decommission, end to end: real DRU
// processes on 127.0.0.1 driven through the `dru` CLI, as an operator would.

let cluster: Cluster | undefined
afterEach(async () => {
  await cluster?.dispose()
  cluster = undefined
})

const IDS = ['a', 'b', 'c']

function dru(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr })
    })
  })
}

async function compact(c: Cluster, id: string): Promise<Record<string, unknown>> {
  const r = await dru('compact', '--admin', c.unit(id).adminUrl, '--json', '--quiet')
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout) as Record<string, unknown>
}

type LogStatus = Status & { log: { events: number; base: Record<string, number>; floor: Record<string, number> } }
const logOf = async (c: Cluster, id: string) => ((await c.status(id)) as LogStatus).log

async function readAll(c: Cluster, id: string, docs: string[]): Promise<unknown[]> {
  return Promise.all(docs.map((d) => c.read(id, d)))
}

describe('procedure: compaction, bootstrap below the floor, decommission', () => {
  it('shrinks the log with documents unchanged, bootstraps a DRU that lost its disk from snapshots, and advances the floor only after decommission', async () => {
    const c = (cluster = await Cluster.create(IDS))
    await Promise.all(IDS.map((id) => c.start(id)))
    await c.waitConverged(IDS)
    const docs: string[] = []
    for (let i = 0; i < 30; i++) {
      const doc = `order-${i % 10}`
      if (!docs.includes(doc)) docs.push(doc)
      expect((await c.write(IDS[i % 3]!, doc, { [`step${i}`]: i, last: IDS[i % 3] })).status).toBe(200)
    }
    await c.waitConverged(IDS)
    // Acks are persisted and exchanged asynchronously: wait until a's floor covers everything.
    await c.waitFor('a floor at its vector', async () => {
      const s = (await c.status('a')) as LogStatus
      return JSON.stringify(s.log.floor) === JSON.stringify(s.fingerprint.vv)
    })
    const before = await readAll(c, 'a', docs)
    const eventsBefore = (await logOf(c, 'a')).events
    expect(eventsBefore).toBeGreaterThanOrEqual(30)

    // 1. Compaction on a: every event every member acknowledged leaves the log.
    const r = await compact(c, 'a')
    expect(r.eventsRemoved).toBe(eventsBefore)
    expect(r.eventsAfter).toBe(0)
    expect(r.waitingFor).toEqual([])
    expect(await readAll(c, 'a', docs)).toEqual(before)
    expect((await logOf(c, 'a')).events).toBe(0)
    const deep = await dru('verify', '--deep', '--admin', c.unit('a').adminUrl, '--json', '--quiet')
    expect(deep.code, deep.stdout + deep.stderr).toBe(0)
    expect(JSON.parse(deep.stdout).ok).toBe(true)

    // Writes after compaction chain from the base and replicate as before.
    expect((await c.write('b', 'order-after', { n: 1 })).status).toBe(200)
    await c.waitConverged(IDS)
    expect(await c.read('a', 'order-after')).toEqual({ n: 1 })
    await c.waitFor('b floor at its vector', async () => {
      const s = (await c.status('b')) as LogStatus
      return JSON.stringify(s.log.floor) === JSON.stringify(s.fingerprint.vv)
    })
    expect((await compact(c, 'b')).eventsAfter).toBe(0)

    // 2. c loses its disk. a and b no longer hold the events it needs: it is bootstrapped
    //    from their document snapshots, then events, and converges.
    await c.kill('c')
    c.wipe('c')
    expect((await c.write('a', 'order-during', { n: 2 })).status).toBe(200)
    await c.start('c')
    const [, , sc] = await c.waitConverged(IDS, 20_000)
    expect(c.unit('c').lines.some((l) => String(l.msg).startsWith('bootstrapped from document snapshots'))).toBe(true)
    expect(sc!.writable).toBe(true)
    expect(await readAll(c, 'c', docs)).toEqual(before)
    expect(await c.read('c', 'order-during')).toEqual({ n: 2 })
    expect((await dru('verify', '--deep', '--admin', c.unit('c').adminUrl, '--json', '--quiet')).code).toBe(0)
    expect((await c.write('c', 'order-from-c', { n: 3 })).status).toBe(200)
    await c.waitConverged(IDS)
    expect(await c.read('a', 'order-from-c')).toEqual({ n: 3 })

    // 3. c is lost for good. Events written after that are held back on a by c's missing acks...
    await c.kill('c')
    for (let i = 0; i < 5; i++) expect((await c.write('a', `late-${i}`, { i })).status).toBe(200)
    await c.waitFor('b has the late writes', async () => (await c.read('b', 'late-4')) !== null)
    await c.waitFor('a knows b acknowledged them', async () => {
      const s = (await c.status('a')) as LogStatus
      return s.peers.find((p) => p.id === 'b')?.lagEvents === 0
    })
    const held = await compact(c, 'a')
    expect(held.waitingFor).toEqual(['c'])
    expect(held.eventsAfter).toBeGreaterThanOrEqual(5)

    // ...until c is decommissioned (refused while connected? it is down, so no --force needed).
    const dec = await dru('decommission', 'c', '--admin', c.unit('a').adminUrl)
    expect(dec.code, dec.stderr).toBe(0)
    expect(dec.stdout).toContain('c removed from membership')
    const again = await dru('decommission', 'c', '--admin', c.unit('a').adminUrl, '--json')
    expect(JSON.parse(again.stdout).removed).toBe(false)
    const unknown = await dru('decommission', 'nobody', '--admin', c.unit('a').adminUrl)
    expect(unknown.code).not.toBe(0)
    expect(unknown.stderr).toContain('NOT_FOUND')
    const live = await dru('decommission', 'b', '--admin', c.unit('a').adminUrl)
    expect(live.code).not.toBe(0)
    expect(live.stderr).toContain('connected')
    const done = await compact(c, 'a')
    expect(done.waitingFor).toEqual([])
    expect(done.eventsAfter).toBe(0)
    const status = await c.status('a')
    expect(status.peers.find((p) => p.id === 'c')?.membership).toBe('decommissioned')
    // Active with c gone from membership. Read at one instant it could be 'verifying': under a
    // loaded CI machine a's session with b may miss its heartbeats and come back through
    // catching-up and verifying (seen once in a full run), so wait for it.
    await c.waitFor('a active', async () => (await c.status('a')).state === 'active', 10_000)

    // A decommissioned DRU that comes back is refused, and learns why.
    await c.start('c')
    await c.waitFor(
      'c refused by a',
      async () => (await c.status('c')).peers.find((p) => p.id === 'a')?.membership === 'quarantined',
    )
    expect(JSON.stringify((await c.status('c')).peers.find((p) => p.id === 'a'))).toContain('DECOMMISSIONED')
    expect(await readAll(c, 'a', docs)).toEqual(before)

    for (const id of IDS) await c.kill(id, 'SIGTERM')
    // Every log still verifies (chains start at their base) and no (origin, seq) has two hashes.
    expect(scanForForks(IDS.map((id) => c.unit(id).dbPath)).forks).toEqual([])
  })

  it('a DRU whose last peer is decommissioned goes from isolated to active, standalone, and keeps every event', async () => {
    const c = (cluster = await Cluster.create(['a', 'b']))
    await Promise.all(['a', 'b'].map((id) => c.start(id)))
    await c.waitConverged(['a', 'b'])
    expect((await c.write('b', 'from-b', { n: 1 })).status).toBe(200)
    await c.waitConverged(['a', 'b'])
    await c.kill('b')
    await c.waitFor('a isolated', async () => (await c.status('a')).state === 'isolated')
    expect(await c.readyz('a')).toBe(503)
    const dec = await dru('decommission', 'b', '--admin', c.unit('a').adminUrl)
    expect(dec.code, dec.stderr).toBe(0)
    await c.waitFor('a active', async () => (await c.status('a')).state === 'active', 3_000)
    expect(await c.readyz('a')).toBe(200)
    expect(await c.read('a', 'from-b')).toEqual({ n: 1 })
    // Now standalone, compaction folds everything.
    expect((await compact(c, 'a')).eventsAfter).toBe(0)
    expect(await c.read('a', 'from-b')).toEqual({ n: 1 })
  })
})
