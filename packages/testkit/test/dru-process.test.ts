import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { DruProcess } from '../src/dru-process.js'

// The child runs the built dist/ (npx tsc -b first), as every child-process test does.
const PLUGIN = fileURLToPath(new URL('./fixtures/echo-plugin.mjs', import.meta.url))
const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

function configFile(config: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'dru-process-test-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'a.json')
  writeFileSync(
    path,
    JSON.stringify({ id: 'a', path: join(dir, 'a.db'), durability: 'process', log: 'silent', ...config }),
  )
  return path
}

async function started(configPath: string, plugin?: string): Promise<DruProcess> {
  const dru = await DruProcess.start({ configPath, ...(plugin ? { plugin } : {}) })
  cleanups.push(() => dru.kill())
  return dru
}

describe('DruProcess', () => {
  it('writes and reads documents and reports status over the control API', async () => {
    const dru = await started(configFile())
    expect(dru.ports.sync).toBe(0)
    const w = await dru.request<{ ok: boolean; event: { origin: string; seq: number } }>('POST', '/docs/order-1', {
      body: { total: 7 },
    })
    expect(w.status).toBe(200)
    expect(w.body.event.seq).toBe(1)
    expect((await dru.request('GET', '/docs/order-1')).body).toEqual({ total: 7 })
    expect((await dru.request('GET', '/docs/nothing')).body).toBeNull()
    const s = await dru.request<{ id: string; origin: string; pid: number }>('GET', '/status')
    expect(s.body).toMatchObject({ id: 'a', origin: w.body.event.origin, pid: dru.pid })
    expect((await dru.request<{ code: string }>('GET', '/nowhere')).status).toBe(404)
  })

  it('survives kill -9: a restart on the same files keeps every committed write, under a new incarnation', async () => {
    const first = await started(configFile())
    const w = await first.request<{ event: { origin: string } }>('POST', '/docs/d', { body: { x: 1 } })
    await first.kill()
    expect(first.running).toBe(false)
    expect(await first.exited).toBe('SIGKILL')
    const second = await first.restart()
    cleanups.push(() => second.kill())
    expect((await second.request('GET', '/docs/d')).body).toEqual({ x: 1 })
    expect((await second.request<{ origin: string }>('GET', '/status')).body.origin).not.toBe(w.body.event.origin)
  })

  it('stops cleanly on SIGTERM (exit 0)', async () => {
    const dru = await started(configFile())
    await dru.stop()
    expect(await dru.exited).toBe(0)
  })

  it('loads a plugin: its config hook and routes, and error codes mapped to statuses', async () => {
    const dru = await started(configFile(), PLUGIN)
    expect((await dru.request('GET', '/echo?say=hi')).body).toEqual({ said: 'hi', configuredId: 'a', events: 0 })
    const refused = await dru.request<{ code: string; message: string }>('POST', '/refuse')
    expect(refused).toEqual({ status: 503, body: { code: 'NOT_WRITABLE', message: 'not now' } })
  })

  it("rejects with the child's stderr when the DRU cannot open", async () => {
    await expect(DruProcess.start({ configPath: configFile({ id: '' }) })).rejects.toThrow(
      /before ready: .*CONFIG_INVALID/s,
    )
  })
})
