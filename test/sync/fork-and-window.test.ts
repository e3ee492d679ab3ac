import { copyFileSync, existsSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { cluster, DruProcess, killAll, sameFp, tempDir, waitFor } from './helpers.js'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  await killAll()
  for (const c of cleanups.splice(0)) await c()
})

type Status = Array<{
  id: string
  connected: boolean
  quarantined: boolean
  quarantine: { code: string; message: string } | null
  unackedBytes: number
  lastError: { code: string } | null
}>

describe('forks and flow control between processes', () => {
  it('a DRU started from a copy of its cleanly stopped database writes under a fresh origin: the peer takes both histories, nothing forks', async () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const keys = cluster(['a', 'b'])
    const b = await DruProcess.start({ id: 'b', path: `${dir}/b.db`, keys: keys.keys('b') })
    const peers = [{ id: 'b', url: `ws://127.0.0.1:${b.port}` }]
    let a = await DruProcess.start({ id: 'a', path: `${dir}/a.db`, keys: keys.keys('a'), peers })
    const first = a.origin
    await a.call('write', { n: 10 })
    await waitFor('b has a#10', async () => (await b.fp()).count === 10)
    await a.stop()
    // The "backup": a copy of a's files after a clean stop (it carries the clean-close marker).
    copyFileSync(`${dir}/a.db`, `${dir}/a-copy.db`)
    if (existsSync(`${dir}/a.db-wal`)) copyFileSync(`${dir}/a.db-wal`, `${dir}/a-copy.db-wal`)
    a = await DruProcess.start({ id: 'a', path: `${dir}/a.db`, keys: keys.keys('a'), peers })
    await a.call('write', { n: 5 })
    await waitFor('b has 15 events', async () => (await b.fp()).count === 15)
    await a.stop()

    // The restored copy starts and writes: under an origin of its own, never first#11..15 again.
    const restored = await DruProcess.start({ id: 'a', path: `${dir}/a-copy.db`, keys: keys.keys('a'), peers })
    expect(new Set([first, a.origin, restored.origin]).size).toBe(3)
    await restored.call('write', { n: 5 })
    await waitFor(
      'b has all 20 events and the copy caught up',
      async () => (await b.fp()).count === 20 && sameFp(await restored.fp(), await b.fp()),
    )
    const st = (await b.call<Status>('status')).find((p) => p.id === 'a')!
    expect(st.quarantined).toBe(false)
    await b.call('verify')
    await restored.call('verify')
  })

  it('a receiver that stops reading (SIGSTOP) leaves the sender with at most its unacked window in flight; it resumes on SIGCONT', async () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const keys = cluster(['a', 'b'])
    const window = 1 << 20
    const batch = 128 << 10
    const a = await DruProcess.start({
      id: 'a',
      path: `${dir}/a.db`,
      keys: keys.keys('a'),
      maxUnackedBytes: window,
      maxBatchBytes: batch,
      heartbeatMs: 1000,
      heartbeatTimeoutMs: 20_000,
    })
    await a.call('write', { n: 60_000, perCommit: 20, bytes: 200 })
    const b = await DruProcess.start({
      id: 'b',
      path: `${dir}/b.db`,
      keys: keys.keys('b'),
      peers: [{ id: 'a', url: `ws://127.0.0.1:${a.port}` }],
      heartbeatMs: 1000,
      heartbeatTimeoutMs: 20_000,
    })
    await waitFor('b started receiving', async () => (await b.fp()).count > 0, 10_000, 5)
    b.child.kill('SIGSTOP')
    try {
      await new Promise((r) => setTimeout(r, 1500))
      const samples: number[] = []
      for (let i = 0; i < 5; i++) {
        samples.push((await a.call<Status>('status'))[0]!.unackedBytes)
        await new Promise((r) => setTimeout(r, 100))
      }
      // Window plus at most one batch (a batch runs on to its next signed event).
      for (const s of samples) expect(s).toBeLessThanOrEqual(window + 2 * batch)
      expect(Math.max(...samples)).toBeGreaterThan(0)
      expect(new Set(samples).size).toBe(1) // nothing more is sent while b is stopped
    } finally {
      b.child.kill('SIGCONT')
    }
    await waitFor('converged after SIGCONT', async () => sameFp(await a.fp(), await b.fp()), 60_000)
  })
})
