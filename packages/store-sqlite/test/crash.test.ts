import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { Rng } from '@dru/testkit'
import { encodeEvent, pack } from '@dru/core'
import { EventStore, type Durability } from '../src/index.js'
import { tempDir } from './helpers.js'

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
const children = new Set<ChildProcess>()
const cleanups: Array<() => void> = []
afterEach(() => {
  for (const c of children) c.kill('SIGKILL')
  children.clear()
  while (cleanups.length) cleanups.pop()!()
})

/** Spawns a fixture and calls onLine for each stdout line; resolves with the exit. */
function run(args: string[], env: Record<string, string>, onLine: (line: string, child: ChildProcess) => void) {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  let stderr = ''
  child.stderr!.on('data', (d) => (stderr += d))
  createInterface({ input: child.stdout! }).on('line', (line) => onLine(line, child))
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.on('exit', (code, signal) => {
      children.delete(child)
      resolve({ code, signal, stderr })
    }),
  )
}

describe('crash safety of the outbox (SIGKILL at random moments)', () => {
  for (const durability of ['machine', 'process'] as Durability[]) {
    it(`keeps app rows and events together across 12 kills (durability=${durability})`, async () => {
      const { dir, cleanup } = tempDir()
      cleanups.push(cleanup)
      const path = join(dir, 'w.db')
      // Seeded, so a failing round can be replayed.
      const rng = new Rng(durability === 'machine' ? 7 : 8)
      const random = () => rng.next()
      const acked = new Map<string, number>()
      for (let round = 0; round < 12; round++) {
        const delay = 50 + Math.floor(random() * 450)
        const exit = await run([fixture('writer.mjs'), path, durability], {}, (line, child) => {
          if (line === 'ready') setTimeout(() => child.kill('SIGKILL'), delay)
          else if (line.startsWith('ok ')) {
            const [, origin, seq] = line.split(' ')
            acked.set(origin!, Math.max(acked.get(origin!) ?? 0, Number(seq)))
          }
        })
        expect(exit.signal, exit.stderr).toBe('SIGKILL')

        const store = EventStore.open({ path, druId: 'w', durability })
        try {
          expect(store.db.pragma('integrity_check', { simple: true })).toBe('ok')
          const vv = store.vv()
          // No acknowledged write lost: every "ok" any child printed is in the log.
          for (const [origin, seq] of acked)
            expect(vv[origin] ?? 0, `round ${round} (delay ${delay} ms), ${origin}`).toBeGreaterThanOrEqual(seq)
          // Seqs are contiguous per origin and every chain verifies end to end.
          const total = Object.values(vv).reduce((n, s) => n + s, 0)
          expect(store.count()).toBe(total)
          expect(store.verifyLog().events).toBe(total)
          // Every app row has its events and every event has its app row, per origin.
          for (const [origin, seq] of Object.entries(vv)) {
            const rows = store.db
              .prepare('select first_seq f, last_seq l from app where origin = ? order by f')
              .all(origin) as Array<{ f: number; l: number }>
            let next = 1
            for (const r of rows) {
              expect(r.f).toBe(next)
              next = r.l + 1
            }
            expect(next - 1, origin).toBe(seq)
          }
        } finally {
          store.close()
        }
      }
      expect(acked.size).toBeGreaterThan(0)
    })
  }
})

describe('exactly-once inbox across crashes', () => {
  function recordBatch(dir: string): string {
    const source = EventStore.open({ path: ':memory:', druId: 'src' })
    for (let i = 0; i < 8; i++) source.append(`doc-${i % 2}`, Buffer.from(`change ${i}`))
    const file = join(dir, 'batch.bin')
    writeFileSync(file, pack([...source.eventsMissing({})].flat().map((e) => encodeEvent(e))))
    source.close()
    return file
  }

  for (const point of ['in-handler', 'after-commit']) {
    it(`runs each handler once per event when killed at ${point} and re-ingested`, async () => {
      const { dir, cleanup } = tempDir()
      cleanups.push(cleanup)
      const batchFile = recordBatch(dir)
      const path = join(dir, 'inbox.db')
      let reached = false
      const first = await run([fixture('inbox.mjs'), path, batchFile], { DRU_FAILPOINT: point }, (line, child) => {
        if (line === `failpoint:${point}`) {
          reached = true
          child.kill('SIGKILL')
        }
      })
      expect(reached, first.stderr).toBe(true)
      expect(first.signal).toBe('SIGKILL')
      const lines: string[] = []
      const second = await run([fixture('inbox.mjs'), path, batchFile], {}, (line) => lines.push(line))
      expect(second.code, second.stderr).toBe(0)
      expect(lines).toContain('done')

      const store = EventStore.open({ path, druId: 'inbox' })
      try {
        const counts = store.db
          .prepare('select origin, seq, count(*) n from effects group by origin, seq order by seq')
          .all()
        const src = (counts as Array<{ origin: string }>)[0]!.origin
        expect(src).toMatch(/^src\//)
        expect(counts).toEqual(Array.from({ length: 8 }, (_, i) => ({ origin: src, seq: i + 1, n: 1 })))
        expect(store.vv()).toEqual({ [src]: 8 })
      } finally {
        store.close()
      }
    })
  }
})

describe('single writer per database file', () => {
  it('a second process fails fast with DB_LOCKED while the first holds the file', async () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const path = join(dir, 'w.db')
    let opened!: () => void
    const ready = new Promise<void>((r) => (opened = r))
    const holder = run([fixture('writer.mjs'), path, 'process'], {}, (line) => {
      if (line === 'ready') opened()
    })
    await ready
    const lines: string[] = []
    const t0 = Date.now()
    const script = `import('@dru/store-sqlite').then(({EventStore}) => { try { EventStore.open({ path: ${JSON.stringify(path)}, druId: 'w' }); console.log('opened') } catch (e) { console.log(e.code + ': ' + e.message) } })`
    const second = await run(['--input-type=module', '-e', script], {}, (line) => lines.push(line))
    expect(second.code).toBe(0)
    expect(Date.now() - t0).toBeLessThan(5_000)
    expect(lines[0]).toMatch(/^DB_LOCKED: database .* is in use by another process/)
    for (const c of children) c.kill('SIGKILL')
    await holder
  })
})
