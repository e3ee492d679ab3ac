import { describe, expect, it } from 'vitest'
import {
  ExitCode,
  createProgressReporter,
  exitCodeForDruCode,
  formatCount,
  formatPath,
  formatProgress,
  formatSeconds,
  formatValue,
  formatVv,
  renderTable,
} from '../src/index.js'

describe('renderTable', () => {
  it('aligns columns, right-aligns numbers and trims trailing space', () => {
    const t = renderTable(
      ['peer', { header: 'lag', align: 'right' }, 'note'],
      [
        ['us-east-1', '1,234', ''],
        ['ap-south-1', '7', 'gone'],
      ],
    )
    expect(t).toBe(['PEER          LAG  NOTE', 'us-east-1   1,234', 'ap-south-1      7  gone'].join('\n'))
  })
})

describe('formatters', () => {
  it('format counts, durations, paths, values and vectors', () => {
    expect(formatCount(1234567)).toBe('1,234,567')
    expect(formatCount(null)).toBe('-')
    expect(formatSeconds(2.46)).toBe('2.5s')
    expect(formatSeconds(65)).toBe('1m 05s')
    expect(formatSeconds(7380)).toBe('2h 03m')
    expect(formatSeconds(undefined)).toBe('-')
    expect(formatPath(['lines', 0, 'qty'])).toBe('lines[0].qty')
    expect(formatPath([])).toBe('(root)')
    expect(formatValue('x'.repeat(50), 10)).toBe('"xxxxxxxx…')
    expect(formatVv({ 'b/1': 2, 'a/1': 3 })).toBe('a/1:3 b/1:2')
    expect(formatVv({})).toBe('(empty)')
  })
})

describe('progress', () => {
  it('formats done/total, percent, rate and ETA', () => {
    expect(formatProgress({ phase: 'catch-up', done: 12_000, total: 48_000, unit: 'events' }, 4_000)).toBe(
      'catch-up: 12,000/48,000 events (25%) · 3,000 events/s · ETA 12.0s',
    )
    expect(formatProgress({ phase: 'catch-up', done: 0, total: 10 }, 0)).toBe('catch-up: 0/10 items (0%)')
    expect(formatProgress({ phase: 'scan', done: 500, unit: 'docs' }, 1_000)).toBe('scan: 500 docs · 500 docs/s')
  })

  it('throttles lines per phase but always prints a phase start and its end', () => {
    let t = 0
    const lines: string[] = []
    const p = createProgressReporter({ write: (l) => lines.push(l), now: () => t, minIntervalMs: 1_000 })
    p.update({ phase: 'apply', done: 0, total: 100, unit: 'events' })
    for (let i = 1; i < 100; i++) {
      t += 50
      p.update({ phase: 'apply', done: i, total: 100, unit: 'events' })
    }
    t += 50
    p.update({ phase: 'apply', done: 100, total: 100, unit: 'events' })
    p.update({ phase: 'verify', done: 1, total: 3, unit: 'peers' })
    // 5 s of updates at 50 ms: start, one per second, the end, then the new phase
    expect(lines.length).toBe(1 + 4 + 1 + 1)
    expect(lines[0]).toBe('apply: 0/100 events (0%)\n')
    expect(lines[5]).toBe('apply: 100/100 events (100%) · 20 events/s\n')
    expect(lines[6]).toBe('verify: 1/3 peers (33%)\n')
  })
})

describe('exit codes', () => {
  it('give integrity, config, not-found and unsupported failures their own codes', () => {
    expect(exitCodeForDruCode('FORK')).toBe(ExitCode.INTEGRITY)
    expect(exitCodeForDruCode('CORRUPTION')).toBe(ExitCode.INTEGRITY)
    expect(exitCodeForDruCode('CONFIG_INVALID')).toBe(ExitCode.CONFIG)
    expect(exitCodeForDruCode('NOT_FOUND')).toBe(ExitCode.NOT_FOUND)
    expect(exitCodeForDruCode('NOT_SUPPORTED')).toBe(ExitCode.NOT_SUPPORTED)
    expect(exitCodeForDruCode('CLOSED')).toBe(ExitCode.REFUSED)
    expect(new Set(Object.values(ExitCode)).size).toBe(Object.keys(ExitCode).length)
  })
})
