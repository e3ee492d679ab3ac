import { execFile } from 'node:child_process'
import { copyFileSync, existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { CLI, Cluster, scanForForks, sleep, type Unit } from './cluster.js'

let cluster: Cluster | undefined
afterEach(async () => {
  await cluster?.dispose()
  cluster = undefined
})

const IDS = ['a', 'b', 'c']

function dru(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, ...env }, timeout: 20_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr })
      },
    )
  })
}

/** Puts `copy` in place of the unit's database, as an operator restoring a backup would. */
function restoreFile(u: Unit, copy: string): void {
  for (const suffix of ['-wal', '-shm'])
    if (existsSync(`${u.dbPath}${suffix}`)) writeFileSync(`${u.dbPath}${suffix}`, '')
  c_rm(u)
  copyFileSync(copy, u.dbPath)
}
function c_rm(u: Unit): void {
  cluster!.wipe(u.id)
}

async function assertNoFork(c: Cluster): Promise<Map<string, Map<string, string>>> {
  for (const id of IDS) await c.kill(id, 'SIGTERM')
  const { forks, events } = scanForForks(IDS.map((id) => c.unit(id).dbPath))
  expect(forks).toEqual([])
  expect(new Set([...events.values()].map((m) => [...m.keys()].sort().join(','))).size).toBe(1)
  return events
}

describe('procedure: region restored from a stale live backup', () => {
  it('writes under a fresh incarnation, detects the stale copy from signed events, gets the later events back, and never forks', async () => {
    const c = (cluster = await Cluster.create(IDS))
    await Promise.all(IDS.map((id) => c.start(id)))
    await c.waitConverged(IDS)
    const u = c.unit('c')
    for (let i = 0; i < 3; i++) expect((await c.write('c', `c-${i}`, { n: i })).status).toBe(200)
    const copy = join(c.dir, 'c-backup.db')
    await c.backup('c', copy) // online backup while c runs: the copy carries no clean-close marker
    for (let i = 3; i < 7; i++) expect((await c.write('c', `c-${i}`, { n: i })).status).toBe(200)
    const replicated = (await c.waitConverged(IDS))[0]!.fingerprint.vv
    const oldOrigin = (await c.status('c')).origin
    expect(replicated[oldOrigin]).toBe(7)

    await c.kill('c', 'SIGKILL')
    restoreFile(u, copy)
    c.cut('c')
    await c.start('c')
    const s = await c.status('c')
    expect(s.origin).not.toBe(oldOrigin) // every start writes under a fresh incarnation
    expect(s.fingerprint.vv[oldOrigin]).toBe(3) // the stale copy
    // Isolated, it cannot know it is stale: availability first, under the new origin.
    const isolatedWrite = await c.write('c', 'c-isolated', { during: 'isolation' })
    expect(isolatedWrite.status).toBe(200)
    expect((isolatedWrite.body.event as { origin: string }).origin).toBe(s.origin)

    // Heal: signed events of the old origin past what this copy held arrive -> restore mode
    // (writes refused with NOT_WRITABLE) until caught up and verified.
    const answers: number[] = []
    c.heal('c')
    await c.waitFor(
      'c writable and active',
      async () => {
        const w = await c.write('c', 'probe', { t: Date.now() })
        answers.push(w.status)
        if (w.status === 503) expect(w.body.code).toBe('NOT_WRITABLE')
        return w.status === 200 && (await c.status('c')).state === 'active'
      },
      10_000,
      5,
    )
    await c.waitFor(
      'stale copy logged',
      () => u.lines.some((l) => String(l.msg).startsWith('stale copy detected')),
      5_000,
    )
    expect((await c.status('c')).staleCopy).toMatchObject({ origin: oldOrigin })
    expect(u.transitions.some((t) => t.to === 'catching-up')).toBe(true)
    expect(answers.every((a) => a === 200 || a === 503)).toBe(true)
    const final = await c.waitConverged(IDS)
    for (const st of final) expect(st.fingerprint.vv[oldOrigin]).toBe(7)
    for (let i = 0; i < 7; i++) expect(await c.read('c', `c-${i}`)).toEqual({ n: i })
    expect(await c.read('a', 'c-isolated')).toEqual({ during: 'isolation' })
    await assertNoFork(c)
  })
})

