import { execFile } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as A from '@automerge/automerge'
import { EventStore } from '@dru/store-sqlite'
import { afterEach, describe, expect, it } from 'vitest'
import { CLI, Cluster, scanForForks } from './cluster.js'

const RUNBOOK = fileURLToPath(new URL('../../docs/RUNBOOK.md', import.meta.url))

/**
 * The ```sh block that follows `<!-- runbook-test: NAME -->` in RUNBOOK.md. The test runs
 * the documented commands themselves, so a renamed option or changed output fails here.
 */
export function runbookBlock(markdown: string, name: string): string {
  const re = new RegExp(`<!-- runbook-test: ${name} -->\\s*\`\`\`sh\\n([\\s\\S]*?)\`\`\``)
  const m = re.exec(markdown)
  if (!m) throw new Error(`RUNBOOK.md has no sh block marked runbook-test: ${name}`)
  return m[1]!
}

interface Run {
  code: number
  stdout: string
  stderr: string
}

/** Runs a block with bash -e (so any failing command fails the block), `dru` on PATH and DRU_ADMIN set. */
function runBlock(block: string, env: Record<string, string>, cwd: string): Promise<Run> {
  const bin = join(cwd, 'bin')
  mkdirSync(bin, { recursive: true })
  writeFileSync(join(bin, 'dru'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`, { mode: 0o755 })
  return new Promise((resolve) => {
    // Asynchronous on purpose: the test process also runs the link proxies the DRUs talk through.
    execFile(
      'bash',
      ['-e', '-o', 'pipefail', '-c', block],
      { cwd, env: { ...process.env, ...env, PATH: `${bin}:${process.env.PATH}` }, timeout: 60_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    )
  })
}

let cluster: Cluster | undefined
afterEach(async () => {
  await cluster?.dispose()
  cluster = undefined
})

const IDS = ['us-east', 'eu-west', 'ap-south']
// The DRUs run with an admin token and the blocks get it the way the runbook's preamble says
// (DRU_ADMIN_TOKEN), so the documented commands are the ones that work against a guarded DRU.
const ADMIN_TOKEN = 'runbook-admin-token-0123456789'
const WITH_TOKEN = { admin: { host: '127.0.0.1', port: 0, token: ADMIN_TOKEN } }
const markdown = readFileSync(RUNBOOK, 'utf8')

describe('docs/RUNBOOK.md runs as written', () => {
  it('every block marked for testing exists and is a ```sh block', () => {
    const marked = [...markdown.matchAll(/<!-- runbook-test: ([\w-]+) -->/g)].map((m) => m[1])
    expect(marked).toEqual([
      'partition-isolated',
      'partition-healed',
      'restore-offline',
      'restore-pending',
      'restore-done',
      'lost-for-good',
      'document-differs',
      'inbox-inspect',
      'inbox-retry',
      'inbox-skip',
    ])
    for (const name of marked) expect(runbookBlock(markdown, name!).trim().length).toBeGreaterThan(0)
  })

  it('region partitioned then healed', async () => {
    const c = (cluster = await Cluster.create(IDS, WITH_TOKEN))
    await Promise.all(IDS.map((id) => c.start(id)))
    await c.waitConverged(IDS)
    const env = { DRU_ADMIN: c.unit('ap-south').adminUrl, DRU_ADMIN_TOKEN: ADMIN_TOKEN }
    c.cut('ap-south')
    await c.waitFor('ap-south isolated', async () => (await c.status('ap-south')).state === 'isolated', 5_000)
    for (let i = 0; i < 3; i++) expect((await c.write('ap-south', `o-${i}`, { n: i })).status).toBe(200)

    const isolated = await runBlock(runbookBlock(markdown, 'partition-isolated'), env, c.dir)
    expect(isolated.stderr).toBe('')
    expect(isolated.code).toBe(0)
    expect(isolated.stdout).toMatch(/^state +isolated \(not ready\)/m)
    expect(isolated.stdout).toMatch(/^writable +yes$/m)
    expect(isolated.stdout).toMatch(/^eu-west +no +ap-south\/\d+ +3 +0 +0 +3$/m)
    expect(isolated.stdout).toMatch(/total: we lack 0 events; peers lack 6 events/)
    expect(isolated.stdout.trim().split('\n').at(-1)).toBe('503')

    c.heal('ap-south')
    // "When the network is back": both links up again (reconnection backoff can lag a little).
    await c.waitFor('links back', async () => (await c.status('ap-south')).peers.every((p) => p.connected), 10_000)
    const healed = await runBlock(runbookBlock(markdown, 'partition-healed'), env, c.dir)
    expect(healed.code).toBe(0)
    expect(healed.stdout).toMatch(/^ap-south is active after /m)
    expect(healed.stdout).toMatch(/^eu-west +yes +\(in sync\) +0 +0$/m)
    expect(healed.stdout).toMatch(/in sync: fingerprints equal with 2 reachable peer\(s\)/)
    expect(healed.stdout.trim().split('\n').at(-1)).toBe('200')
    expect(healed.stderr).toMatch(/state: (isolated|catching-up|verifying|active)/)
  })

  it('region restored from backup', async () => {
    const c = (cluster = await Cluster.create(IDS, WITH_TOKEN))
    await Promise.all(IDS.map((id) => c.start(id)))
    await c.waitConverged(IDS)
    for (let i = 0; i < 4; i++) expect((await c.write('ap-south', `o-${i}`, { n: i })).status).toBe(200)
    await c.waitConverged(IDS)
    const u = c.unit('ap-south')
    const env = () => ({ DRU_ADMIN: u.adminUrl, DRU_ADMIN_TOKEN: ADMIN_TOKEN }) // the admin port changes on restart
    // The operator's folder holds dru.json, as in the runbook.
    const opDir = join(c.dir, 'operator')
    mkdirSync(opDir)
    writeFileSync(join(opDir, 'dru.json'), JSON.stringify(u.config))

    const offline = runbookBlock(markdown, 'restore-offline')
    const refused = await runBlock(offline, env(), opDir)
    expect(refused.code).toBe(7) // still running: the documented refusal
    expect(refused.stderr).toContain('stop it first')

    await c.kill('ap-south', 'SIGTERM')
    const before = scanForForks([u.dbPath]).events.get(u.dbPath)!.size
    const restored = await runBlock(offline, env(), opDir)
    expect(restored.code).toBe(0)
    expect(restored.stdout).toMatch(/^database +closed cleanly \(cold copy\)$/m)
    const m =
      /^last origin +(ap-south\/\d+) \(the next start writes under a fresh incarnation, as every start does\)$/m.exec(
        restored.stdout,
      )
    expect(m, restored.stdout).not.toBeNull()
    expect(restored.stdout).toMatch(new RegExp(`^events held +${before} in \\d+ origins$`, 'm'))
    expect(restored.stdout).toMatch(new RegExp(`^${m![1]!.replace('/', '\\/')} +4$`, 'm'))

    c.cut('ap-south')
    await c.start('ap-south')
    const pending = await runBlock(runbookBlock(markdown, 'restore-pending'), env(), opDir)
    expect(pending.code).toBe(0)
    const origin = /^dru +ap-south \(origin (ap-south\/\d+)\)$/m.exec(pending.stdout)?.[1]
    expect(origin).toBeDefined()
    expect(origin).not.toBe(m![1])
    expect(pending.stdout).toMatch(/^writable +no \(restore catch-up pending\)$/m)
    expect((await c.write('ap-south', 'early', { x: 1 })).status).toBe(503)

    c.heal('ap-south')
    const done = await runBlock(runbookBlock(markdown, 'restore-done'), env(), opDir)
    expect(done.code).toBe(0)
    expect(done.stdout).toMatch(/^state +active \(ready\)/m)
    expect(done.stdout).toMatch(/^writable +yes$/m)
    expect(done.stdout).toMatch(/in sync: fingerprints equal with 2 reachable peer\(s\)/)
    expect((await c.write('ap-south', 'later', { x: 2 })).status).toBe(200)
  })

  it('region lost for good', async () => {
    const c = (cluster = await Cluster.create(IDS, WITH_TOKEN))
    await Promise.all(IDS.map((id) => c.start(id)))
    await c.waitConverged(IDS)
    for (let i = 0; i < 6; i++) expect((await c.write(IDS[i % 3]!, `o-${i}`, { n: i })).status).toBe(200)
    await c.waitConverged(IDS)
    await c.kill('ap-south')
    for (let i = 0; i < 4; i++) expect((await c.write('us-east', `late-${i}`, { n: i })).status).toBe(200)
    await c.waitFor('eu-west has the late writes', async () => (await c.read('eu-west', 'late-3')) !== null)
    await c.waitFor(
      'us-east knows eu-west acknowledged them',
      async () => (await c.status('us-east')).peers.find((p) => p.id === 'eu-west')?.lagEvents === 0,
    )
    const env = {
      DRU_ADMIN: c.unit('us-east').adminUrl,
      DRU_ADMIN_TOKEN: ADMIN_TOKEN,
      SURVIVORS: `${c.unit('us-east').adminUrl} ${c.unit('eu-west').adminUrl}`,
    }
    const run = await runBlock(runbookBlock(markdown, 'lost-for-good'), env, c.dir)
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    expect(
      run.stdout.match(/^ap-south removed from membership of this DRU; its replicated events stay$/gm),
    ).toHaveLength(2)
    expect(run.stdout).toMatch(/^compacted in [\d.]+s: \d+ events removed, \d+ document snapshots written$/m)
    expect(run.stdout).toMatch(/^log: \d+ -> 0 events$/m)
    expect(run.stdout).not.toContain('held back by')
    expect(run.stdout).toMatch(/^log +0 events stored, \d+ compacted, 0 more compactable now$/m)
    expect(run.stdout).toMatch(/^ap-south +no .* decommissioned$/m)
    expect(run.stdout).toMatch(/^state +active \(ready\)/m)
    for (let i = 0; i < 4; i++) expect(await c.read('us-east', `late-${i}`)).toEqual({ n: i })
    for (let i = 0; i < 6; i++) expect(await c.read('us-east', `o-${i}`)).toEqual({ n: i })
  })

  it('verify says a document differs', async () => {
    const ids = ['us-east', 'eu-west']
    const c = (cluster = await Cluster.create(ids, WITH_TOKEN))
    await Promise.all(ids.map((id) => c.start(id)))
    await c.waitConverged(ids)
    for (let i = 0; i < 10; i++) expect((await c.write('us-east', `order-${i}`, { n: i })).status).toBe(200)
    await c.waitConverged(ids)
    // eu-west caches order-7, so stopping it writes its snapshot; then the snapshot is
    // replaced behind its log's back by one holding a change no event carries.
    expect(await c.read('eu-west', 'order-7')).toEqual({ n: 7 })
    await c.kill('eu-west', 'SIGTERM')
    const u = c.unit('eu-west')
    const store = EventStore.open({ path: u.dbPath, druId: 'eu-west', skewPolicy: 'tolerate' })
    const row = store.db.prepare("select snapshot from docs where doc_id = 'order-7'").get() as { snapshot: Buffer }
    const damaged = A.change(A.load<{ n: number }>(row.snapshot), (d) => {
      d.n = -1
    })
    store.db.prepare("update docs set snapshot = ? where doc_id = 'order-7'").run(A.save(damaged))
    store.close()
    await c.start('eu-west')
    await c.waitConverged(ids)
    expect(await c.read('eu-west', 'order-7')).toEqual({ n: -1 })

    const env = { DRU_ADMIN: u.adminUrl, DRU_ADMIN_TOKEN: ADMIN_TOKEN, DOC: 'order-7' }
    const run = await runBlock(runbookBlock(markdown, 'document-differs'), env, c.dir)
    expect(run.stderr).toContain('verify found differences')
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/^us-east +yes +no +\S+ +1 docs differ: order-7$/m)
    expect(run.stdout).toMatch(/^1 document\(s\) differ from us-east \(found in \d+ round trips, \d+ bytes\):$/m)
    expect(run.stdout).toMatch(/^order-7 +[0-9a-f]{8} +[0-9a-f]{8}$/m)
    expect(run.stdout).toMatch(/^order-7 +[0-9a-f]{12} +[0-9a-f]{12} +1 +0 +1$/m)
    expect(run.stdout).toMatch(/^repaired 1 document\(s\); no reachable peer differs on them$/m)
    expect(run.stdout.trim().split('\n').at(-1)).toMatch(
      /^in sync: fingerprints and document digests equal with 1 reachable peer\(s\)/,
    )
    expect(await c.read('eu-west', 'order-7')).toEqual({ n: 7 })
  })

  it('a handler keeps failing', async () => {
    const ids = ['us-east', 'eu-west']
    // A short retry policy so the dead letter comes in a second, not half a minute.
    const c = (cluster = await Cluster.create(ids, {
      inbox: { immediateRetries: 1, delayedRetries: 1, backoffMs: 100 },
    }))
    await Promise.all(ids.map((id) => c.start(id)))
    await c.waitConverged(ids)
    const eu = c.unit('eu-west')
    const app = (path: string, method = 'GET') =>
      fetch(`http://127.0.0.1:${eu.appPort}${path}`, { method }).then((r) => r.json())
    const deadIds = async () =>
      (
        (await (await fetch(`${eu.adminUrl}/inbox?state=dead`)).json()) as { entries: Array<{ id: number }> }
      ).entries.map((e) => e.id)
    await app('/mailer?broken=1', 'POST')
    for (const doc of ['order-1', 'poison-order-7', 'order-2'])
      expect((await c.write('us-east', doc, { total: 7 })).status).toBe(200)
    await c.waitFor('the dead letter on eu-west', async () => (await deadIds()).length === 1)
    await c.waitConverged(ids) // replication went on
    const [id] = await deadIds()
    const env = { DRU_ADMIN: eu.adminUrl, ID: String(id) }

    const inspect = await runBlock(runbookBlock(markdown, 'inbox-inspect'), env, c.dir)
    expect(inspect.stderr).toBe('')
    expect(inspect.code).toBe(0)
    expect(inspect.stdout).toMatch(/^inbox +0 pending, 0 waiting, 1 dead letter \(dru inbox list\)$/m)
    expect(inspect.stdout).toMatch(
      new RegExp(
        `^${id} +mailer +us-east/\\d+#2 +poison-order-7 +dead +3 +dead since \\S+ +Error: no mail template for poison-order-7$`,
        'm',
      ),
    )
    expect(inspect.stdout).toMatch(/^last error +Error: no mail template for poison-order-7$/m)
    expect(inspect.stdout).toMatch(/dru-app\.mjs:\d+/) // the stack names the application's line
    expect(await app('/mails')).toEqual(['order-1', 'order-2'])

    await app('/mailer?broken=0', 'POST') // the fix is deployed
    const retry = await runBlock(runbookBlock(markdown, 'inbox-retry'), env, c.dir)
    expect(retry.stderr).toBe('')
    expect(retry.code).toBe(0)
    expect(retry.stdout).toMatch(/^inbox entry \d+: the handler ran and its effects committed; the entry is gone$/m)
    expect(retry.stdout).toMatch(/^0 dead letters put back in line/m)
    expect(retry.stdout).toMatch(/^no inbox entries to show \(0 pending, 0 waiting, 0 dead\)$/m)
    expect(await app('/mails')).toEqual(['order-1', 'order-2', 'poison-order-7'])

    await app('/mailer?broken=1', 'POST')
    expect((await c.write('us-east', 'poison-order-8', { total: 8 })).status).toBe(200)
    await c.waitFor('a second dead letter', async () => (await deadIds()).length === 1)
    const [second] = await deadIds()
    const skip = await runBlock(runbookBlock(markdown, 'inbox-skip'), { ...env, ID: String(second) }, c.dir)
    expect(skip.stderr).toBe('')
    expect(skip.code).toBe(0)
    expect(skip.stdout).toMatch(
      new RegExp(
        `^inbox entry ${second} skipped: mailer will not run on us-east/\\d+#4 \\(doc poison-order-8\\)$`,
        'm',
      ),
    )
    expect(skip.stdout).toMatch(
      new RegExp(
        `^${second} +mailer .* poison-order-8 +skipped +3 +skipped \\S+ +Error: no mail template for poison-order-8$`,
        'm',
      ),
    )
    expect(await app('/mails')).toEqual(['order-1', 'order-2', 'poison-order-7'])
  })
})
