import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { openDru, runtimeOf, type Dru } from '@dru/node'

// The built CLI, as operators run it, against a real DRU's admin API.
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const TOKEN = 'cli-inbox-token-0123456789'

function dru(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN, ...args],
      { env: { ...process.env, ...env }, timeout: 20_000 },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? null) : 0
        resolve({ code: typeof code === 'number' ? code : null, stdout, stderr })
      },
    )
  })
}

const open: Dru[] = []
afterEach(async () => {
  while (open.length) await open.pop()!.close()
})

async function setup() {
  const a = await openDru({ id: 'a', path: ':memory:' })
  for (const doc of ['ok-1', 'poison', 'ok-2']) {
    await a.change(doc, (d: Record<string, unknown>) => {
      d.doc = doc
    })
  }
  const events = [...a.store.eventsMissing({})].flat()
  await a.close()
  const b = await openDru({
    id: 'b',
    path: ':memory:',
    admin: { host: '127.0.0.1', port: 0, token: TOKEN },
    inbox: { immediateRetries: 0, delayedRetries: 0 },
  })
  open.push(b)
  b.store.db.exec('create table mails (doc text)')
  const app = { broken: true }
  b.onEvent('mailer', (e, tx) => {
    if (app.broken && e.docId === 'poison') throw new Error('template "poison" is missing')
    tx.db.prepare('insert into mails values (?)').run(e.docId)
  })
  b.store.ingest(events)
  const env = { DRU_ADMIN: runtimeOf(b).admin!.url, DRU_ADMIN_TOKEN: TOKEN }
  const mails = () => b.store.db.prepare('select doc from mails order by rowid').pluck().all()
  return { b, app, env, mails, id: b.inbox.list()[0]!.id }
}

