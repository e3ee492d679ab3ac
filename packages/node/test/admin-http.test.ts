import { request } from 'node:http'
import fc from 'fast-check'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { DruError, type LifecycleState } from '@dru/core'
import type { ConflictJson, OperationProgress } from '../src/admin-api.js'
import { startAdminServer, type AdminServer } from '../src/admin-http.js'
import { NDJSON_CONTENT_TYPE } from '../src/admin-io.js'
import type { AdminSource } from '../src/admin-routes.js'
import { createMetrics, type DruMetrics } from '../src/metrics.js'

/** A fake DRU behind the admin API: real metrics registry, scripted everything else. */
function fakeSource(metrics: DruMetrics) {
  const calls: string[] = []
  const conflicts = new Map<string, ConflictJson>([
    [
      '7',
      {
        id: 7,
        docId: 'order-42',
        path: ['status'],
        values: [
          { origin: 'us-east-1/1', value: 'paid', hlc: null },
          { origin: 'eu-west-1/1', value: 'cancelled', hlc: null },
        ],
        detectedAt: 1_700_000_000_000,
        status: 'open',
      },
    ],
  ])
  let state: LifecycleState = 'catching-up'
  const source: AdminSource & { setState(s: LifecycleState): void } = {
    setState: (s) => {
      state = s
    },
    state: () => state,
    readyWeight: () => (state === 'active' ? 40 : 0),
    status: () => ({
      id: 'eu-west-1',
      origin: 'eu-west-1/1',
      state,
      since: '2026-11-25T12:00:00.000Z',
      fingerprint: { digest: 'abcd', vv: { 'eu-west-1/1': 3 } },
      peers: [{ id: 'us-east-1', connected: true, lagEvents: 4, lagSeconds: 1.5 }],
      conflictsOpen: [...conflicts.values()].filter((c) => c.status === 'open').length,
    }),
    metrics: () => metrics.render(),
    gaps: () => ({
      peers: [
        {
          peer: 'us-east-1',
          connected: true,
          weLack: 2,
          theyLack: 0,
          origins: [{ origin: 'us-east-1/1', local: 3, remote: 5, weLack: 2, theyLack: 0 }],
        },
      ],
    }),
    async verify({ deep }, progress) {
      calls.push(`verify deep=${deep}`)
      for (let i = 1; i <= 3; i++) progress({ phase: 'compare', done: i, total: 3, unit: 'docs' })
      return { ok: true, deep, local: { digest: 'abcd' }, peers: [{ peer: 'us-east-1', reachable: true, equal: true }] }
    },
    conflicts: {
      list: (filter) => [...conflicts.values()].filter((c) => filter === 'all' || c.status === filter),
      get: (id) => conflicts.get(id),
      resolve(id, value) {
        const c = conflicts.get(id)
        if (!c) throw new DruError('NOT_FOUND', `no conflict ${id}`)
        if (c.status !== 'open') throw new DruError('INVALID_ARGUMENT', `conflict ${id} is already resolved`)
        conflicts.set(id, { ...c, status: 'resolved', resolution: value })
        return { id: c.id, status: 'resolved', event: { origin: 'eu-west-1/1', seq: 4 } }
      },
    },
    async compact(progress) {
      progress({ phase: 'snapshot', done: 1, total: 2 })
      throw new DruError('FORK', 'fork seen on us-east-1/1 at seq 3')
    },
  }
  return { source, calls, conflicts }
}

interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  json?: any
}

function call(
  server: AdminServer,
  method: string,
  path: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    // The CLI's way: every POST is JSON (the security tests below send what a browser would).
    const all =
      method === 'POST' && !('content-type' in headers) ? { 'content-type': 'application/json', ...headers } : headers
    const req = request({ host: '127.0.0.1', port: server.port, method, path, headers: all }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let json: unknown
        try {
          json = JSON.parse(text)
        } catch {
          json = undefined
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json })
      })
    })
    req.on('error', reject)
    if (body !== undefined) req.write(body)
    req.end()
  })
}

