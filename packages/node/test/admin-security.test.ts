import { createServer, request, type Server } from 'node:http'
import { connect } from 'node:net'
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { DruError } from '@dru/core'
import { adminHostNames, admitAdminRequest, isLoopbackHost } from '../src/admin-guard.js'
import { ADMIN_MAX_CONNECTIONS, startAdminServer, type AdminServer } from '../src/admin-http.js'
import type { AdminSource } from '../src/admin-routes.js'
import { openDru, runtimeOf, type Dru } from '../src/index.js'

// What a web page (or a rebinding DNS name, or a caller without the token) can send to the
// admin API, and what it gets: nothing done.

const TOKEN = 'admin-token-for-tests-0123456789'
const cleanups: Array<() => unknown> = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  json: { code?: string } | undefined
}

function call(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        let json
        try {
          json = JSON.parse(Buffer.concat(chunks).toString('utf8'))
        } catch {
          json = undefined
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json })
      })
    })
    req.on('error', reject)
    if (body !== undefined) req.write(body)
    req.end()
  })
}

/** A source whose mutations count their calls. */
function countingSource() {
  const calls: string[] = []
  const source: AdminSource = {
    state: () => 'active',
    readyWeight: () => 100,
    status: () => ({
      id: 'x',
      origin: 'x/1',
      state: 'active',
      since: '',
      fingerprint: { digest: 'd', vv: {} },
      peers: [],
      conflictsOpen: 0,
    }),
    metrics: () => '',
    gaps: () => ({ peers: [] }),
    verify: () => ({ ok: true, deep: false, local: { digest: 'd' }, peers: [] }),
    conflicts: {
      list: () => [],
      get: () => undefined,
      resolve: (id) => (calls.push(`resolve ${id}`), { id: Number(id), status: 'resolved' }),
    },
    compact: () => (calls.push('compact'), { eventsRemoved: 0 } as never),
    decommission: (id) => (calls.push(`decommission ${id}`), { id, removed: true } as never),
    unquarantine: (id) => (calls.push(`unquarantine ${id}`), { peer: id, lifted: true } as never),
  }
  return { source, calls }
}

async function server(options: { token?: string } = {}): Promise<{ admin: AdminServer; calls: string[] }> {
  const { source, calls } = countingSource()
  const admin = await startAdminServer({ host: '127.0.0.1', port: 0, source, ...options })
  cleanups.push(() => admin.close())
  return { admin, calls }
}

const MUTATIONS = ['/decommission/c?force=1', '/compact', '/peers/c/unquarantine', '/conflicts/1/resolve']