describe('procedure: dru restore on a cold backup', () => {
  it('dru restore marks the copy offline; the DRU then refuses writes until its old events are back; no fork', async () => {
    const c = (cluster = await Cluster.create(IDS))
    await Promise.all(IDS.map((id) => c.start(id)))
    await c.waitConverged(IDS)
    const u = c.unit('c')
    for (let i = 0; i < 2; i++) expect((await c.write('c', `c-${i}`, { n: i })).status).toBe(200)
    await c.waitConverged(IDS)
    await c.kill('c', 'SIGTERM') // clean stop: a cold backup
    const copy = join(c.dir, 'c-cold.db')
    copyFileSync(u.dbPath, copy)
    await c.start('c')
    for (let i = 2; i < 5; i++) expect((await c.write('c', `c-${i}`, { n: i })).status).toBe(200)
    const replicated = (await c.waitConverged(IDS))[0]!.fingerprint.vv
    const origin = (await c.status('c')).origin

    // While the DRU runs, dru restore refuses to touch its database.
    const locked = await dru(['restore', '--config', u.configPath])
    expect(locked.code).toBe(7)
    expect(locked.stderr).toContain('stop it first')

    await c.kill('c', 'SIGKILL')
    restoreFile(u, copy)
    const r = await dru(['restore', '--config', u.configPath, '--json'])
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout) as {
      from: string
      openedClean: boolean
      origins: Array<{ origin: string; events: number }>
      restorePending: boolean
    }
    expect(out.openedClean).toBe(true)
    expect(out.restorePending).toBe(true)
    expect(out.origins.find((o) => o.origin === out.from)?.events).toBe(2)

    c.cut('c')
    await c.start('c')
    const s = await c.status('c')
    expect(s.origin).not.toBe(out.from) // a fresh incarnation, as at every start
    expect(s.writable).toBe(false)
    const refused = await c.write('c', 'early', { x: 1 })
    expect(refused.status).toBe(503)
    expect(refused.body.code).toBe('NOT_WRITABLE')
    await sleep(100)
    expect((await c.status('c')).writable).toBe(false)

    c.heal('c')
    await c.waitConverged(IDS)
    const back = await c.status('c')
    expect(back.writable).toBe(true)
    for (const [o, seq] of Object.entries(replicated)) expect(back.fingerprint.vv[o]).toBe(seq)
    expect(back.fingerprint.vv[origin]).toBe(3) // the three writes after the restart, under that start's own incarnation
    expect((await c.write('c', 'after', { x: 2 })).status).toBe(200)
    await c.waitConverged(IDS)
    await assertNoFork(c)
  })

  it('prints what it did, and fails with the documented exit codes', async () => {
    const c = (cluster = await Cluster.create(['a']))
    const u = c.unit('a')
    const human = await dru(['restore', '--config', u.configPath])
    expect(human.code).toBe(0)
    expect(human.stdout).toMatch(/none found: created an empty one/)
    expect(human.stdout).toMatch(/last origin +none \(the next start writes under a fresh incarnation/)
    expect(human.stdout).toContain('restore pending  yes')
    const again = await dru(['restore', '--config', u.configPath])
    // Inspecting leaves no trace: the database is still one no DRU has run on.
    expect(again.stdout).toMatch(/empty: no DRU has run on it yet/)
    expect(again.stdout).toMatch(/last origin +none /)
    expect((await dru(['restore', '--config', join(c.dir, 'missing.json')])).code).toBe(3)
    writeFileSync(join(c.dir, 'other.json'), JSON.stringify({ id: 'zz', path: u.dbPath }))
    const wrong = await dru(['restore', '--config', join(c.dir, 'other.json')])
    expect(wrong.code).toBe(3)
    expect(wrong.stderr).toContain('belongs to DRU "a"')
    expect((await dru(['restore'])).code).toBe(2)
    const help = await dru(['restore', '--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('--config <file>')
  })
})
