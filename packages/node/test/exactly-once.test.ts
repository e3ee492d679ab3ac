import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { encodeEvent, pack, type DruEvent } from '@dru/core'
import { openDru } from '@dru/node'
import { afterEach, describe, expect, it } from 'vitest'

const fixture = fileURLToPath(new URL('./fixtures/apply-child.mjs', import.meta.url))
const children = new Set<ChildProcess>()
const dirs: string[] = []
afterEach(() => {
  for (const c of children) c.kill('SIGKILL')
  children.clear()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** Runs the child; `killOn` makes the parent SIGKILL it when that line appears. */
function runChild(env: Record<string, string>, killOn?: string) {
  const child = spawn(process.execPath, [fixture], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.add(child)
  const lines: string[] = []
  let stderr = ''
  child.stderr!.on('data', (d) => (stderr += d))
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line)
    if (killOn && line === killOn) child.kill('SIGKILL')
  })
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; lines: string[]; stderr: string }>(
    (resolve) =>
      child.on('exit', (code, signal) => {
        children.delete(child)
        resolve({ code, signal, lines, stderr })
      }),
  )
}

async function sourceEvents(n: number): Promise<DruEvent[]> {
  const a = await openDru({ id: 'src-a', path: ':memory:' })
  const b = await openDru({ id: 'src-b', path: ':memory:' })
  for (let i = 0; i < n / 2; i++) {
    await a.change(`doc-${i % 5}`, (d) => {
      d[`a${i}`] = i
    })
    await b.change(`doc-${i % 3}`, (d) => {
      d[`b${i}`] = i
    })
  }
  const events = [...a.store.eventsMissing({}), ...b.store.eventsMissing({})].flat()
  await a.close()
  await b.close()
  return events
}

function effects(path: string): { total: number; dup: number; stored: number } {
  const db = new Database(path, { readonly: true })
  try {
    const total = (db.prepare('select count(*) as n from effects').get() as { n: number }).n
    const dup = (
      db
        .prepare('select count(*) as n from (select origin, seq from effects group by origin, seq having count(*) > 1)')
        .get() as { n: number }
    ).n
    const stored = (db.prepare('select count(*) as n from events').get() as { n: number }).n
    return { total, dup, stored }
  } finally {
    db.close()
  }
}

describe('exactly-once onEvent (guarantee 3)', () => {
  it('runs once per remote event across duplicates and replays, in the applying transaction', async () => {
    const events = await sourceEvents(20)
    const dru = await openDru({ id: 'dst', path: ':memory:' })
    dru.store.db.exec('create table effects (origin text, seq integer)')
    const seen: string[] = []
    dru.onEvent('effects', (e, tx) => {
      seen.push(`${e.origin}#${e.seq}`)
      tx.db.prepare('insert into effects values (?, ?)').run(e.origin, e.seq)
    })
    dru.store.ingest(events.slice(0, 7))
    dru.store.ingest(events.slice(0, 12)) // overlapping duplicates
    dru.store.ingest([...events].reverse()) // the rest, reversed, with replays
    dru.store.ingest(events) // a full replay
    expect(seen).toHaveLength(events.length)
    expect(new Set(seen).size).toBe(events.length)
    expect(dru.store.db.prepare('select count(*) as n from effects').get()).toEqual({ n: events.length })
    // A handler that throws stores the events anyway; its retry runs once it works, and only then.
    const other = await openDru({ id: 'dst2', path: ':memory:', inbox: { autoRetry: false } })
    let fail = true
    let runs = 0
    other.onEvent('flaky', () => {
      runs++
      if (fail) throw new Error('handler down')
    })
    expect(other.store.ingest(events.slice(0, 3)).stored).toHaveLength(3)
    expect(other.store.count()).toBe(3)
    expect(other.inbox.counts().pending).toBe(3)
    fail = false
    expect(other.inbox.runDue()).toMatchObject({ attempted: 3, done: 3 })
    other.store.ingest(events.slice(0, 3))
    expect(other.inbox.runDue().attempted).toBe(0)
    expect(runs).toBe(6) // three failed calls + three successful retries, none after
    await other.close()
    await dru.close()
  })

  for (const failpoint of ['in-handler', 'after-commit'] as const) {
    it(`effects count exactly 1 per event after a SIGKILL ${failpoint}, restart and re-ingest`, async () => {
      const events = await sourceEvents(30)
      const dir = mkdtempSync(join(tmpdir(), 'dru-once-'))
      dirs.push(dir)
      const eventsFile = join(dir, 'events.bin')
      writeFileSync(eventsFile, pack(events.map(encodeEvent)))
      const env = { DB_PATH: join(dir, 'dst.db'), EVENTS_FILE: eventsFile, BATCH: '4' }
      const killed = await runChild(
        { ...env, DRU_FAILPOINT: failpoint, DRU_FAILPOINT_AT: '10' },
        `FAILPOINT ${failpoint}`,
      )
      expect(killed.signal, killed.stderr).toBe('SIGKILL')
      expect(killed.lines).toContain(`FAILPOINT ${failpoint}`)
      // Atomic: every stored event has its effect, none more, none twice.
      const mid = effects(env.DB_PATH)
      expect(mid.dup).toBe(0)
      expect(mid.total).toBe(mid.stored)
      if (failpoint === 'in-handler')
        expect(mid.stored).toBe(8) // two committed batches; the third died in its handler
      else expect(mid.stored).toBeGreaterThanOrEqual(10)
      expect(mid.stored).toBeLessThan(events.length)
      const done = await runChild(env)
      expect(done.code, done.stderr).toBe(0)
      expect(done.lines.at(-1)).toBe(`DONE stored=${events.length - mid.stored} handled=${events.length - mid.stored}`)
      const end = effects(env.DB_PATH)
      expect(end).toEqual({ total: events.length, dup: 0, stored: events.length })
    })
  }
})
