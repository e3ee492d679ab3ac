import { afterEach, describe, expect, it } from 'vitest'
import type { DruEvent } from '@dru/core'
import { openDru, runtimeOf, type Dru } from '../src/index.js'

// A careless operator against POST /inbox/forget: bad bodies are refused and change nothing.

const open: Dru[] = []
afterEach(async () => {
  while (open.length) await open.pop()!.close()
})

const TOKEN = 'inbox-forget-attack-token-0123'

async function remoteEvents(docs: string[]): Promise<DruEvent[]> {
  const a = await openDru({ id: 'a', path: ':memory:' })
  for (const [i, d] of docs.entries()) await a.change(d, (doc: Record<string, unknown>) => void (doc.i = i))
  const events = [...a.store.eventsMissing({})].flat()
  await a.close()
  return events
}

describe('POST /inbox/forget under attack', () => {
  it('refuses non-strings, huge and path-like names, unknown fields and bad JSON; forgets only what it names', async () => {
    const dru = await openDru({
      id: 'b',
      path: ':memory:',
      admin: { host: '127.0.0.1', port: 0, token: TOKEN },
      inbox: { autoRetry: false },
    })
    open.push(dru)
    dru.onEvent('gone', () => undefined)()
    dru.onEvent('kept', () => undefined)()
    dru.store.ingest(await remoteEvents(['d1', 'd2']))
    const url = runtimeOf(dru).admin!.url
    const raw = async (body: string, auth = true) => {
      const res = await fetch(`${url}/inbox/forget`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${TOKEN}` } : {}) },
        body,
      })
      return { status: res.status, body: (await res.json()) as Record<string, unknown> }
    }
    const before = dru.inbox.list({ state: 'all' })
    expect(before).toHaveLength(4)
    for (const body of [
      'null',
      '[]',
      '"gone"',
      '{"handler":null}',
      '{"handler":7}',
      '{"handler":["gone"]}',
      '{"handler":{"name":"gone"}}',
      '{"handler":"gone","force":true}',
      `{"handler":"${'g'.repeat(100_000)}"}`,
      '{"handler":"../gone"}',
      '{"handler":"gone/x"}',
      '{"handler":"gone%2Fx"}',
      '{"handler":" gone"}',
      '{"handler":""}',
      '{"handler":"gone\\u0000"}',
      '{"handler":',
    ]) {
      const r = await raw(body)
      expect([400, 413], body.slice(0, 40)).toContain(r.status)
    }
    expect((await raw('{"handler":"gone"}', false)).status).toBe(401)
    expect(dru.inbox.list({ state: 'all' })).toEqual(before)
    const ok = await raw('{"handler":"gone"}')
    expect(ok).toMatchObject({ status: 200, body: { handler: 'gone', dropped: 2 } })
    expect(dru.inbox.list({ state: 'all' }).map((e) => e.handler)).toEqual(['kept', 'kept'])
    expect((await raw('{"handler":"gone"}')).status).toBe(404)
    const metrics = await (await fetch(`${url}/metrics`)).text()
    expect(metrics).toMatch(/^dru_inbox_handler_registered\{handler="kept",dru="b"\} 0$/m)
    expect(metrics).not.toMatch(/dru_inbox_handler_registered\{handler="gone"/)
  })
})
