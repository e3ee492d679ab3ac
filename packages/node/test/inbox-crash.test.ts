import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { encodeEvent, pack, type DruEvent } from '@dru/core'
import { openDru } from '@dru/node'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'

// Exactly-once across crashes with failing handlers (guarantee 3): the child is SIGKILLed at
// each step of the inbox — inside a handler's first call, after the storing commit that
// left an event owed, inside a retry before it is marked done, after a retry committed,
// after a failed retry was recorded, after a dead letter — then restarted with the handlers
// fixed. Every handler's effects must count exactly one per stored event.

const CHILD = fileURLToPath(new URL('./fixtures/inbox-child.mjs', import.meta.url))
const HANDLERS = ['h-doc', 'h-free']
const children = new Set<ChildProcess>()
let dir = ''
let eventsFile = ''
let events: DruEvent[] = []

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dru-inbox-crash-'))
  // Two origins; documents poison-1 and poison-2 fail while broken, with several events each.
  const a = await openDru({ id: 'src-a', path: ':memory:' })
  const b = await openDru({ id: 'src-b', path: ':memory:' })
  for (let i = 0; i < 8; i++) {
    await a.change(i % 3 === 0 ? 'poison-1' : `doc-${i % 4}`, (d: Record<string, unknown>) => {
      d[`a${i}`] = i
    })
    await b.change(i % 4 === 1 ? 'poison-2' : `doc-${i % 3}`, (d: Record<string, unknown>) => {
      d[`b${i}`] = i
    })
  }
  events = [...a.store.eventsMissing({}), ...b.store.eventsMissing({})].flat()
  await a.close()
  await b.close()
  eventsFile = join(dir, 'events.bin')
  writeFileSync(eventsFile, pack(events.map(encodeEvent)))
})
afterEach(() => {
  for (const c of children) c.kill('SIGKILL')
  children.clear()
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Runs the child; it is SIGKILLed when it prints `FAILPOINT <step>`. */
function run(env: Record<string, string>) {
  const child = spawn(process.execPath, [CHILD], {
    env: { ...process.env, EVENTS_FILE: eventsFile, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.add(child)
  const lines: string[] = []
  let stderr = ''
  child.stderr!.on('data', (d) => (stderr += d))
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line)
    if (line.startsWith('FAILPOINT ')) child.kill('SIGKILL')
  })
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; lines: string[]; stderr: string }>(
    (resolve) =>
      child.on('exit', (code, signal) => {
        children.delete(child)
        resolve({ code, signal, lines, stderr })
      }),
  )
}

/** Effect rows per (handler, event), events stored, and inbox rows by state. */
function inspect(path: string) {
  const db = new Database(path, { readonly: true })
  try {
    const counts = new Map<string, number>()
    for (const r of db
      .prepare('select handler, origin, seq, count(*) n from effects group by handler, origin, seq')
      .all() as Array<{ handler: string; origin: string; seq: number; n: number }>) {
      counts.set(`${r.handler} ${r.origin}#${r.seq}`, r.n)
    }
    const stored = db.prepare('select origin, seq from events').all() as Array<{ origin: string; seq: number }>
    const owed = db.prepare('select handler, origin, seq, state from inbox').all() as Array<{
      handler: string
      origin: string
      seq: number
      state: string
    }>
    return { counts, stored, owed }
  } finally {
    db.close()
  }
}

const cases: Array<{ step: string; broken: 'always' | 'ingest' }> = [
  { step: 'ingest-handler', broken: 'always' },
  { step: 'after-ingest-commit', broken: 'always' },
  { step: 'after-failed-retry', broken: 'always' },
  { step: 'after-dead', broken: 'always' },
  { step: 'retry-handler', broken: 'ingest' },
  { step: 'after-retry-commit', broken: 'ingest' },
]

describe('inbox: SIGKILL at every step, then restart with the handlers fixed', () => {
  for (const { step, broken } of cases) {
    it(`${step}: each handler's effect exactly once per stored event`, async () => {
      const path = join(dir, `${step}.db`)
      const killed = await run({ DB_PATH: path, BROKEN: broken, DRU_FAILPOINT: step })
      expect(killed.signal, killed.stderr).toBe('SIGKILL')
      expect(killed.lines).toContain(`FAILPOINT ${step}`)
      // At the kill: no effect twice, and every effect belongs to a stored event.
      const mid = inspect(path)
      expect([...mid.counts.values()].every((n) => n === 1)).toBe(true)
      const storedKeys = new Set(mid.stored.map((e) => `${e.origin}#${e.seq}`))
      for (const key of mid.counts.keys()) expect(storedKeys.has(key.split(' ')[1]!)).toBe(true)
      // A stored event is either handled or owed by each handler, never neither.
      const owedKeys = new Set(mid.owed.map((o) => `${o.handler} ${o.origin}#${o.seq}`))
      for (const e of mid.stored)
        for (const h of HANDLERS)
          expect(
            mid.counts.has(`${h} ${e.origin}#${e.seq}`) || owedKeys.has(`${h} ${e.origin}#${e.seq}`),
            `${h} ${e.origin}#${e.seq}`,
          ).toBe(true)

      const done = await run({ DB_PATH: path, BROKEN: 'never' })
      expect(done.code, done.stderr).toBe(0)
      expect(done.lines.at(-1)).toBe('DONE pending=0 waiting=0 dead=0')
      const end = inspect(path)
      expect(end.stored).toHaveLength(events.length)
      expect(end.owed).toEqual([])
      for (const e of events)
        for (const h of HANDLERS)
          expect(end.counts.get(`${h} ${e.origin}#${e.seq}`), `${h} ${e.origin}#${e.seq}`).toBe(1)
      expect(end.counts.size).toBe(events.length * HANDLERS.length)
    })
  }

  it('without a kill the broken run ends with dead letters and nothing else owed but what waits behind them', async () => {
    const path = join(dir, 'no-kill.db')
    const r = await run({ DB_PATH: path, BROKEN: 'always' })
    expect(r.code, r.stderr).toBe(0)
    const poison = events.filter((e) => e.docId.startsWith('poison-'))
    const firstPerDoc = new Set(
      ['poison-1', 'poison-2'].map((d) => poison.find((e) => e.docId === d)!).map((e) => `${e.origin}#${e.seq}`),
    )
    // h-free: every poison event dead; h-doc: the first of each poison document dead, the rest waiting.
    expect(r.lines.at(-1)).toBe(`DONE pending=0 waiting=${poison.length - 2} dead=${poison.length + 2}`)
    const end = inspect(path)
    expect(
      end.owed
        .filter((o) => o.handler === 'h-doc' && o.state === 'dead')
        .map((o) => `${o.origin}#${o.seq}`)
        .sort(),
    ).toEqual([...firstPerDoc].sort())
  })
})
