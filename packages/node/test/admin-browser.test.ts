import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { openDru, runtimeOf } from '../src/index.js'

// A real browser on a page at another 127.0.0.1 port attacks a real DRU's admin API, the way
// any web page an operator has open could. Headless Chromium from Debian's package; .ci/run
// installs it, so under CI a missing browser fails this test instead of skipping it.

const CHROMIUM = process.env.DRU_TEST_CHROMIUM ?? '/usr/bin/chromium'
const available = existsSync(CHROMIUM)
const runIt = available || process.env.CI ? it : it.skip

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return (server.address() as AddressInfo).port
}

function bodyOf(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = ''
    req.on('data', (d: Buffer) => (text += d.toString()))
    req.on('end', () => resolve(text))
  })
}

/** The attacker's page: every request a page may send without a preflight, then one that needs it. */
function attackPage(admin: string, naive: string): string {
  const script = `
    const admin = ${JSON.stringify(admin)}
    const results = {}
    // The control: a server with no defences gets this, so the browser does send it.
    try { await fetch(${JSON.stringify(naive)} + '/compact', { method: 'POST', mode: 'no-cors', body: 'x' }); results.naive = 'answered' } catch (e) { results.naive = String(e) }
    for (const path of ['/compact', '/decommission/c?force=1', '/peers/c/unquarantine', '/conflicts/1/resolve']) {
      try { await fetch(admin + path, { method: 'POST', mode: 'no-cors', body: 'x' }); results[path] = 'answered' } catch (e) { results[path] = String(e) }
    }
    // JSON needs a CORS preflight, which the admin API never grants.
    try { await fetch(admin + '/compact', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }); results.json = 'sent' } catch (e) { results.json = 'blocked' }
    await fetch('/done', { method: 'POST', body: JSON.stringify(results) })
  `
  return `<!doctype html><title>an ordinary page</title><script type="module">${script}</script>`
}

/** Starts headless Chromium on `url`, in its own process group so the whole browser can be ended. */
function startChromium(url: string): { child: ChildProcess; output: () => string } {
  const profile = mkdtempSync(join(tmpdir(), 'dru-chromium-'))
  const child = spawn(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--no-default-browser-check',
      // No name resolves: the browser can reach nothing but the loopback addresses it is given.
      '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
      `--user-data-dir=${profile}`,
      url,
    ],
    { detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let output = ''
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()))
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      process.kill(-child.pid!, 'SIGKILL')
      await exited
    }
    rmSync(profile, { recursive: true, force: true })
  })
  return { child, output: () => output }
}

describe('a web page in a real browser against the admin API', () => {
  runIt(
    'cannot compact, decommission, unquarantine or resolve: the requests arrive and nothing runs',
    { timeout: 120_000 },
    async () => {
      if (!available) throw new Error(`${CHROMIUM} is missing: CI must install chromium (.ci/run does)`)
      const dir = mkdtempSync(join(tmpdir(), 'dru-admin-browser-'))
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
      // The default admin config: loopback, no token. Only Origin and content type stand in the way.
      const dru = await openDru({ id: 'a', path: join(dir, 'a.db'), admin: { host: '127.0.0.1', port: 0 } })
      cleanups.push(() => dru.close())
      for (let i = 0; i < 5; i++) await dru.change(`d${i}`, (d) => (d.v = i))
      const events = dru.store.count()
      const adminUrl = runtimeOf(dru).admin!.url

      const naiveSeen: Array<{ origin: string | undefined; type: string | undefined }> = []
      const naivePort = await listen(
        createServer((req, res) => {
          naiveSeen.push({ origin: req.headers.origin, type: req.headers['content-type'] })
          req.resume()
          res.end('done')
        }),
      )

      let reported!: (results: Record<string, string>) => void
      const done = new Promise<Record<string, string>>((resolve) => (reported = resolve))
      const pagePort = await listen(
        createServer(async (req, res) => {
          if (req.method === 'POST' && req.url === '/done') {
            reported(JSON.parse(await bodyOf(req)) as Record<string, string>)
            res.end()
            return
          }
          res.writeHead(200, { 'content-type': 'text/html' }).end(attackPage(adminUrl, `http://127.0.0.1:${naivePort}`))
        }),
      )

      const browser = startChromium(`http://127.0.0.1:${pagePort}/`)
      const exitedEarly = new Promise<never>((_, reject) =>
        browser.child.once('exit', (code, signal) =>
          reject(
            new Error(`chromium exited (${code ?? signal}) before the page reported: ${browser.output().slice(-2000)}`),
          ),
        ),
      )
      const results = await Promise.race([done, exitedEarly])

      // The browser did send a cross-site text/plain POST with its Origin: the threat is real.
      expect(results.naive).toBe('answered')
      expect(naiveSeen).toEqual([{ origin: `http://127.0.0.1:${pagePort}`, type: 'text/plain;charset=UTF-8' }])
      // The admin API answered each (an opaque response, not a network error) and did nothing.
      for (const path of ['/compact', '/decommission/c?force=1', '/peers/c/unquarantine', '/conflicts/1/resolve'])
        expect(results[path], path).toBe('answered')
      expect(results.json).toBe('blocked')
      expect(dru.store.count()).toBe(events)
    },
  )
})
