import { copyFileSync, existsSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { Cluster, type Unit } from '../procedures/cluster.js'
import { Ledger, assertNoFork, metric } from './harness.js'

// Role: an operator's mistake. Every database file copy an operator can start, and the same
// DRU id running twice, followed by writes on every copy: no (origin, seq) ever has two
// contents, nothing another DRU acknowledged is lost, and every DRU converges. (The live
// backup put back is in test/procedures/restore.test.ts; `dru restore` on a cold copy too.)

const IDS = ['a', 'b', 'c']
let c: Cluster | undefined
afterEach(async () => {
  await c?.dispose()
  c = undefined
})

async function cluster(): Promise<{ c: Cluster; ledger: Ledger }> {
  c = await Cluster.create(IDS)
  await Promise.all(IDS.map((id) => c!.start(id)))
  await c.waitConverged(IDS)
  return { c, ledger: new Ledger(c) }
}

const files = (u: Unit) => ['', '-wal', '-shm'].map((s) => `${u.dbPath}${s}`)

function copyFiles(u: Unit, to: string): void {
  for (const [i, f] of files(u).entries()) if (existsSync(f)) copyFileSync(f, `${to}${['', '-wal', '-shm'][i]}`)
}

function putBack(u: Unit, from: string): void {
  for (const f of files(u)) rmSync(f, { force: true })
  for (const s of ['', '-wal', '-shm']) if (existsSync(`${from}${s}`)) copyFileSync(`${from}${s}`, `${u.dbPath}${s}`)
}

describe('hostile role: operator mistakes (file copies, the same DRU twice)', () => {
  it('a cold backup taken after a clean stop, put back after the DRU wrote 50 more: writes at once under a new origin, finds itself stale from signed events, gets the 50 back, no fork', async () => {
    const { c, ledger } = await cluster()
    const a = c.unit('a')
    await ledger.writeAll(IDS, 'first')
    await c.kill('a', 'SIGTERM') // clean close: the copy carries the clean-close marker
    const backup = join(c.dir, 'a-cold.db')
    copyFiles(a, backup)
    await c.start('a')
    const afterBackup = (await c.status('a')).origin
    for (let i = 0; i < 50; i++) await ledger.write('a', 'after-backup')
    await ledger.everywhere(IDS)
    await c.kill('a', 'SIGTERM')
    putBack(a, backup)
    await c.start('a')
    const copy = await c.status('a')
    expect(copy.origin).not.toBe(afterBackup)
    expect(copy.fingerprint.vv[afterBackup] ?? 0).toBe(0) // the copy lacks all 50
    await ledger.write('a', 'on-the-copy') // availability first: accepted under the fresh origin
    await c.waitFor('stale copy detected on a', async () => (await metric(c, 'a', 'dru_stale_copy_detected_total')) > 0)
    await ledger.writeAll(IDS, 'after')
    await ledger.everywhere(IDS)
    const final = await c.waitConverged(IDS)
    for (const s of final) expect(s.fingerprint.vv[afterBackup]).toBe(50)
    await assertNoFork(
      c,
      IDS.map((id) => c.unit(id).dbPath),
    )
  })

  it('a WAL deleted while stopped after a crash: the committed events it held come back from the peers, no fork', async () => {
    const { c, ledger } = await cluster()
    const a = c.unit('a')
    const origin = (await c.status('a')).origin
    for (let i = 0; i < 24; i++) await ledger.write('a', 'in-wal')
    await ledger.everywhere(IDS)
    await c.kill('a', 'SIGKILL') // no checkpoint: the last commits live only in the WAL
    const walBytes = existsSync(`${a.dbPath}-wal`) ? (await import('node:fs')).statSync(`${a.dbPath}-wal`).size : 0
    expect(walBytes).toBeGreaterThan(0)
    rmSync(`${a.dbPath}-wal`, { force: true })
    rmSync(`${a.dbPath}-shm`, { force: true })
    // The file itself lacks them (read before the DRU starts: once started it may fetch them
    // back from its peers before any status call, which made this check race the catch-up).
    const file = new Database(a.dbPath, { readonly: true })
    // (Without its WAL the file may not even hold the schema yet: then it holds nothing.)
    const hasEvents = file.prepare("select 1 from sqlite_master where name = 'events'").get() !== undefined
    const held = hasEvents
      ? ((file.prepare('select max(seq) from events where origin = ?').pluck().get(origin) as number | null) ?? 0)
      : 0
    file.close()
    expect(held).toBeLessThan(24) // the WAL held them
    await c.start('a')
    await c.waitFor('stale copy detected on a', async () => (await metric(c, 'a', 'dru_stale_copy_detected_total')) > 0)
    await ledger.writeAll(IDS, 'after')
    await ledger.everywhere(IDS)
    const final = await c.waitConverged(IDS)
    for (const s of final) expect(s.fingerprint.vv[origin]).toBe(24)
    await assertNoFork(
      c,
      IDS.map((id) => c.unit(id).dbPath),
    )
  })

  it('the same database started twice: the second process is refused with DB_LOCKED and the first keeps running', async () => {
    const { c, ledger } = await cluster()
    const a = c.unit('a')
    await ledger.around(IDS, 'double-start', async () => {
      const second: Unit = {
        ...a,
        id: 'a-again',
        configPath: join(c.dir, 'a-again.json'),
        child: undefined,
        exited: undefined,
        lines: [],
        transitions: [],
      }
      c.units.set('a-again', second)
      writeFileSync(second.configPath, JSON.stringify(a.config))
      await expect(c.start('a-again')).rejects.toThrow(/DB_LOCKED/)
      c.units.delete('a-again')
    })
    await assertNoFork(
      c,
      IDS.map((id) => c.unit(id).dbPath),
    )
  })

  it('the same DRU id running twice at once on two disks: both write under their own origins, peers see an identity conflict, no fork, every write kept', async () => {
    const { c, ledger } = await cluster()
    const a = c.unit('a')
    await ledger.writeAll(IDS, 'first')
    // The twin: a copy of a's disk started with a's config elsewhere (an old primary back
    // while its replacement runs), dialing b and c directly.
    const twinDb = join(c.dir, 'a-twin.db')
    copyFiles(a, twinDb)
    const twin: Unit = {
      ...a,
      id: 'a-twin',
      configPath: join(c.dir, 'a-twin.json'),
      dbPath: twinDb,
      child: undefined,
      exited: undefined,
      lines: [],
      transitions: [],
      config: {
        ...a.config,
        path: twinDb,
        peers: ['b', 'c'].map((id) => ({ id, url: `ws://127.0.0.1:${c.unit(id).listenPort}` })),
      },
    }
    c.units.set('a-twin', twin)
    writeFileSync(twin.configPath, JSON.stringify(twin.config))
    await c.start('a-twin')
    const origins = [(await c.status('a')).origin, (await c.status('a-twin')).origin]
    expect(origins[0]).not.toBe(origins[1])
    const units = [...IDS, 'a-twin']
    for (let i = 0; i < 5; i++) await ledger.writeAll(['a', 'a-twin'], 'both')
    await c.waitFor('b and c hold both origins of a', async () => {
      const vvs = await Promise.all(['b', 'c'].map(async (id) => (await c.status(id)).fingerprint.vv))
      return vvs.every((vv) => origins.every((o) => (vv[o] ?? 0) > 0))
    })
    await c.waitFor(
      'an identity conflict reported by b or c',
      async () =>
        (await metric(c, 'b', 'dru_identity_conflicts_total')) +
          (await metric(c, 'c', 'dru_identity_conflicts_total')) >
        0,
      15_000,
    )
    await ledger.everywhere(units)
    await c.kill('a-twin', 'SIGTERM')
    await ledger.writeAll(IDS, 'after')
    await ledger.everywhere(IDS)
    const final = await c.waitConverged(IDS)
    for (const s of final) for (const o of origins) expect(s.fingerprint.vv[o]).toBeGreaterThan(0)
    // The twin stopped before the last round: no fork with it, the others hold one set.
    await assertNoFork(
      c,
      [...IDS.map((id) => c.unit(id).dbPath), twinDb],
      IDS.map((id) => c.unit(id).dbPath),
    )
  })
})
