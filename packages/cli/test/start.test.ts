import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { DruError } from '@dru/core'
import { runCli, type CliContext, type DruRuntime } from '../src/index.js'

/** runCli in-process with captured output, a scripted runtime and a scripted shutdown signal. */
function harness(runtime: DruRuntime, cwd: string) {
  const out: string[] = []
  const err: string[] = []
  let stop!: (signal: string) => void
  const stopped = new Promise<string>((resolve) => (stop = resolve))
  const ctx: CliContext = {
    stdout: (s) => out.push(s),
    stderr: (s) => err.push(s),
    env: {},
    cwd,
    now: () => 0,
    loadRuntime: async () => runtime,
    waitForShutdown: () => stopped,
  }
  return { ctx, out, err, stop }
}

describe('dru start (in-process, injected runtime)', () => {
  const dirs: string[] = []
  const tempConfig = (config: unknown) => {
    const dir = mkdtempSync(join(tmpdir(), 'dru-start-'))
    dirs.push(dir)
    writeFileSync(join(dir, 'dru.json'), JSON.stringify(config))
    return dir
  }
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  })

  it('opens the DRU with the resolved config, runs until a signal, then closes it', async () => {
    const dir = tempConfig({
      id: 'eu-west-1',
      path: 'eu.db',
      admin: { port: 7499 },
      peers: [{ id: 'us-east-1', url: 'ws://127.0.0.1:7302' }],
    })
    const opened: unknown[] = []
    let closed = 0
    const h = harness(
      {
        openDru: async (config) => {
          opened.push(config)
          return { state: () => 'catching-up', close: async () => void closed++ }
        },
        validateConfig: (c) => c,
      },
      dir,
    )
    const done = runCli(['start', '--config', 'dru.json'], h.ctx)
    await new Promise((r) => setTimeout(r, 20))
    expect(closed).toBe(0) // still running
    expect(h.out.join('')).toBe('dru eu-west-1 started (catching-up) · admin http://127.0.0.1:7499\n')
    h.stop('SIGTERM')
    expect(await done).toBe(0)
    expect(closed).toBe(1)
    expect(opened).toEqual([
      {
        id: 'eu-west-1',
        path: join(dir, 'eu.db'),
        admin: { port: 7499 },
        peers: [{ id: 'us-east-1', url: 'ws://127.0.0.1:7302' }],
      },
    ])
    expect(h.out.join('')).toContain('SIGTERM: closing eu-west-1…\ndru eu-west-1 stopped\n')
  })

  it("reports the runtime's own CONFIG_INVALID with the file name and exit 3, without opening", async () => {
    const dir = tempConfig({ id: 'eu-west-1', path: 'eu.db', durability: 'sometimes' })
    let opened = false
    const h = harness(
      {
        openDru: async () => {
          opened = true
          return { close: async () => {} }
        },
        validateConfig: () => {
          throw new DruError(
            'CONFIG_INVALID',
            `config field "durability" must be 'machine' or 'process' (got "sometimes")`,
          )
        },
      },
      dir,
    )
    expect(await runCli(['start', '--config', 'dru.json'], h.ctx)).toBe(3)
    expect(h.err.join('')).toBe(
      `dru: dru.json: config field "durability" must be 'machine' or 'process' (got "sometimes")\n`,
    )
    expect(opened).toBe(false)
  })

  it('maps an openDru failure to its DruError exit code', async () => {
    const dir = tempConfig({ id: 'eu-west-1', path: 'eu.db' })
    const h = harness(
      {
        openDru: async () => {
          throw new DruError('DB_LOCKED', 'eu.db is open in another process')
        },
      },
      dir,
    )
    expect(await runCli(['start', '--config', 'dru.json'], h.ctx)).toBe(7)
    expect(h.err.join('')).toBe('dru: DB_LOCKED: eu.db is open in another process\n')
  })

  it('exits 9 when no runtime is wired', async () => {
    const dir = tempConfig({ id: 'eu-west-1', path: 'eu.db' })
    const h = harness({}, dir)
    expect(await runCli(['start', '--config', 'dru.json'], h.ctx)).toBe(9)
    expect(h.err.join('')).toContain('no DRU runtime (openDru) wired')
  })
})
