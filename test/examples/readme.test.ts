import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { openDru } from '@dru/node'
import { freePorts, until } from './helpers.js'

// The README's "Embedding a DRU" block, exactly as printed (only its three port numbers are
// swapped for free ones): compiled with tsc --strict against the workspace's published types,
// then run from a folder where `dru init` wrote the cluster and `dru start` runs us-east.

const REPO = fileURLToPath(new URL('../../', import.meta.url))
const DRU = join(REPO, 'packages/cli/dist/main.js')
const TSC = join(REPO, 'node_modules/typescript/bin/tsc')
// Inside the repository, so '@dru/node' resolves as it would in a user's project.
const BUILD = join(REPO, '.tmp/readme-snippet')
const children: ChildProcess[] = []
const dirs: string[] = []
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL')
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** The first ```ts block after the "## Embedding a DRU" heading. */
function readmeSnippet(): string {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8')
  const m = /## Embedding a DRU\n[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)
  if (!m) throw new Error('README.md has no ```ts block under "## Embedding a DRU"')
  return m[1]!
}

/** Replaces `from` (which must occur exactly once) by `to`. */
function swapOnce(text: string, from: string, to: string): string {
  expect(text.split(from).length - 1, `README snippet mentions ${from} once`).toBe(1)
  return text.replace(from, to)
}

describe('README', () => {
  it('the embedding snippet compiles under tsc --strict and runs against a dru init cluster', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dru-readme-'))
    dirs.push(dir)
    const [usSync, euSync, usAdmin, euAdmin] = await freePorts(4)
    const init = spawnSync(
      process.execPath,
      [
        DRU,
        'init',
        '--dir',
        join(dir, 'cluster'),
        '--admin-base-port',
        String(usAdmin),
        `us-east=127.0.0.1:${usSync}`,
        `eu-west=127.0.0.1:${euSync}`,
      ],
      { encoding: 'utf8' },
    )
    expect(init.status, init.stderr).toBe(0)
    const us = spawn(process.execPath, [DRU, 'start', '--config', join(dir, 'cluster/us-east.json')], {
      stdio: 'ignore',
    })
    children.push(us)
    await until('us-east answers /healthz', async () => {
      const res = await fetch(`http://127.0.0.1:${usAdmin}/healthz`).catch(() => undefined)
      return res?.status === 200
    })

    let code = readmeSnippet()
    code = swapOnce(code, ':7301', `:${usSync}`)
    code = swapOnce(code, 'port: 7302', `port: ${euSync}`)
    code = swapOnce(code, 'port: 7402', `port: ${euAdmin}`)
    rmSync(BUILD, { recursive: true, force: true })
    mkdirSync(BUILD, { recursive: true })
    writeFileSync(join(BUILD, 'snippet.ts'), code)
    const tsc = spawnSync(
      process.execPath,
      [
        TSC,
        '--strict',
        '--module',
        'nodenext',
        '--moduleResolution',
        'nodenext',
        '--target',
        'es2022',
        '--noEmitOnError',
        '--outDir',
        BUILD,
        join(BUILD, 'snippet.ts'),
      ],
      { encoding: 'utf8' },
    )
    expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0)
    const run = spawnSync(process.execPath, [join(BUILD, 'snippet.js')], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 60_000,
    })
    expect(run.status, run.stdout + run.stderr).toBe(0)

    // acks: 1 — us-east held the order before the snippet went on; the audit row is eu-west's.
    us.kill('SIGTERM')
    await new Promise((r) => (us.exitCode !== null ? r(null) : us.once('exit', r)))
    const usDru = await openDru({ id: 'us-east', path: join(dir, 'cluster/data/us-east.db') })
    try {
      expect(usDru.get('order-42')).toMatchObject({ status: 'paid' })
    } finally {
      await usDru.close()
    }
    const eu = new Database(join(dir, 'eu-west.db'), { readonly: true })
    try {
      expect(eu.prepare('select line from audit').all()).toEqual([{ line: 'qty=3' }])
    } finally {
      eu.close()
    }
  }, 90_000)
})
