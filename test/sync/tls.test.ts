import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { cluster, DruProcess, killAll, sameFp, tempDir, waitFor } from './helpers.js'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  await killAll()
  for (const c of cleanups.splice(0)) await c()
})

/** A self-signed certificate for 127.0.0.1 (openssl is part of the base image). */
function selfSigned(dir: string): { cert: string; key: string } {
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      `${dir}/key.pem`,
      '-out',
      `${dir}/cert.pem`,
    ],
    { stdio: 'ignore' },
  )
  return { cert: readFileSync(`${dir}/cert.pem`, 'utf8'), key: readFileSync(`${dir}/key.pem`, 'utf8') }
}

describe('TLS (wss://)', () => {
  it('syncs over wss:// with a trusted CA and refuses a dialer that does not trust the certificate', async () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const { cert, key } = selfSigned(dir)
    const keys = cluster(['a', 'b', 'c'])
    const a = await DruProcess.start({ id: 'a', path: `${dir}/a.db`, keys: keys.keys('a'), tls: { cert, key } })
    await a.call('write', { n: 100, perCommit: 10 })
    const b = await DruProcess.start({
      id: 'b',
      path: `${dir}/b.db`,
      keys: keys.keys('b'),
      tls: { ca: cert },
      peers: [{ id: 'a', url: `wss://127.0.0.1:${a.port}` }],
    })
    const c = await DruProcess.start({
      id: 'c',
      path: `${dir}/c.db`,
      keys: keys.keys('c'),
      peers: [{ id: 'a', url: `wss://127.0.0.1:${a.port}` }],
    })
    await b.call('write', { n: 10 })
    await waitFor(
      'a and b converge over TLS',
      async () => sameFp(await a.fp(), await b.fp()) && (await a.fp()).count === 110,
    )
    await new Promise((r) => setTimeout(r, 500))
    const st = (
      await c.call<Array<{ connected: boolean; lastError: { code: string; message: string } | null }>>('status')
    )[0]!
    expect(st.connected).toBe(false)
    expect(st.lastError?.code).toBe('CONNECTION_FAILED')
    expect(st.lastError?.message).toMatch(/self.signed|certificate/i)
    expect((await c.fp()).count).toBe(0)
  })
})