describe('dru inbox', () => {
  it('list and show name the handler, the event, the attempts and the error; status counts dead letters', async () => {
    const { env, id, b } = await setup()
    const origin = b.inbox.get(id)!.origin
    const list = await dru(['inbox', 'list'], env)
    expect(list.code, list.stderr).toBe(0)
    expect(list.stdout).toMatch(/^ID +HANDLER +EVENT +DOC +STATE +ATTEMPTS +WHEN +LAST ERROR$/m)
    expect(list.stdout).toMatch(
      new RegExp(
        `^${id} +mailer +${origin.replace('/', '\\/')}#2 +poison +dead +1 +dead since \\S+ +Error: template "poison" is missing$`,
        'm',
      ),
    )
    expect(list.stdout).toMatch(/^0 pending, 0 waiting, 1 dead$/m)
    const json = JSON.parse((await dru(['inbox', 'list', '--state', 'dead', '--json'], env)).stdout)
    expect(json.entries.map((e: { id: number }) => e.id)).toEqual([id])
    const show = await dru(['inbox', 'show', String(id)], env)
    expect(show.code).toBe(0)
    expect(show.stdout).toMatch(/^state +dead$/m)
    expect(show.stdout).toMatch(/^last error +Error: template "poison" is missing$/m)
    expect(show.stdout).toMatch(/^Error: template "poison" is missing\n\s+at /m)
    expect(show.stdout).toContain(`retry with: dru inbox retry ${id}`)
    const status = await dru(['status'], env)
    expect(status.stdout).toMatch(/^inbox +0 pending, 0 waiting, 1 dead letter \(dru inbox list\)$/m)
  })

  it('retry: exit 13 while the handler still fails, then exactly one run after the fix; skip records the reason', async () => {
    const { env, id, app, mails, b } = await setup()
    const failed = await dru(['inbox', 'retry', String(id)], env)
    expect(failed.code).toBe(13)
    expect(failed.stderr).toMatch(
      /^dru: inbox entry \d+: the handler failed again: Error: template "poison" is missing; it is dead after 2 attempts$/m,
    )
    app.broken = false
    const done = await dru(['inbox', 'retry', String(id)], env)
    expect(done.code, done.stderr).toBe(0)
    expect(done.stdout).toBe(`inbox entry ${id}: the handler ran and its effects committed; the entry is gone\n`)
    expect(mails()).toEqual(['ok-1', 'ok-2', 'poison'])
    const again = await dru(['inbox', 'retry', String(id)], env)
    expect(again.code).toBe(6)
    expect(mails()).toEqual(['ok-1', 'ok-2', 'poison'])

    // A new dead letter, skipped with a reason; skipping it twice is refused.
    app.broken = true
    const x = await openDru({ id: 'x', path: ':memory:' })
    await x.change('poison', (d: Record<string, unknown>) => {
      d.again = true
    })
    b.store.ingest([...x.store.eventsMissing({})].flat())
    await x.close()
    const next = b.inbox.list({ state: 'dead' })[0]!.id
    const skip = await dru(['inbox', 'skip', String(next), '--reason', 'ticket 42'], env)
    expect(skip.code, skip.stderr).toBe(0)
    expect(skip.stdout).toMatch(
      new RegExp(`^inbox entry ${next} skipped: mailer will not run on x/\\d+#1 \\(doc poison\\)$`, 'm'),
    )
    expect(b.inbox.get(next)).toMatchObject({ state: 'skipped', note: 'ticket 42' })
    expect((await dru(['inbox', 'skip', String(next)], env)).code).toBe(7)
    expect((await dru(['inbox', 'list', '--state', 'skipped'], env)).stdout).toMatch(/skipped \d{4}-/)
    expect(mails()).toEqual(['ok-1', 'ok-2', 'poison'])
  })

  it('retry --dead requeues every dead letter; usage errors exit 2; a missing token exits 11', async () => {
    const { env, b } = await setup()
    const r = await dru(['inbox', 'retry', '--dead', '--handler', 'mailer'], env)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe(
      '1 dead letter of mailer put back in line for one more try each; follow with: dru inbox list\n',
    )
    // The retry worker gives it its one more try at once; still failing, it is dead again.
    for (const until = Date.now() + 10_000; b.inbox.list({ state: 'all' })[0]!.attempts < 2;) {
      if (Date.now() > until) throw new Error('the worker never retried the requeued dead letter')
      await new Promise((r) => setTimeout(r, 20))
    }
    expect(b.inbox.list({ state: 'all' })).toMatchObject([{ state: 'dead', attempts: 2 }])
    expect((await dru(['inbox', 'retry'], env)).code).toBe(2)
    expect((await dru(['inbox', 'retry', '1', '--dead'], env)).code).toBe(2)
    expect((await dru(['inbox', 'show', 'abc'], env)).code).toBe(2)
    expect((await dru(['inbox', 'list', '--state', 'bogus'], env)).code).toBe(2)
    expect((await dru(['inbox', 'retry', '1'], { DRU_ADMIN: env.DRU_ADMIN, DRU_ADMIN_TOKEN: '' })).code).toBe(11)
  })

  it('forget: a handler removed from the application is owed what arrives without it, until forgotten', async () => {
    const { b, env } = await setup()
    const x = await openDru({ id: 'x', path: ':memory:' })
    await x.change('late', (d: Record<string, unknown>) => {
      d.late = true
    })
    const late = [...x.store.eventsMissing({})].flat()
    await x.close()
    const refused = await dru(['inbox', 'forget', 'mailer'], env)
    expect(refused.code).toBe(7)
    expect(refused.stderr).toContain('registered in this process')
    // The application stops registering it (as after a deploy without it): what arrives is owed.
    await b.close()
    const c = await openDru({
      id: 'b',
      path: ':memory:',
      admin: { host: '127.0.0.1', port: 0, token: TOKEN },
    })
    open.push(c)
    expect(c.inbox.counts().dead).toBe(0) // a new in-memory DRU: nothing known
    const off = c.onEvent('mailer', () => undefined)
    off()
    c.store.ingest(late)
    const env2 = { DRU_ADMIN: runtimeOf(c).admin!.url, DRU_ADMIN_TOKEN: TOKEN }
    const metrics = await (await fetch(`${env2.DRU_ADMIN}/metrics`)).text()
    expect(metrics).toMatch(/^dru_inbox_handler_registered\{handler="mailer",dru="b"\} 0$/m)
    expect(metrics).toMatch(/^dru_inbox_pending\{handler="mailer",dru="b"\} 1$/m)
    const list = await dru(['inbox', 'list'], env2)
    expect(list.code, list.stderr).toBe(0)
    expect(list.stdout).toMatch(/mailer \(not registered\).*pending.*once its handler is registered/)
    const r = await dru(['inbox', 'forget', 'mailer'], env2)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('handler mailer forgotten: 1 entry dropped; events stored from now on are not owed to it\n')
    expect(c.inbox.list({ state: 'all' })).toEqual([])
    expect((await dru(['inbox', 'forget', 'mailer'], env2)).code).toBe(6)
  })
})
