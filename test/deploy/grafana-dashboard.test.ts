import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { druNamesIn, exportedNames, hasPromtool } from './prometheus.js'

// deploy/grafana/dru-dashboard.json: valid JSON with a Prometheus datasource variable and a
// `dru` variable, every panel query filtered by `dru`, naming only exported metrics, and
// parsing as PromQL: each query becomes a recording rule of a generated file that
// `promtool check rules` must accept (Grafana's variables replaced by values first).

const FILE = fileURLToPath(new URL('../../deploy/grafana/dru-dashboard.json', import.meta.url))

interface Target {
  refId: string
  expr: string
  datasource: { type: string; uid: string }
}
interface Panel {
  id: number
  type: string
  title: string
  targets?: Target[]
}
interface Variable {
  type: string
  name: string
  query: unknown
  datasource?: { type: string; uid: string }
}

const dashboard = JSON.parse(readFileSync(FILE, 'utf8')) as {
  uid: string
  panels: Panel[]
  templating: { list: Variable[] }
}
const queryPanels = dashboard.panels.filter((p) => p.type !== 'row')
const targets = queryPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p, target: t })))
const PROMETHEUS = { type: 'prometheus', uid: '${datasource}' }

/** Grafana's variables as a query would see them: every DRU, a 5-minute rate window. */
function substituted(expr: string): string {
  return expr.replaceAll('$__rate_interval', '5m').replaceAll('$dru', '.*')
}

describe('deploy/grafana/dru-dashboard.json', () => {
  it('has a Prometheus datasource variable and a dru variable fed by dru_lifecycle_state', () => {
    const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]))
    expect(vars.get('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' })
    expect(vars.get('dru')).toMatchObject({
      type: 'query',
      datasource: PROMETHEUS,
      query: { query: 'label_values(dru_lifecycle_state, dru)' },
    })
  })

  it('gives every panel a distinct id and queries through the datasource variable', () => {
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length)
    for (const p of queryPanels) expect(p.targets?.length, p.title).toBeGreaterThan(0)
    for (const { panel, target } of targets) expect(target.datasource, panel.title).toEqual(PROMETHEUS)
  })

  it('filters every dru metric of every query by the dru variable', () => {
    for (const { panel, target } of targets) {
      const selectors = [...target.expr.matchAll(/\bdru_[a-z_]+\b(\{[^}]*\})?/g)]
      expect(selectors.length, panel.title).toBeGreaterThan(0)
      for (const s of selectors) expect(s[1] ?? '', `${panel.title}: ${s[0]}`).toContain('dru=~"$dru"')
    }
  })

  it('draws what an operator looks for, naming only metrics a DRU exports', async () => {
    const names = await exportedNames()
    const used = druNamesIn(targets.map((t) => t.target.expr).join('\n'))
    for (const name of used) expect(names.has(name), name).toBe(true)
    expect(used).toEqual(
      expect.arrayContaining([
        'dru_lifecycle_state',
        'dru_peer_connected',
        'dru_peer_lag_events',
        'dru_peer_lag_seconds',
        'dru_events_committed_total',
        'dru_events_applied_total',
        'dru_conflicts_open',
        'dru_forks_total',
        'dru_quarantines_total',
        'dru_inbox_pending',
        'dru_inbox_dead_letters',
        'dru_clock_skew_alarms_total',
        'dru_compaction_floor_events',
      ]),
    )
  })

  it.skipIf(!hasPromtool)('parses as PromQL: every query as a recording rule passes promtool check rules', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dru-dashboard-'))
    try {
      const rules = targets.map(({ panel, target }) => {
        const expr = substituted(target.expr)
        expect(expr, panel.title).not.toContain('$')
        // A JSON string is a valid YAML double-quoted scalar.
        return `      - record: dashboard:panel_${panel.id}_${target.refId}\n        expr: ${JSON.stringify(expr)}\n`
      })
      const file = join(dir, 'dashboard-queries.yml')
      writeFileSync(file, `groups:\n  - name: dru-dashboard\n    rules:\n${rules.join('')}`)
      const out = execFileSync('promtool', ['check', 'rules', file], { encoding: 'utf8' })
      expect(out).toMatch(new RegExp(`SUCCESS: ${rules.length} rules found`))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
