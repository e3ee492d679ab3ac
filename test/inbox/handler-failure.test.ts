import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { equalFingerprints } from '@dru/core'
import { generateKeys } from '@dru/sync'
import { openDru, runtimeOf, type Dru } from '@dru/node'

// The scenario, with real sockets: DRU b's application handler throws on one
// document (an ordinary bug). Before the inbox, the batch holding that event failed with
// HANDLER_FAILED, the session closed and redialed ~13 times a second, and nothing after it
// reached b. Now every event reaches b, the failing one is retried with backoff and becomes
// a dead letter, and the operator's `dru inbox retry` after the fix runs it exactly once.

const CLI = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url))
const TOKEN = 'inbox-scenario-token-0123456789'
const open: Dru[] = []
afterEach(async () => {
  while (open.length) await open.pop()!.close()
})

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  for (const until = Date.now() + timeoutMs; !(await ok());) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

function cli(args: string[], admin: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, DRU_ADMIN: admin, DRU_ADMIN_TOKEN: TOKEN }, timeout: 20_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  )
}

/** a → b over a real sync session; b has two handlers that throw on document `poison` while `app.broken`. */
async function pair(inbox: Record<string, number>) {
  const keys = { a: generateKeys(), b: generateKeys() }
  const publicKeys = { a: keys.a.publicKey, b: keys.b.publicKey }
  const common = {
    secret: 'inbox-scenario-secret-0123',
    sync: { heartbeatMs: 200, heartbeatTimeoutMs: 2_000, startupGraceMs: 300 },
  }
  const b = await openDru({
    id: 'b',
    path: ':memory:',
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0, token: TOKEN },
    keys: { privateKey: keys.b.privateKey, publicKeys },
    allowWritesWhileRestoring: true,
    inbox,
    ...common,
  })
  open.push(b)
  b.store.db.exec('create table mails (doc text not null, origin text not null, seq integer not null)')
  b.store.db.exec('create table ledger (doc text not null, seq integer not null)')
  const app = { broken: true, mailerCalls: new Map<string, number>(), ledgerCalls: new Map<string, number>() }
  const count = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1)
  // Independent events: no order needed.
  b.onEvent('mailer', (e, tx) => {
    count(app.mailerCalls, `${e.docId}#${e.seq}`)
    if (app.broken && e.docId === 'poison') throw new TypeError("Cannot read properties of undefined (reading 'email')")
    tx.db.prepare('insert into mails values (?, ?, ?)').run(e.docId, e.origin, e.seq)
  })
  // A running balance per document: its events must be seen in order.
  b.onEvent(
    'ledger',
    (e, tx) => {
      count(app.ledgerCalls, `${e.docId}#${e.seq}`)
      if (app.broken && e.docId === 'poison') throw new Error('ledger: unknown account')
      tx.db.prepare('insert into ledger values (?, ?)').run(e.docId, e.seq)
    },
    { order: 'document' },
  )
  const a = await openDru({
    id: 'a',
    path: ':memory:',
    peers: [{ id: 'b', url: `ws://127.0.0.1:${runtimeOf(b).network!.sync.port}` }],
    admin: { host: '127.0.0.1', port: 0 },
    keys: { privateKey: keys.a.privateKey, publicKeys },
    allowWritesWhileRestoring: true,
    ...common,
  })
  open.push(a)
  const write = (doc: string, n: number) =>
    a.change(doc, (d: Record<string, unknown>) => {
      d.n = n
    })
  const rows = (sql: string) => b.store.db.prepare(sql).raw().all() as unknown[][]
  return { a, b, app, write, rows, admin: runtimeOf(b).admin!.url, adminA: runtimeOf(a).admin!.url }
}

