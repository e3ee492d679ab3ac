import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const cli = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url))

describe("dru demo (the README's main job)", () => {
  it('fails a region, reconciles, and reports convergence with exit code 0, in under a minute', () => {
    const t0 = Date.now()
    const run = spawnSync(process.execPath, [cli, 'demo', '--json'], { encoding: 'utf8', timeout: 90_000 })
    const seconds = (Date.now() - t0) / 1000
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0)
    expect(seconds).toBeLessThan(60)
    const out = run.stdout
    for (const step of ['[1/8]', '[2/8]', '[3/8]', '[4/8]', '[5/8]', '[6/8]', '[7/8]', '[8/8]'])
      expect(out).toContain(step)
    expect(out).toMatch(/ap-south restarts with its disk while its region is still cut off: state isolated/)
    expect(out).toMatch(/Reconciliation on ap-south: isolated → catching-up .*→ active/)
    expect(out).toContain('CONVERGED: equal fingerprints, equal documents, every DRU active')
    const report = JSON.parse(out.slice(out.indexOf('\n{') + 1)) as {
      converged: boolean
      conflictsFound: number
      conflictsResolved: number
      exchanged: number
      fingerprints: Record<string, string>
      states: Record<string, string>
      written: Record<string, number>
    }
    expect(report.converged).toBe(true)
    // Two fields were edited on both sides of the partition: each is one conflict, resolved by the operator step.
    expect(report.conflictsFound).toBe(2)
    expect(report.conflictsResolved).toBe(2)
    expect(new Set(Object.values(report.fingerprints)).size).toBe(1)
    expect(Object.values(report.states)).toEqual(['active', 'active', 'active'])
    // Both sides wrote during the partition and reconciliation moved those events.
    expect(report.written['ap-south']).toBeGreaterThan(0)
    expect(report.exchanged).toBeGreaterThan(0)
  }, 120_000)
})
