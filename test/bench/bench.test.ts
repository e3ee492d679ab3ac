// Smoke test of `npm run bench -- --quick`: the comparison benchmark (benchmarks/compare)
// must finish and produce a complete table — a row for every workload × system, each cell
// a number or an explicit "did not finish in N s" / "failed: …" — with dru's partition-heal
// converged. Runs the harness as CI would, writing to a temporary folder so the committed
// benchmarks/RESULTS.md is left alone.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const MAIN = join(ROOT, 'benchmarks/compare/main.mjs')

/** A data cell: a number (optionally "median (min–max)"), a dash for "no ratio", or an explicit non-result. */
const CELL = /^(?:-?[\d,.]+(?: \(-?[\d,.]+–-?[\d,.]+\))?|–|did not finish in \d+ s.*|failed: .+|not run: .+|n\/a: .+)$/
const NUMBER = /^[\d,.]+(?: \([\d,.]+–[\d,.]+\))?$/
/** Columns holding prose, not measurements. */
const TEXT_COLUMNS = new Set(['system', 'what one op does', 'ceiling', 'of what'])

interface Table {
  header: string[]
  rows: string[][]
}

/** The first markdown table after the heading that starts with `heading`. */
function tableAfter(md: string, heading: string): Table {
  const at = md.indexOf(`\n${heading}`)
  expect(at, `section "${heading}" missing`).toBeGreaterThanOrEqual(0)
  const next = md.indexOf('\n### ', at + 1)
  const body = md.slice(at, next < 0 ? undefined : next)
  const all = body.split('\n')
  const first = all.findIndex((l) => l.startsWith('|'))
  const end = all.findIndex((l, i) => i > first && !l.startsWith('|'))
  const lines = first < 0 ? [] : all.slice(first, end < 0 ? undefined : end)
  expect(lines.length, `no table under "${heading}"`).toBeGreaterThanOrEqual(3)
  const split = (l: string) =>
    l
      .slice(1, -1)
      .split('|')
      .map((c) => c.trim())
  return { header: split(lines[0]!), rows: lines.slice(2).map(split) }
}

function expectComplete(t: Table, name: string): void {
  for (const row of t.rows) {
    expect(row.length, `${name}: row "${row[0]}" has ${row.length} cells, header ${t.header.length}`).toBe(
      t.header.length,
    )
    row.forEach((cell, i) => {
      if (TEXT_COLUMNS.has(t.header[i]!)) {
        expect(cell.length, `${name}: empty ${t.header[i]} in row "${row[0]}"`).toBeGreaterThan(0)
        return
      }
      expect(cell, `${name}: row "${row[0]}", column "${t.header[i]}"`).toMatch(CELL)
    })
  }
}

const systemsOf = (t: Table) => t.rows.map((r) => r[0]!)

describe('npm run bench -- --quick', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dru-bench-test-'))
  const out = join(dir, 'RESULTS.md')
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('finishes and writes a complete table for every workload × system', { timeout: 480_000 }, async () => {
    const t0 = performance.now()
    let log = ''
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, [MAIN, '--quick', '--out', out], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      child.stdout.on('data', (d) => (log += d))
      child.stderr.on('data', (d) => (log += d))
      child.on('error', reject)
      child.on('exit', resolve)
    })
    const seconds = (performance.now() - t0) / 1000
    if (code !== 0) console.error(log)
    expect(code, 'bench exit code').toBe(0)
    // Not a bound: wall time moves with the machine's load (a loaded run took 200 s). The
    // harness bounds itself (every workload × system has a budget and reports "did not finish
    // in N s"), and the test's own timeout stops a run that hangs.
    console.log(`bench --quick: ${seconds.toFixed(0)} s`)
    expect(existsSync(out), 'RESULTS.md written to --out').toBe(true)
    const md = readFileSync(out, 'utf8')
    expect(md).toContain('<!-- bench:compare -->')
    expect(md).toContain('<!-- /bench:compare -->')
    expect(md).toContain('--quick')

    const all = ['dru', 'automerge-repo', 'Yjs']
    // 1. partition-heal: one row per system and the raw ceiling; dru converged.
    const ph = tableAfter(md, '### 1. partition-heal')
    expectComplete(ph, 'partition-heal')
    expect(systemsOf(ph)).toEqual([...all, 'raw ceiling'])
    const dru = ph.rows[0]!
    expect(dru[1], 'dru partition-heal must converge').toMatch(NUMBER)
    expect(Number(dru[1]!.split(' ')[0])).toBeGreaterThan(0)
    for (const cell of dru.slice(1)) expect(cell).toMatch(NUMBER)
    // The chart's table: one row per size, one column per system.
    const chart = tableAfter(md, 'Time to converge against ops')
    expect(chart.header).toEqual(['ops per replica', ...all, 'raw ceiling'])
    expect(chart.rows.length).toBeGreaterThanOrEqual(2)
    for (const row of chart.rows) for (const cell of row) expect(cell).toMatch(CELL)

    // 2. reconnect: every system at every size.
    const rc = tableAfter(md, '### 2. in-sync reconnect')
    expectComplete(rc, 'reconnect')
    const sizes = [...new Set(rc.rows.map((r) => r[1]))]
    expect(sizes.length).toBeGreaterThanOrEqual(1)
    for (const size of sizes)
      expect(rc.rows.filter((r) => r[1] === size).map((r) => r[0])).toEqual([...all, 'raw ceiling'])
    expect(rc.rows.find((r) => r[0] === 'dru')![2]).toMatch(NUMBER)

    // 3. local writes: the three systems and the three raw ceilings.
    const lw = tableAfter(md, '### 3. local writes')
    expectComplete(lw, 'local writes')
    expect(systemsOf(lw)).toEqual([
      ...all,
      'raw ceiling: Automerge.change',
      'raw ceiling: better-sqlite3 insert',
      'raw ceiling: both, a commit per change',
    ])
    expect(lw.rows[0]![2]).toMatch(NUMBER)

    // 4. scale.
    const sc = tableAfter(md, '### 4. scale')
    expectComplete(sc, 'scale')
    expect(systemsOf(sc)).toEqual([...all, 'raw ceiling'])
    expect(sc.rows[0]![1]).toMatch(NUMBER)

    // 5. raw ceilings on dru's logged bytes.
    const ce = tableAfter(md, '### 5. raw ceilings')
    expectComplete(ce, 'raw ceilings')
    const names = systemsOf(ce)
    for (const c of ['better-sqlite3 insert', 'ws transfer', 'applyChanges'])
      expect(
        names.some((n) => n.startsWith('raw ceiling') && n.includes(c)),
        c,
      ).toBe(true)
    for (const row of ce.rows.filter((r) => r[0]!.startsWith('raw ceiling'))) expect(row[1]).toMatch(NUMBER)

    // The chart next to the markdown, one series per system.
    const svg = readFileSync(join(dir, 'partition-heal.svg'), 'utf8')
    expect(svg.startsWith('<svg')).toBe(true)
    for (const s of [...all, 'raw ceiling']) expect(svg).toContain(`>${s}</text>`)
    console.log(`bench --quick finished in ${seconds.toFixed(1)} s`)
  })
})