describe('one failing inbox handler does not stop replication', () => {
  it('every other event reaches b, b converges with a, the poison event is retried with backoff and dead-lettered; dru inbox retry runs it once, skip records', async () => {
    const policy = { immediateRetries: 2, delayedRetries: 3, backoffMs: 50, maxBackoffMs: 1_000 }
    const { a, b, app, write, rows, admin, adminA } = await pair(policy)
    await write('ok1', 0)
    await write('poison', 1)
    for (let i = 0; i < 20; i++) await write(`doc-${i}`, i)
    await write('poison', 2) // a later event of the failing document

    // Every event is stored on b and every other document's effects happened.
    await waitFor('b holds all of a', () => equalFingerprints(b.fingerprint(), a.fingerprint()))
    await waitFor('the mailer ran on the 21 other events', () => rows('select count(*) from mails')[0]![0] === 21)
    expect(rows("select count(*) from mails where doc = 'poison'")[0]![0]).toBe(0)
    // The ledger (order: document) ran on every other document; poison's second event waits behind its first.
    expect(rows('select count(*) from ledger')[0]![0]).toBe(21)
    // b converges with a: fingerprints, documents and their digests.
    expect(b.digest()).toEqual(a.digest())
    expect(b.get('poison')).toEqual({ n: 2 })
    expect(b.get('doc-19')).toEqual({ n: 19 })

    // Retried with backoff, then dead letters: each poison event got exactly 1 + 2 + 3 mailer calls.
    await waitFor(
      'both poison events dead for the mailer',
      () => b.inbox.list({ state: 'dead', handler: 'mailer' }).length === 2,
    )
    const mailerPoison = [...app.mailerCalls].filter(([k]) => k.startsWith('poison#'))
    expect(mailerPoison.map(([, n]) => n)).toEqual([6, 6])
    await waitFor(
      'the first ledger poison event dead',
      () => b.inbox.list({ state: 'dead', handler: 'ledger' }).length === 1,
    )
    expect(b.inbox.list({ handler: 'ledger' }).map((e) => [e.state, e.attempts])).toEqual([
      ['dead', 6],
      ['waiting', 0],
    ])
    // No hot loop: after the dead letters nothing calls the handler again (counts, not durations).
    const before = [...app.mailerCalls.values()].reduce((x, y) => x + y, 0)
    await new Promise((r) => setTimeout(r, 300))
    expect([...app.mailerCalls.values()].reduce((x, y) => x + y, 0)).toBe(before)
    // a sees b caught up: the batch holding poison was acknowledged like any other.
    await waitFor('b acknowledged everything to a', async () => {
      const { peers } = (await (await fetch(`${adminA}/status`)).json()) as {
        peers: Array<{ id: string; connected: boolean; lagEvents: number }>
      }
      return peers.some((p) => p.id === 'b' && p.connected && p.lagEvents === 0)
    })
    const status = (await (await fetch(`${admin}/status`)).json()) as { inbox: unknown }
    expect(status.inbox).toMatchObject({ pending: 0, waiting: 1, dead: 3 })

    // The operator deploys the fix and retries; each handler runs exactly once per event.
    app.broken = false
    const [firstMail, secondMail] = b.inbox.list({ state: 'dead', handler: 'mailer' })
    const ledgerHead = b.inbox.list({ state: 'dead', handler: 'ledger' })[0]!
    const retried = await cli(['inbox', 'retry', String(firstMail!.id)], admin)
    expect(retried.code, retried.stderr).toBe(0)
    expect((await cli(['inbox', 'retry', String(ledgerHead.id)], admin)).code).toBe(0)
    // The ledger's waiting event moved up and the worker runs it, in document order.
    await waitFor(
      'the ledger caught up on poison',
      () => rows("select count(*) from ledger where doc = 'poison'")[0]![0] === 2,
    )
    expect(rows("select seq from ledger where doc = 'poison' order by rowid").map((r) => r[0])).toEqual([
      firstMail!.seq,
      secondMail!.seq,
    ])
    // The second mailer dead letter: the operator decides to skip it instead.
    const skipped = await cli(['inbox', 'skip', String(secondMail!.id), '--reason', 'sent by hand'], admin)
    expect(skipped.code, skipped.stderr).toBe(0)
    expect(b.inbox.get(secondMail!.id)).toMatchObject({ state: 'skipped', note: 'sent by hand' })
    expect((await cli(['inbox', 'retry', String(firstMail!.id)], admin)).code).toBe(6) // done: gone

    // Effects exactly once per handler and accepted event.
    expect(rows('select doc, origin, seq, count(*) n from mails group by origin, seq having n > 1')).toEqual([])
    expect(rows('select count(*) from mails')[0]![0]).toBe(22) // 21 + the retried poison, not the skipped one
    expect(rows('select doc, seq, count(*) n from ledger group by doc, seq having n > 1')).toEqual([])
    expect(rows('select count(*) from ledger')[0]![0]).toBe(23)
    expect(b.inbox.list()).toEqual([])
    expect(equalFingerprints(b.fingerprint(), a.fingerprint())).toBe(true)
  }, 60_000)
})