describe('admin API against a web page', () => {
  it.each([
    ['the default (loopback, no token)', {}],
    ['a token set', { token: TOKEN }],
  ])(
    'refuses the cross-site POSTs a browser sends without a preflight (text/plain, foreign Origin), with %s: nothing runs',
    async (_name, options) => {
      const { admin, calls } = await server(options)
      for (const path of MUTATIONS) {
        // What fetch(url, { method: 'POST', mode: 'no-cors', body: '...' }) sends from evil.example.
        const r = await call(
          admin.port,
          'POST',
          path,
          { origin: 'http://evil.example', 'content-type': 'text/plain;charset=UTF-8' },
          '{"value":1}',
        )
        expect(r.status, path).toBe(403)
        expect(r.json?.code).toBe('FORBIDDEN')
        // Even with the token (a page cannot have it), text/plain is not accepted.
        const t = await call(
          admin.port,
          'POST',
          path,
          { 'content-type': 'text/plain', authorization: `Bearer ${TOKEN}` },
          '{"value":1}',
        )
        expect(t.status, path).toBe(415)
      }
      expect(calls).toEqual([])
    },
  )

  it('answers no CORS preflight, so a page cannot send JSON cross-site at all', async () => {
    const { admin, calls } = await server()
    const r = await call(admin.port, 'OPTIONS', '/compact', {
      origin: 'http://evil.example',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type',
    })
    expect(r.status).toBeGreaterThanOrEqual(400)
    expect(Object.keys(r.headers).filter((h) => h.startsWith('access-control-'))).toEqual([])
    expect(calls).toEqual([])
  })

  it('refuses OPTIONS and every method it does not serve with 405, before routing', async () => {
    const { admin, calls } = await server({ token: TOKEN })
    for (const [method, path, allow] of [
      ['OPTIONS', '/compact', 'POST'],
      ['OPTIONS', '/nowhere', 'GET, POST'],
      ['PUT', '/compact', 'POST'],
      ['DELETE', '/decommission/c', 'POST'],
    ] as const) {
      const r = await call(
        admin.port,
        method,
        path,
        {
          'access-control-request-method': 'POST',
          authorization: `Bearer ${TOKEN}`,
          'content-type': 'application/json',
        },
        '{}',
      )
      expect(r.status, `${method} ${path}`).toBe(405)
      expect(r.headers.allow).toBe(allow)
      expect(Object.keys(r.headers).filter((h) => h.startsWith('access-control-'))).toEqual([])
    }
    expect(calls).toEqual([])
  })

  it('takes the Bearer scheme in any case, and nothing but Bearer', async () => {
    const { admin, calls } = await server({ token: TOKEN })
    const json = { 'content-type': 'application/json' }
    expect(
      (await call(admin.port, 'POST', '/compact', { ...json, authorization: `Basic ${TOKEN}` }, '{}')).status,
    ).toBe(401)
    expect((await call(admin.port, 'POST', '/compact', { ...json, authorization: TOKEN }, '{}')).status).toBe(401)
    expect(calls).toEqual([])
    expect(
      (await call(admin.port, 'POST', '/compact', { ...json, authorization: `bearer ${TOKEN}` }, '{}')).status,
    ).toBe(200)
    expect(calls).toEqual(['compact'])
  })

  it('an empty JSON POST still needs the JSON content type', async () => {
    const { admin, calls } = await server()
    expect((await call(admin.port, 'POST', '/compact')).status).toBe(415)
    expect(
      (await call(admin.port, 'POST', '/compact', { 'content-type': 'application/x-www-form-urlencoded' }, 'a=1'))
        .status,
    ).toBe(415)
    expect(
      (await call(admin.port, 'POST', '/compact', { 'content-type': 'multipart/form-data; boundary=x' }, '--x--'))
        .status,
    ).toBe(415)
    expect(calls).toEqual([])
    expect((await call(admin.port, 'POST', '/compact', { 'content-type': 'application/json' })).status).toBe(200)
    expect(calls).toEqual(['compact'])
  })

  it('refuses a foreign Origin on reads as well, including the opaque "null" origin', async () => {
    const { admin } = await server()
    for (const origin of [
      'http://evil.example',
      'null',
      `http://localhost:${admin.port + 1}`,
      `https://127.0.0.1:${admin.port}`,
    ]) {
      const r = await call(admin.port, 'GET', '/status', { origin })
      expect(r.status, origin).toBe(403)
      expect(r.json?.code).toBe('FORBIDDEN')
    }
  })

  it('does not answer to a Host it does not know (DNS rebinding), reads included', async () => {
    const { admin } = await server()
    const r = await call(admin.port, 'GET', '/status', { host: `evil.example:${admin.port}` })
    expect(r.status).toBe(403)
    expect(r.json?.code).toBe('FORBIDDEN')
    for (const host of [`127.0.0.1:${admin.port}`, `localhost:${admin.port}`])
      expect((await call(admin.port, 'GET', '/status', { host })).status, host).toBe(200)
    // Its own origin is fine (a dashboard served by the admin API itself).
    expect((await call(admin.port, 'GET', '/status', { origin: `http://127.0.0.1:${admin.port}` })).status).toBe(200)
  })

  it('needs the token for every POST when it has one; loopback reads stay open', async () => {
    const { admin, calls } = await server({ token: TOKEN })
    const json = { 'content-type': 'application/json' }
    expect((await call(admin.port, 'POST', '/compact', json, '{}')).json?.code).toBe('UNAUTHORIZED')
    expect(
      (await call(admin.port, 'POST', '/compact', { ...json, authorization: 'Bearer wrong-token-0123456789' }, '{}'))
        .status,
    ).toBe(401)
    expect(calls).toEqual([])
    expect(
      (await call(admin.port, 'POST', '/compact', { ...json, authorization: `Bearer ${TOKEN}` }, '{}')).status,
    ).toBe(200)
    expect(calls).toEqual(['compact'])
    expect((await call(admin.port, 'GET', '/status')).status).toBe(200)
  })

  it('off loopback: refuses to start without a token, and with one needs it for every read but /healthz and /readyz', async () => {
    const { source } = countingSource()
    await expect(startAdminServer({ host: '0.0.0.0', port: 0, source })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
    })
    expect(
      isLoopbackHost('127.0.0.1') && isLoopbackHost('localhost') && isLoopbackHost('::1') && isLoopbackHost('[::1]'),
    ).toBe(true)
    expect(isLoopbackHost('0.0.0.0') || isLoopbackHost('10.0.0.5') || isLoopbackHost('example.com')).toBe(false)
    const policy = { allowedHosts: new Set(['10.0.0.5:7401']), loopback: false, token: TOKEN }
    const head = {
      method: 'GET',
      host: '10.0.0.5:7401',
      origin: undefined,
      authorization: undefined,
      contentType: undefined,
    }
    const codeOf = (path: string, authorization?: string) => {
      try {
        admitAdminRequest({ ...head, path, authorization }, policy)
        return 'ok'
      } catch (err) {
        return (err as DruError).code
      }
    }
    expect(codeOf('/healthz')).toBe('ok')
    expect(codeOf('/readyz')).toBe('ok')
    expect(codeOf('/status')).toBe('UNAUTHORIZED')
    expect(codeOf('/metrics')).toBe('UNAUTHORIZED')
    expect(codeOf('/status', `Bearer ${TOKEN}`)).toBe('ok')
  })

  it("answers to its own address, loopback names and allowedHosts; on a wildcard address also to the machine's names", () => {
    const loopback = adminHostNames({
      bound: '127.0.0.1',
      port: 7401,
      extra: ['dru-admin.internal', 'lb.internal:8080', '2001:db8::5'],
    })
    expect([...loopback].sort()).toEqual([
      '127.0.0.1:7401',
      '[2001:db8::5]:7401',
      '[::1]:7401',
      'dru-admin.internal:7401',
      'lb.internal:8080',
      'localhost:7401',
    ])
    const wildcard = adminHostNames({
      bound: '0.0.0.0',
      port: 7401,
      extra: [],
      interfaces: ['10.0.0.5', 'fd00::5'],
      machineName: 'Eu-West-1',
    })
    for (const h of ['10.0.0.5:7401', '[fd00::5]:7401', 'eu-west-1:7401', '0.0.0.0:7401'])
      expect(wildcard.has(h), h).toBe(true)
    expect(wildcard.has('evil.example:7401')).toBe(false)
    expect(wildcard.has('10.0.0.5:80')).toBe(false)
  })

  it('closes a client that trickles its headers (headers timeout)', async () => {
    const { source, calls } = countingSource()
    const admin = await startAdminServer({
      host: '127.0.0.1',
      port: 0,
      source,
      timeouts: { headersMs: 200, requestMs: 300 },
    })
    cleanups.push(() => admin.close())
    const socket = connect(admin.port, '127.0.0.1')
    let received = ''
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')))
    socket.write(`POST /compact HTTP/1.1\r\nHost: 127.0.0.1:${admin.port}\r\n`) // and never the end of the headers
    await new Promise<void>((resolve) => socket.once('close', () => resolve()))
    expect(received).toMatch(/^HTTP\/1\.1 408/)
    expect(calls).toEqual([])
  })

  it(`holds at most ${ADMIN_MAX_CONNECTIONS} connections: the next one is dropped unanswered`, async () => {
    const { source } = countingSource()
    let entered = 0
    let release!: () => void
    const released = new Promise<void>((r) => (release = r))
    const stuck: AdminSource = { ...source, status: async () => (entered++, await released, source.status()) }
    const admin = await startAdminServer({ host: '127.0.0.1', port: 0, source: stuck })
    cleanups.push(() => admin.close())
    // Each of these holds its connection: the server accepted it and is answering /status.
    const held = Array.from({ length: ADMIN_MAX_CONNECTIONS }, () => fetch(`${admin.url}/status`).then((r) => r.status))
    while (entered < ADMIN_MAX_CONNECTIONS) await new Promise((r) => setTimeout(r, 10))
    const extra = await call(admin.port, 'GET', '/healthz').then(
      (r) => r.status,
      (err: NodeJS.ErrnoException) => err.code,
    )
    expect(extra).toMatch(/^(ECONNRESET|EPIPE)$/)
    release()
    expect(new Set(await Promise.all(held))).toEqual(new Set([200]))
  })

  it('a taken port is ADDRESS_IN_USE, with the address', async () => {
    const { admin } = await server()
    const { source } = countingSource()
    await expect(startAdminServer({ host: '127.0.0.1', port: admin.port, source })).rejects.toMatchObject({
      code: 'ADDRESS_IN_USE',
      details: { port: admin.port },
    })
  })

  it('short request timeouts do not cut a long streamed operation', async () => {
    const { source } = countingSource()
    const slow: AdminSource = {
      ...source,
      compact: async (progress) => {
        for (let i = 0; i < 8; i++) {
          await new Promise((r) => setTimeout(r, 100))
          progress({ phase: 'delete', done: i, unit: 'events' })
        }
        return { eventsRemoved: 8 } as never
      },
    }
    const admin = await startAdminServer({
      host: '127.0.0.1',
      port: 0,
      source: slow,
      timeouts: { headersMs: 200, requestMs: 300 },
    })
    cleanups.push(() => admin.close())
    const r = await fetch(`${admin.url}/compact`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
      body: '{}',
    })
    const lines = (await r.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(lines.filter((l) => l.progress)).toHaveLength(8)
    expect(lines.at(-1)).toEqual({ result: { eventsRemoved: 8 } })
  })
})

