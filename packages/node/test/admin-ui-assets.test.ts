import { Script } from 'node:vm'
import { afterEach, describe, expect, it } from 'vitest'
import type { DruError } from '@dru/core'
import type { AdminServer } from '../src/admin-http.js'
import { admitAdminRequest } from '../src/admin-guard.js'
import { DASHBOARD_CSP, DASHBOARD_PATHS, DASHBOARD_POLL_MS } from '../src/admin-ui/index.js'
import { DASHBOARD_HTML } from '../src/admin-ui/dashboard-html.js'
import { DASHBOARD_SCRIPT } from '../src/admin-ui/dashboard-script.js'
import { openDru, runtimeOf, type Dru } from '../src/index.js'

// The dashboard's files as the admin server serves them, without a browser (the browser
// test is admin-ui.test.ts): headers, methods, and the token rule for them off loopback.

const TOKEN = 'dashboard-assets-token-0123456789'
const cleanups: Array<() => unknown> = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

async function adminOf(): Promise<{ dru: Dru; admin: AdminServer }> {
  const dru = await openDru({ id: 'a', path: ':memory:', admin: { host: '127.0.0.1', port: 0, token: TOKEN } })
  cleanups.push(() => dru.close())
  return { dru, admin: runtimeOf(dru).admin! }
}

describe('the dashboard files', () => {
  it('are served with a strict CSP, no framing and no caching; nothing else under /ui', async () => {
    const { admin } = await adminOf()
    const types: Record<string, RegExp> = {
      '/ui': /^text\/html/,
      '/ui/app.js': /^text\/javascript/,
      '/ui/style.css': /^text\/css/,
      '/ui/favicon.svg': /^image\/svg\+xml/,
    }
    expect([...DASHBOARD_PATHS].sort()).toEqual(Object.keys(types).sort())
    for (const [path, type] of Object.entries(types)) {
      const res = await fetch(`${admin.url}${path}`)
      expect(res.status, path).toBe(200)
      expect(res.headers.get('content-type'), path).toMatch(type)
      expect(res.headers.get('content-security-policy'), path).toBe(DASHBOARD_CSP)
      expect(res.headers.get('x-frame-options'), path).toBe('DENY')
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff')
      expect(res.headers.get('cache-control'), path).toBe('no-store')
      expect(res.headers.get('access-control-allow-origin'), path).toBeNull()
      expect((await res.text()).length, path).toBeGreaterThan(0)
    }
    expect(DASHBOARD_CSP).toMatch(/^default-src 'self';.*frame-ancestors 'none'/)
    const head = await fetch(`${admin.url}/ui`, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(await head.text()).toBe('')
    const missing = await fetch(`${admin.url}/ui/other.js`)
    expect(missing.status).toBe(404)
    expect(await missing.json()).toMatchObject({ code: 'NOT_FOUND' })
    // Read-only: a POST is 405 like any wrong method, after the token check.
    const post = await fetch(`${admin.url}/ui`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: '{}',
    })
    expect(post.status).toBe(405)
  })

  it('hold no inline script or style, and the script parses and polls at most every 500 ms', () => {
    expect(DASHBOARD_HTML).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/)
    expect(DASHBOARD_HTML).not.toMatch(/\sstyle=|<style|\son[a-z]+=/i)
    expect(DASHBOARD_HTML).toContain(`data-poll-ms="${DASHBOARD_POLL_MS}"`)
    expect(DASHBOARD_POLL_MS).toBeLessThanOrEqual(500)
    expect(() => new Script(DASHBOARD_SCRIPT, { filename: 'app.js' })).not.toThrow()
    // Values from applications are set as text, never parsed as markup.
    expect(DASHBOARD_SCRIPT).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/)
  })

  it('load without the token off loopback, as the probes do; every JSON read still needs it', () => {
    const policy = { allowedHosts: new Set(['10.0.0.5:7401']), loopback: false, token: TOKEN }
    const codeOf = (
      method: string,
      path: string,
      extra: { authorization?: string; origin?: string; host?: string } = {},
    ) => {
      try {
        admitAdminRequest(
          {
            method,
            path,
            host: extra.host ?? '10.0.0.5:7401',
            origin: extra.origin,
            authorization: extra.authorization,
            contentType: method === 'POST' ? 'application/json' : undefined,
          },
          policy,
        )
        return 'ok'
      } catch (err) {
        return (err as DruError).code
      }
    }
    for (const path of DASHBOARD_PATHS) expect(codeOf('GET', path), path).toBe('ok')
    for (const path of ['/ui/other.js', '/status', '/gaps', '/conflicts', '/metrics'])
      expect(codeOf('GET', path), path).toBe('UNAUTHORIZED')
    expect(codeOf('GET', '/status', { authorization: `Bearer ${TOKEN}` })).toBe('ok')
    expect(codeOf('POST', '/ui')).toBe('UNAUTHORIZED')
    expect(codeOf('POST', '/conflicts/1/resolve', { origin: 'http://10.0.0.5:7401' })).toBe('UNAUTHORIZED')
    expect(
      codeOf('POST', '/conflicts/1/resolve', { origin: 'http://10.0.0.5:7401', authorization: `Bearer ${TOKEN}` }),
    ).toBe('ok')
    // The Host and Origin rules still hold for the page itself.
    expect(codeOf('GET', '/ui', { host: 'evil.example:7401' })).toBe('FORBIDDEN')
    expect(codeOf('GET', '/ui', { origin: 'http://evil.example' })).toBe('FORBIDDEN')
  })
})
