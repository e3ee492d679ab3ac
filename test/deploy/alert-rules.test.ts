import { execFileSync, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { createMetrics } from '@dru/node'

// The Prometheus alert rules shipped in deploy/prometheus: valid for promtool, firing as their
// unit tests say, and naming only metrics a DRU exports. Without promtool the promtool checks
// skip on a developer machine but fail under CI=true (.ci/run installs it), so they cannot
// silently stop running.

const DIR = fileURLToPath(new URL('../../deploy/prometheus/', import.meta.url))
const RULES = `${DIR}dru-alerts.yml`
const hasPromtool = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0
const inCi = process.env.CI === 'true'

describe('deploy/prometheus/dru-alerts.yml', () => {
  it('promtool is installed wherever CI runs', () => {
    if (inCi) expect(hasPromtool, 'promtool is missing: .ci/run installs it (apt-get install prometheus)').toBe(true)
  })

  it.skipIf(!hasPromtool)('passes promtool check rules', () => {
    const out = execFileSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' })
    expect(out).toMatch(/SUCCESS: 2 rules found/)
  })

  it.skipIf(!hasPromtool)('fires as its unit tests say (promtool test rules)', () => {
    const out = execFileSync('promtool', ['test', 'rules', 'dru-alerts.test.yml'], { cwd: DIR, encoding: 'utf8' })
    expect(out).toMatch(/SUCCESS/)
  })

  it('names only metrics a DRU exports', async () => {
    const names = new Set((await createMetrics().registry.getMetricsAsJSON()).map((m) => m.name))
    const used = [...new Set(readFileSync(RULES, 'utf8').match(/\bdru_[a-z_]+\b/g) ?? [])]
    expect(used.sort()).toEqual(['dru_inbox_dead_letters', 'dru_inbox_handler_failures_total', 'dru_inbox_pending'])
    for (const name of used) expect(names.has(name), name).toBe(true)
  })
})
