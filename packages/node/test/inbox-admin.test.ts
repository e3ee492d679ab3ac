import { afterEach, describe, expect, it } from 'vitest'
import type { DruEvent } from '@dru/core'
import { openDru, runtimeOf, type Dru } from '../src/index.js'

const open: Dru[] = []
afterEach(async () => {
  while (open.length) await open.pop()!.close()
})

const TOKEN = 'inbox-admin-token-0123456789'

async function remoteEvents(docs: string[]): Promise<DruEvent[]> {
  const a = await openDru({ id: 'a', path: ':memory:' })
  for (const [i, d] of docs.entries()) {
    await a.change(d, (doc: Record<string, unknown>) => {
      doc.i = i
    })
  }
  const events = [...a.store.eventsMissing({})].flat()
  await a.close()
  return events
}

/** A DRU with the admin API, a handler that fails on document `poison` until fixed, and one dead letter. */
async function setup() {
  const dru = await openDru({
    id: 'b',
    path: ':memory:',
    admin: { host: '127.0.0.1', port: 0, token: TOKEN },
    inbox: { immediateRetries: 0, delayedRetries: 0 },
  })
  open.push(dru)
  dru.store.db.exec('create table shipped (doc text)')
  const state = { broken: true, runs: 0 }
  dru.onEvent('shipper', (e, tx) => {
    state.runs++
    if (state.broken && e.docId === 'poison') throw new RangeError(`no carrier for ${e.docId}`)
    tx.db.prepare('insert into shipped values (?)').run(e.docId)
  })
  dru.store.ingest(await remoteEvents(['ok-1', 'poison', 'ok-2']))
  const url = runtimeOf(dru).admin!.url
  const get = async (path: string) => {
    const res = await fetch(`${url}${path}`)
    return { status: res.status, body: (await res.json()) as Record<string, any> }
  }
  const post = async (
    path: string,
    body: unknown = {},
    headers: Record<string, string> = { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
  ) => {
    const res = await fetch(`${url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) })
    return { status: res.status, body: (await res.json()) as Record<string, any> }
  }
  const shipped = () => dru.store.db.prepare('select doc from shipped order by rowid').pluck().all()
  return { dru, state, url, get, post, shipped }
}

describe('inbox admin API', () => {
  it('/status, /metrics and GET /inbox show the dead letter, its handler, event and error', async () => {
    const { get, url } = await setup()
    const status = await get('/status')
    expect(status.body.inbox).toEqual({
      pending: 0,
      waiting: 0,
      dead: 1,
      handlers: [{ handler: 'shipper', registered: true, pending: 0, waiting: 0, dead: 1 }],
    })
    const metrics = await (await fetch(`${url}/metrics`)).text()
    expect(metrics).toMatch(/^dru_inbox_dead_letters\{handler="shipper",dru="b"\} 1$/m)
    expect(metrics).toMatch(/^dru_inbox_pending\{handler="shipper",dru="b"\} 0$/m)
    expect(metrics).toMatch(/^dru_inbox_handler_registered\{handler="shipper",dru="b"\} 1$/m)
    expect(metrics).toMatch(/^dru_inbox_handler_failures_total\{handler="shipper",dru="b"\} 1$/m)
    expect(metrics).toMatch(/^dru_inbox_dead_lettered_total\{handler="shipper",dru="b"\} 1$/m)
    const list = await get('/inbox')
    expect(list.status).toBe(200)
    expect(list.body.counts).toMatchObject({ pending: 0, waiting: 0, dead: 1, skipped: 0 })
    expect(list.body.entries).toHaveLength(1)
    const [entry] = list.body.entries
    expect(entry).toMatchObject({
      handler: 'shipper',
      seq: 2,
      docId: 'poison',
      state: 'dead',
      attempts: 1,
      lastError: 'RangeError: no carrier for poison',
      registered: true,
    })
    expect(entry).not.toHaveProperty('errorStack')
    const one = await get(`/inbox/${entry.id}`)
    expect(one.body.errorStack).toMatch(/^RangeError: no carrier for poison\n\s+at /)
    expect((await get('/inbox?state=pending')).body.entries).toEqual([])
    expect((await get('/inbox?state=dead&handler=other')).body.entries).toEqual([])
  })

  it('refuses bad requests with typed errors and changes nothing', async () => {
    const { get, post, dru } = await setup()
    const id = dru.inbox.list()[0]!.id
    expect((await get('/inbox?state=broken')).status).toBe(400)
    expect((await get('/inbox?limit=0')).status).toBe(400)
    expect((await get('/inbox?limit=abc')).status).toBe(400)
    expect((await get('/inbox/999')).body.code).toBe('NOT_FOUND')
    expect((await get('/inbox/abc')).status).toBe(404)
    // The admin security rules hold for the new POSTs: token and JSON.
    expect((await post(`/inbox/${id}/retry`, {}, { 'content-type': 'application/json' })).status).toBe(401)
    expect(
      (await post(`/inbox/${id}/skip`, {}, { 'content-type': 'text/plain', authorization: `Bearer ${TOKEN}` })).status,
    ).toBe(415)
    expect((await post(`/inbox/${id}/skip`, { reason: 42 })).body.code).toBe('INVALID_ARGUMENT')
    expect((await post(`/inbox/${id}/retry`, { force: true })).body.code).toBe('INVALID_ARGUMENT')
    expect((await post('/inbox/retry-dead', { handler: 7 })).status).toBe(400)
    expect((await post('/inbox/999/retry')).status).toBe(404)
    expect((await post('/inbox/forget', {})).body.code).toBe('INVALID_ARGUMENT')
    expect((await post('/inbox/forget', { handler: 'shipper' })).body.code).toBe('INVALID_ARGUMENT') // registered
    expect((await post('/inbox/forget', { handler: 'nobody' })).body.code).toBe('NOT_FOUND')
    expect((await post('/inbox/forget', { handler: 'shipper' }, { 'content-type': 'application/json' })).status).toBe(
      401,
    )
    expect(dru.inbox.list()).toMatchObject([{ id, state: 'dead', attempts: 1 }])
  })

  it('POST retry runs the handler (again failing, then fixed: exactly once), skip records, retry-dead requeues', async () => {
    const { post, dru, state, shipped } = await setup()
    const id = dru.inbox.list()[0]!.id
    const again = await post(`/inbox/${id}/retry`)
    expect(again.status).toBe(200)
    expect(again.body).toMatchObject({
      id,
      outcome: 'failed',
      error: 'RangeError: no carrier for poison',
      entry: { state: 'dead', attempts: 2 },
    })
    state.broken = false
    expect((await post(`/inbox/${id}/retry`)).body).toEqual({ id, outcome: 'done' })
    expect(shipped()).toEqual(['ok-1', 'ok-2', 'poison'])
    expect((await post(`/inbox/${id}/retry`)).status).toBe(404)
    expect(shipped()).toEqual(['ok-1', 'ok-2', 'poison'])

    expect((await post(`/inbox/${id}/skip`)).status).toBe(404) // done: nothing is owed any more

    // Skip: a second failing event, given up with a reason.
    state.broken = true
    expect(await poisonFromAnotherOrigin(dru)).toBe(1)
    const dead = dru.inbox.list({ state: 'dead' })
    expect(dead).toHaveLength(1)
    const s = await post(`/inbox/${dead[0]!.id}/skip`, { reason: 'refunded by hand, ticket 42' })
    expect(s.body).toMatchObject({ id: dead[0]!.id, state: 'skipped', note: 'refunded by hand, ticket 42' })
    expect((await post(`/inbox/${dead[0]!.id}/skip`)).status).toBe(400)
    expect((await post('/inbox/retry-dead', {})).body).toEqual({ requeued: 0 })
  })
})

/** Feeds the DRU one more remote origin whose single event is on document `poison` (so it fails again). */
async function poisonFromAnotherOrigin(dru: Dru): Promise<number> {
  const x = await openDru({ id: 'x', path: ':memory:' })
  await x.change('poison', (d: Record<string, unknown>) => {
    d.again = true
  })
  const events = [...x.store.eventsMissing({})].flat()
  await x.close()
  return dru.store.ingest(events).stored.length
}