describe('admin HTTP', () => {
  let server: AdminServer
  let fake: ReturnType<typeof fakeSource>
  let metrics: DruMetrics
  const errors: unknown[] = []

  beforeEach(async () => {
    metrics = createMetrics({ labels: { dru: 'eu-west-1' } })
    fake = fakeSource(metrics)
    errors.length = 0
    server = await startAdminServer({ port: 0, source: fake.source, onError: (e) => errors.push(e) })
  })
  afterEach(async () => {
    await server.close()
  })

  it('binds loopback on an ephemeral port by default host', () => {
    expect(server.host).toBe('127.0.0.1')
    expect(server.port).toBeGreaterThan(0)
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`)
  })

  it('/healthz answers 200 whatever the lifecycle state', async () => {
    const r = await call(server, 'GET', '/healthz')
    expect(r.status).toBe(200)
    expect(r.json).toEqual({ ok: true })
    expect((await call(server, 'HEAD', '/healthz')).status).toBe(200)
  })

  it('/readyz is 503 with the state until active, then 200', async () => {
    for (const s of ['starting', 'catching-up', 'verifying', 'isolated'] as const) {
      fake.source.setState(s)
      const r = await call(server, 'GET', '/readyz')
      expect(r.status).toBe(503)
      expect(r.json).toEqual({ ready: false, state: s, weight: 0 })
    }
    fake.source.setState('active')
    const r = await call(server, 'GET', '/readyz')
    expect(r.status).toBe(200)
    expect(r.json).toEqual({ ready: true, state: 'active', weight: 40 })
  })

  it('/status returns the source status as JSON', async () => {
    const r = await call(server, 'GET', '/status')
    expect(r.status).toBe(200)
    expect(r.headers['content-type']).toMatch(/^application\/json/)
    expect(r.json.state).toBe('catching-up')
    expect(r.json.peers[0]).toEqual({ id: 'us-east-1', connected: true, lagEvents: 4, lagSeconds: 1.5 })
    expect(r.json.conflictsOpen).toBe(1)
  })

  it('/metrics serves Prometheus text with the right content type and live values', async () => {
    metrics.eventsCommitted.inc({ source: 'local' }, 5)
    metrics.setLifecycleState('verifying')
    metrics.lifecycleTransitions.inc({ from: 'catching-up', to: 'verifying' })
    metrics.commitLatency.observe(0.002)
    metrics.lagEvents.set({ peer: 'us-east-1', direction: 'inbound' }, 2)
    const r = await call(server, 'GET', '/metrics')
    expect(r.status).toBe(200)
    expect(r.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8')
    expect(r.text).toContain('# TYPE dru_events_committed_total counter')
    expect(r.text).toContain('dru_events_committed_total{source="local",dru="eu-west-1"} 5')
    expect(r.text).toContain('dru_events_committed_total{source="remote",dru="eu-west-1"} 0')
    expect(r.text).toContain('dru_lifecycle_state{state="verifying",dru="eu-west-1"} 1')
    expect(r.text).toContain('dru_lifecycle_state{state="active",dru="eu-west-1"} 0')
    expect(r.text).toContain('dru_lifecycle_transitions_total{from="catching-up",to="verifying",dru="eu-west-1"} 1')
    expect(r.text).toContain('dru_commit_latency_seconds_bucket{le="0.0025",dru="eu-west-1"} 1')
    expect(r.text).toContain('dru_peer_lag_events{peer="us-east-1",direction="inbound",dru="eu-west-1"} 2')
  })

  it('records lifecycle transitions from createLifecycle into the counter and the state gauge', async () => {
    const { createLifecycle } = await import('@dru/core')
    const lc = createLifecycle({ onTransition: (t) => metrics.recordTransition(t) })
    lc.signal('peers-reachable')
    lc.signal('caught-up')
    lc.signal('verified')
    lc.signal('all-peers-lost')
    lc.signal('peers-reachable')
    const text = await metrics.render()
    expect(text).toContain('dru_lifecycle_transitions_total{from="starting",to="catching-up",dru="eu-west-1"} 1')
    expect(text).toContain('dru_lifecycle_transitions_total{from="isolated",to="catching-up",dru="eu-west-1"} 1')
    expect(text).toContain('dru_lifecycle_transitions_total{from="active",to="isolated",dru="eu-west-1"} 1')
    expect(text).toContain('dru_lifecycle_state{state="catching-up",dru="eu-west-1"} 1')
    expect(text).toContain('dru_lifecycle_state{state="isolated",dru="eu-west-1"} 0')
    expect(text).toContain('dru_lifecycle_state{state="active",dru="eu-west-1"} 0')
  })

  it('keeps each DRU on its own registry', async () => {
    const other = createMetrics()
    other.eventsApplied.inc(9)
    expect(await metrics.render()).toContain('dru_events_applied_total{dru="eu-west-1"} 0')
    expect(await other.render()).toContain('dru_events_applied_total 9')
  })

  it('/gaps returns per-peer, per-origin gaps', async () => {
    const r = await call(server, 'GET', '/gaps')
    expect(r.status).toBe(200)
    expect(r.json.peers[0].origins[0]).toEqual({ origin: 'us-east-1/1', local: 3, remote: 5, weLack: 2, theyLack: 0 })
  })

  it('POST /verify passes deep through and returns the result', async () => {
    const shallow = await call(server, 'POST', '/verify')
    expect(shallow.status).toBe(200)
    expect(shallow.json.deep).toBe(false)
    const deep = await call(server, 'POST', '/verify?deep=1')
    expect(deep.json).toMatchObject({ ok: true, deep: true })
    expect(fake.calls).toEqual(['verify deep=false', 'verify deep=true'])
    const bad = await call(server, 'POST', '/verify?deep=maybe')
    expect(bad.status).toBe(400)
    expect(bad.json.code).toBe('INVALID_ARGUMENT')
  })

  it('streams progress lines then the result to NDJSON clients', async () => {
    const r = await call(server, 'POST', '/verify?deep=true', undefined, { accept: NDJSON_CONTENT_TYPE })
    expect(r.status).toBe(200)
    expect(r.headers['content-type']).toBe(NDJSON_CONTENT_TYPE)
    const lines = r.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(lines.slice(0, 3).map((l: { progress: OperationProgress }) => l.progress.done)).toEqual([1, 2, 3])
    expect(lines[3]).toMatchObject({ result: { ok: true, deep: true } })
  })

  it('ends a stream with an error line when the operation fails midway', async () => {
    const r = await call(server, 'POST', '/compact', undefined, { accept: NDJSON_CONTENT_TYPE })
    const lines = r.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(lines[0]).toEqual({ progress: { phase: 'snapshot', done: 1, total: 2 } })
    expect(lines[1]).toEqual({ error: { code: 'FORK', message: 'fork seen on us-east-1/1 at seq 3' } })
    // without streaming, the same failure is a 409 with the code
    const plain = await call(server, 'POST', '/compact')
    expect(plain.status).toBe(409)
    expect(plain.json).toEqual({ code: 'FORK', message: 'fork seen on us-east-1/1 at seq 3' })
  })

  it('lists, shows and resolves conflicts', async () => {
    const list = await call(server, 'GET', '/conflicts')
    expect(list.json.map((c: ConflictJson) => c.id)).toEqual([7])
    const show = await call(server, 'GET', '/conflicts/7')
    expect(show.json.docId).toBe('order-42')
    const resolved = await call(server, 'POST', '/conflicts/7/resolve', JSON.stringify({ value: 'paid' }), {
      'content-type': 'application/json',
    })
    expect(resolved.status).toBe(200)
    expect(resolved.json).toEqual({ id: 7, status: 'resolved', event: { origin: 'eu-west-1/1', seq: 4 } })
    expect(fake.conflicts.get('7')?.resolution).toBe('paid')
    expect((await call(server, 'GET', '/conflicts')).json).toEqual([])
    expect((await call(server, 'GET', '/conflicts?status=resolved')).json).toHaveLength(1)
    expect((await call(server, 'GET', '/conflicts?status=all')).json).toHaveLength(1)
    const again = await call(server, 'POST', '/conflicts/7/resolve', JSON.stringify({ value: 'x' }))
    expect(again.status).toBe(400)
    expect(again.json.code).toBe('INVALID_ARGUMENT')
  })

  it('answers unknown conflicts, routes and methods with 4xx JSON', async () => {
    const missing = await call(server, 'GET', '/conflicts/99')
    expect(missing.status).toBe(404)
    expect(missing.json).toEqual({ code: 'NOT_FOUND', message: 'no conflict "99"' })
    const resolveMissing = await call(server, 'POST', '/conflicts/99/resolve', '{"value":1}')
    expect(resolveMissing.status).toBe(404)
    const route = await call(server, 'GET', '/nope')
    expect(route.status).toBe(404)
    expect(route.json.code).toBe('NOT_FOUND')
    const method = await call(server, 'DELETE', '/status')
    expect(method.status).toBe(405)
    expect(method.headers.allow).toBe('GET')
    expect(method.json.code).toBe('INVALID_ARGUMENT')
    const getOnPost = await call(server, 'GET', '/verify')
    expect(getOnPost.status).toBe(405)
    const badFilter = await call(server, 'GET', '/conflicts?status=pending')
    expect(badFilter.status).toBe(400)
    const badEscape = await call(server, 'GET', '/conflicts/%E0%A4%A')
    expect(badEscape.status).toBe(400)
  })

  it('refuses bad resolve bodies without crashing', async () => {
    const notJson = await call(server, 'POST', '/conflicts/7/resolve', '{value: paid}')
    expect(notJson.status).toBe(400)
    expect(notJson.json.code).toBe('MALFORMED')
    const empty = await call(server, 'POST', '/conflicts/7/resolve', '')
    expect(empty.status).toBe(400)
    expect(empty.json.code).toBe('INVALID_ARGUMENT')
    const noValue = await call(server, 'POST', '/conflicts/7/resolve', '{"val":1}')
    expect(noValue.status).toBe(400)
    expect(noValue.json.message).toMatch(/"value"/)
    const array = await call(server, 'POST', '/conflicts/7/resolve', '[1]')
    expect(array.status).toBe(400)
    // still serving
    expect((await call(server, 'GET', '/healthz')).status).toBe(200)
    expect(fake.conflicts.get('7')?.status).toBe('open')
  })

  it('refuses bodies over the size limit with 413', async () => {
    await server.close()
    server = await startAdminServer({ port: 0, source: fake.source, maxBodyBytes: 1024 })
    const big = JSON.stringify({ value: 'x'.repeat(2048) })
    const r = await call(server, 'POST', '/conflicts/7/resolve', big)
    expect(r.status).toBe(413)
    expect(r.json.code).toBe('INVALID_ARGUMENT')
    expect(r.json.message).toMatch(/exceeds 1024 bytes/)
    // chunked (no content-length) is counted as it arrives
    const chunked = await call(server, 'POST', '/conflicts/7/resolve', big, { 'transfer-encoding': 'chunked' })
    expect(chunked.status).toBe(413)
    expect(fake.conflicts.get('7')?.status).toBe('open')
    expect((await call(server, 'GET', '/healthz')).status).toBe(200)
  })

  it('turns unexpected source failures into 500 INTERNAL and reports them', async () => {
    await server.close()
    server = await startAdminServer({
      port: 0,
      source: {
        ...fake.source,
        status: () => {
          throw new TypeError('boom')
        },
        gaps: async () => {
          throw new DruError('CLOSED', 'dru is closed')
        },
      },
      onError: (e) => errors.push(e),
    })
    const r = await call(server, 'GET', '/status')
    expect(r.status).toBe(500)
    expect(r.json).toEqual({ code: 'INTERNAL', message: 'internal error: boom' })
    expect(errors).toHaveLength(1)
    const closed = await call(server, 'GET', '/gaps')
    expect(closed.status).toBe(503)
    expect(closed.json.code).toBe('CLOSED')
    expect((await call(server, 'GET', '/healthz')).status).toBe(200)
  })

  it('answers 501 NOT_SUPPORTED for operations the source lacks', async () => {
    await server.close()
    const { compact: _c, ...rest } = fake.source
    server = await startAdminServer({ port: 0, source: rest })
    const compact = await call(server, 'POST', '/compact')
    expect(compact.status).toBe(501)
    expect(compact.json.code).toBe('NOT_SUPPORTED')
    const decommission = await call(server, 'POST', '/decommission/ap-south-1')
    expect(decommission.status).toBe(501)
  })

  it('passes decoded ids to decommission', async () => {
    await server.close()
    const seen: string[] = []
    server = await startAdminServer({
      port: 0,
      source: { ...fake.source, decommission: (id) => (seen.push(id), { id, removed: true, floor: { 'a/1': 3 } }) },
    })
    const r = await call(server, 'POST', '/decommission/ap%2Dsouth-1')
    expect(r.status).toBe(200)
    expect(r.json).toEqual({ id: 'ap-south-1', removed: true, floor: { 'a/1': 3 } })
    expect(seen).toEqual(['ap-south-1'])
  })

  it('answers any method, path and body with a status and, for errors, a JSON {code, message}', async () => {
    const runs = Math.max(20, Math.floor(Number(process.env.DRU_PROPERTY_RUNS ?? 300) / 3))
    const segment = fc.oneof(
      fc.constantFrom(
        'healthz',
        'readyz',
        'status',
        'metrics',
        'gaps',
        'verify',
        'conflicts',
        '7',
        'resolve',
        'compact',
        'decommission',
        '%',
        '%zz',
        '..',
        '',
      ),
      fc.string({ maxLength: 8 }).map(encodeURIComponent),
    )
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'PATCH'),
        fc.array(segment, { minLength: 1, maxLength: 4 }),
        fc.option(fc.constantFrom('?deep=1', '?status=all', '?deep=x', '?status=', '?a=%'), { nil: '' }),
        fc.option(
          fc.oneof(
            fc.json(),
            fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
          ),
          { nil: undefined },
        ),
        async (method, segments, query, body) => {
          const r = await call(server, method, `/${segments.join('/')}${query}`, body)
          expect(r.status).toBeGreaterThanOrEqual(200)
          expect(r.status).toBeLessThan(600)
          if (r.status >= 400 && method !== 'HEAD' && !(r.status === 503 && r.json?.state)) {
            expect(typeof r.json?.code).toBe('string')
            expect(typeof r.json?.message).toBe('string')
          }
        },
      ),
      { numRuns: runs, seed: 61 },
    )
    expect((await call(server, 'GET', '/healthz')).status).toBe(200)
    expect(errors).toEqual([]) // nothing reached the 5xx "unexpected" path
  })

  it('close() drops idle keep-alive connections instead of hanging', async () => {
    const { Agent } = await import('node:http')
    const agent = new Agent({ keepAlive: true })
    await new Promise<void>((resolve, reject) => {
      request({ host: '127.0.0.1', port: server.port, path: '/healthz', agent }, (res) => {
        res.resume()
        res.on('end', resolve)
      })
        .on('error', reject)
        .end()
    })
    const started = Date.now()
    await server.close()
    expect(Date.now() - started).toBeLessThan(2_000)
    agent.destroy()
    server = await startAdminServer({ port: 0, source: fake.source }) // for afterEach
  })
})
