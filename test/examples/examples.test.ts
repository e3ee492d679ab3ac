import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { freePorts, until } from './helpers.js'

// The files in examples/ run as a user would run them, against a cluster made by `dru init`:
// the HTTP service writes orders (outbox in its own transaction), the reader handles each
// remote event exactly once, across a SIGKILL and restart.

const REPO = fileURLToPath(new URL('../../', import.meta.url))
const DRU = join(REPO, 'packages/cli/dist/main.js')
const children: ChildProcess[] = []
const dirs: string[] = []
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL')
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** Runs an example; `lines` collects its stdout lines; resolves once a line matches `ready`. */
function runExample(file: string, args: string[], ready: RegExp): Promise<{ child: ChildProcess; lines: string[] }> {
  const child = spawn(process.execPath, [join(REPO, 'examples', file), ...args], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.push(child)
  const lines: string[] = []
  let err = ''
  let buffer = ''
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      buffer += d
      const parts = buffer.split('\n')
      buffer = parts.pop()!
      for (const l of parts) {
        lines.push(l)
        if (ready.test(l)) resolve({ child, lines })
      }
    })
    child.stderr!.on('data', (d) => (err += d))
    child.on('exit', (code) => reject(new Error(`${file} exited ${code}: ${err}`)))
  })
}

describe('examples/', () => {
  it('http-service writes orders through the outbox; event-reader handles each exactly once, across a SIGKILL', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dru-examples-'))
    dirs.push(dir)
    const [p1, p2, a1, a2] = await freePorts(4)
    const init = spawnSync(
      process.execPath,
      [
        DRU,
        'init',
        '--dir',
        dir,
        '--force',
        '--admin-base-port',
        String(a1),
        `us-east=127.0.0.1:${p1}`,
        `eu-west=127.0.0.1:${p2}`,
      ],
      { encoding: 'utf8' },
    )
    expect(init.status, init.stderr).toBe(0)
    expect(a2).toBeGreaterThan(0)

    // The reader first: a brand-new networked DRU accepts writes once it has met a peer (it
    // could be a lost disk whose earlier events are out there), so the service waits for it.
    let reader = await runExample('event-reader.mjs', [join(dir, 'eu-west.json')], /"ready"/)
    const service = await runExample('http-service.mjs', [join(dir, 'us-east.json'), '0'], /^listening /)
    const url = service.lines.find((l) => l.startsWith('listening '))!.slice('listening '.length)

    const post = (id: string, total: number) =>
      fetch(`${url}/orders/${id}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ total }),
      })
    for (let i = 0; i < 10; i++) expect((await post(`o-${i}`, i)).status).toBe(200)
    expect(await (await fetch(`${url}/orders/o-3`)).json()).toEqual({ total: 3, status: 'placed' })
    expect((await post('bad id!', 1)).status).toBe(404)
    expect((await post('o-x', 1.5)).status).toBe(400)

    const handled = () => reader.lines.filter((l) => l.includes('"seq"')).length
    await until('the reader handled the first 10 orders', () => handled() === 10)

    // SIGKILL the reader, write more while it is down, start it again: only the new ones run.
    reader.child.kill('SIGKILL')
    await new Promise((r) => reader.child.once('exit', r))
    for (let i = 10; i < 15; i++) expect((await post(`o-${i}`, i)).status).toBe(200)
    reader = await runExample('event-reader.mjs', [join(dir, 'eu-west.json')], /"ready"/)
    await until('the reader handled the 5 orders written while it was down', () => handled() === 5)
    await new Promise((r) => setTimeout(r, 300))
    expect(handled()).toBe(5)

    // Each event's effect is in the reader's database exactly once; the service kept its audit rows.
    reader.child.kill('SIGTERM')
    service.child.kill('SIGTERM')
    await Promise.all(
      [reader.child, service.child].map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))),
    )
    const eu = new Database(join(dir, 'data/eu-west.db'), { readonly: true })
    const us = new Database(join(dir, 'data/us-east.db'), { readonly: true })
    try {
      expect(eu.prepare('select count(*) n, count(distinct doc) docs from shipments').get()).toEqual({
        n: 15,
        docs: 15,
      })
      expect(us.prepare('select count(*) n from order_audit').get()).toEqual({ n: 15 })
    } finally {
      eu.close()
      us.close()
    }
  }, 90_000)
})
