import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Rng } from '@dru/testkit'
import { afterAll, describe, expect, it } from 'vitest'

// SIGKILL during compaction (fault F10): the child compacts a real log and is killed at a
// seeded random progress step — while snapshotting, between raising the base and deleting,
// or between delete chunks. After each kill the documents must read exactly as before, the
// log must verify, and compacting again must finish the job.

const CHILD = fileURLToPath(new URL('./fixtures/compact-child.mjs', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'dru-compact-crash-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const run = (...args: string[]) =>
  execFileSync(process.execPath, [CHILD, ...args], { encoding: 'utf8', timeout: 60_000 })
const state = (db: string) =>
  JSON.parse(run('state', db)) as {
    digest: string
    cluster: string
    docs: number
    events: number
    base: Record<string, number>
    vv: Record<string, number>
  }

/** Starts `compact`, which blocks after its `killAt`-th progress line, and SIGKILLs it there; resolves with the lines seen. */
function compactAndKill(db: string, killAt: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, 'compact', db], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, STOP_AT: String(killAt) },
    })
    const lines: string[] = []
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line === 'stopped') child.kill('SIGKILL')
      else lines.push(line)
    })
    child.once('error', reject)
    child.once('exit', () => resolve(lines))
  })
}

describe('compaction survives SIGKILL at any step', () => {
  it('kills at 6 seeded random progress steps: documents unchanged, log verifies, a second compaction completes', async () => {
    const rng = new Rng(Number(process.env.DRU_CRASH_SEED ?? 1125))
    const phases = new Set<string>()
    for (let round = 0; round < 6; round++) {
      const db = join(dir, `round-${round}.db`)
      run('prepare', db, '60', '1200')
      const before = state(db)
      expect(before.events).toBe(1200)
      // 6 snapshot steps and 9 delete steps: pick any of them.
      const killAt = 1 + rng.int(15)
      const lines = await compactAndKill(db, killAt)
      const last = lines[lines.length - 1] ?? ''
      phases.add(last.split(' ')[1] ?? last)
      const after = state(db)
      expect(after.digest, `round ${round}, killed after "${last}"`).toBe(before.digest)
      expect(after.cluster).toBe(before.cluster)
      expect(after.docs).toBe(before.docs)
      expect(after.vv).toEqual(before.vv)
      expect(after.events).toBeLessThanOrEqual(1200)
      expect(run('compact', db).trim().split('\n').at(-1)).toBe('compacted')
      const done = state(db)
      expect(done.digest).toBe(before.digest)
      expect(done.events).toBe(0)
      expect(done.base).toEqual(before.vv)
    }
    // The seed reaches both phases, so a kill lands mid-snapshot and mid-delete.
    expect([...phases].sort()).toEqual(['delete', 'snapshot'])
  }, 120_000)
})
