import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'

/**
 * CI tier of the chaos suite: one short seeded schedule against real DRU processes must
 * pass, and the same harness with a planted bug (DRU_TEST_PLANT, read only by the
 * fixture) must fail with the invariant the bug breaks — the proof that the checker can
 * fail. The harness runs built JS (npm test builds first).
 */
const RUN = fileURLToPath(new URL('./run.mjs', import.meta.url))

interface Outcome {
  code: number | null
  out: string
  result: {
    pass: boolean
    converged: boolean
    convergeMs: number
    faults: Record<string, number>
    stats: Record<string, number>
    violations: Record<string, number>
  }
}

const running = new Set<ChildProcess>()
const dirs: string[] = []
// A harness still running after its test (timeout) gets SIGTERM: it then stops its DRUs. The
// harness keeps its folder when it finds a violation; the planted runs always do, so the test
// hands it a folder and removes it.
afterEach(() => {
  for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM')
  running.clear()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function runChaos(args: string[], env: Record<string, string> = {}): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const dir = mkdtempSync(join(tmpdir(), 'dru-chaos-test-'))
    dirs.push(dir)
    const child = spawn(process.execPath, [RUN, ...args, '--dir', dir], {
      env: { ...process.env, DRU_TEST_PLANT: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    running.add(child)
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    child.on('error', reject)
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('CHAOS_RESULT '))
      if (!line) return reject(new Error(`no CHAOS_RESULT (exit ${code}):\n${out}`))
      resolve({ code, out, result: JSON.parse(line.slice('CHAOS_RESULT '.length)) as Outcome['result'] })
    })
  })
}

/** Runs the assertions; on failure prints the harness's report (seed, violations) first. */
function explain(out: string, assertions: () => void): void {
  try {
    assertions()
  } catch (err) {
    console.error(out)
    throw err
  }
}

describe('chaos harness', () => {
  it('a seeded schedule of partitions, kills, pauses, skew, slow and flapping links, compaction, a stale restore and a lost disk passes every invariant', async () => {
    const { code, out, result } = await runChaos([
      '--seed',
      '10',
      '--faults',
      '12',
      '--drus',
      '4',
      '--hold',
      '300-1800',
    ])
    explain(out, () => {
      expect(result.violations).toEqual({})
      expect(code).toBe(0)
      expect(result.converged).toBe(true)
      // The run really wrote, replicated and injected faults (a vacuous pass would not).
      expect(result.stats.ok).toBeGreaterThan(100)
      expect(result.stats.okAcks1).toBeGreaterThan(10)
      expect(result.stats.remoteEventsApplied).toBeGreaterThan(Number(result.stats.ok))
      // acks:1 writes were taken by a DRU that then lost its disk or was restored, and survived.
      expect(result.stats.acks1AcrossDiskLoss).toBeGreaterThan(0)
      expect(result.stats.vvSamples).toBeGreaterThan(20)
      // Seed 10 compacts every DRU before the lost disk: the emptied DRU can only get the
      // folded events as snapshots, and must still converge with every check passing.
      expect(result.stats.compactedEvents).toBeGreaterThan(0)
      expect(result.stats.bootstraps).toBeGreaterThan(0)
    })
    // The seeded deck deals every fault kind once in twelve faults.
    expect(Object.keys(result.faults).sort()).toEqual([
      'clock-skew',
      'compact',
      'flap',
      'kill',
      'lost-disk',
      'partition-asymmetric',
      'partition-bridge',
      'partition-isolate',
      'partition-majority',
      'pause',
      'restore',
      'slow-links',
    ])
  }, 120_000)

  it('catches a planted inbox-dedup bug (handler runs twice): I3 ONCE, exit 1, seed printed', async () => {
    const { code, out, result } = await runChaos(['--seed', '11', '--duration', '4s', '--drus', '3'], {
      DRU_TEST_PLANT: 'skip-dedup',
    })
    explain(out, () => {
      expect(code).toBe(1)
      expect(result.violations['I3 ONCE']).toBeGreaterThan(0)
      expect(out).toContain('replay: npm run chaos -- --seed 11')
      expect(out).toMatch(/I3 ONCE: \d+/)
    })
  }, 90_000)

  it('catches a planted silently-dropped write: I2 LOST, exit 1', async () => {
    const { code, out, result } = await runChaos(['--seed', '12', '--duration', '4s', '--drus', '3'], {
      DRU_TEST_PLANT: 'drop-batch',
    })
    explain(out, () => {
      expect(code).toBe(1)
      expect(result.violations['I2 LOST']).toBeGreaterThan(0)
      // Only the planted bug fires: the rest of the run is clean.
      expect(Object.keys(result.violations)).toEqual(['I2 LOST'])
    })
  }, 90_000)
})