describe('admin API of a real DRU', () => {
  it('a cross-site compaction request leaves the log as it was; the token file must be private', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dru-admin-sec-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const tokenFile = join(dir, 'admin.token')
    writeFileSync(tokenFile, `${TOKEN}\n`)
    chmodSync(tokenFile, 0o644)
    await expect(
      openDru({ id: 'a', path: ':memory:', admin: { host: '127.0.0.1', port: 0, tokenFile } }),
    ).rejects.toMatchObject({ code: 'CONFIG_INVALID' })
    chmodSync(tokenFile, 0o600)
    const dru: Dru = await openDru({
      id: 'a',
      path: join(dir, 'a.db'),
      admin: { host: '127.0.0.1', port: 0, tokenFile },
    })
    cleanups.push(() => dru.close())
    for (let i = 0; i < 5; i++) await dru.change(`d${i}`, (d) => (d.v = i))
    const port = runtimeOf(dru).admin!.port
    const events = dru.store.count()
    const r = await call(port, 'POST', '/compact', { origin: 'http://evil.example', 'content-type': 'text/plain' }, 'x')
    expect(r.status).toBe(403)
    expect(dru.store.count()).toBe(events)
    const ok = await call(
      port,
      'POST',
      '/compact',
      { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      '{}',
    )
    expect(ok.status).toBe(200)
    expect(dru.store.count()).toBe(0)
  })

  it('off loopback without a token, or with a token file others can read: CONFIG_INVALID naming admin, and no database is created', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dru-admin-sec-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const path = join(dir, 'a.db')
    for (const host of ['0.0.0.0', '::', '10.1.2.3', 'dru.example']) {
      await expect(openDru({ id: 'a', path, admin: { host, port: 0 } }), host).rejects.toMatchObject({
        code: 'CONFIG_INVALID',
        details: { field: 'admin' },
      })
    }
    const tokenFile = join(dir, 'admin.token')
    writeFileSync(tokenFile, TOKEN)
    chmodSync(tokenFile, 0o640)
    await expect(openDru({ id: 'a', path, admin: { port: 0, tokenFile } })).rejects.toThrow(
      /open to group or others \(mode 640\)/,
    )
    expect(existsSync(path)).toBe(false)
  })

  it('a taken admin port fails openDru with ADDRESS_IN_USE {host, port} and leaves the database closed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dru-admin-sec-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const squatter: Server = createServer()
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', () => r()))
    cleanups.push(() => new Promise<void>((r) => squatter.close(() => r())))
    const port = (squatter.address() as { port: number }).port
    const path = join(dir, 'a.db')
    const err = await openDru({ id: 'a', path, admin: { host: '127.0.0.1', port } }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DruError)
    expect(err).toMatchObject({ code: 'ADDRESS_IN_USE', details: { host: '127.0.0.1', port } })
    // Closed on the way out: the same file opens again (a leaked handle would hold its lock).
    const dru = await openDru({ id: 'a', path, admin: { host: '127.0.0.1', port: 0 } })
    await dru.close()
  })

  it('admin config: a short token and both token and tokenFile are CONFIG_INVALID', async () => {
    await expect(openDru({ id: 'a', path: ':memory:', admin: { port: 0, token: 'short' } })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
    })
    await expect(
      openDru({ id: 'a', path: ':memory:', admin: { port: 0, token: TOKEN, tokenFile: '/x' } }),
    ).rejects.toMatchObject({ code: 'CONFIG_INVALID' })
  })
})
