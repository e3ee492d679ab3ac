import type { OperationProgress } from '@dru/node/admin-api'
import { formatCount, formatSeconds } from './render.js'

/** One progress report: `done` of `total` `unit`s in `phase` (a streamed `{"progress": …}` line). */
export type Progress = OperationProgress

/**
 * One progress line, e.g. `catch-up: 12,000/50,000 events (24%) · 3,000 events/s · ETA 12.7s`.
 * Rate and ETA appear once some time has passed and some work is done.
 */
export function formatProgress(p: Progress, elapsedMs: number): string {
  const unit = p.unit ?? 'items'
  const hasTotal = p.total !== undefined && p.total > 0
  let line = `${p.phase}: ${formatCount(p.done)}${hasTotal ? `/${formatCount(p.total)}` : ''} ${unit}`
  if (hasTotal) line += ` (${Math.min(100, Math.floor((p.done / p.total!) * 100))}%)`
  if (elapsedMs > 0 && p.done > 0) {
    const rate = p.done / (elapsedMs / 1000)
    line += ` · ${formatCount(rate)} ${unit}/s`
    if (hasTotal && p.done < p.total!) line += ` · ETA ${formatSeconds((p.total! - p.done) / rate)}`
  }
  return line
}

/** Options for {@link createProgressReporter}. */
export interface ProgressReporterOptions {
  /** Receives whole lines (with `\n`). */
  readonly write: (line: string) => void
  readonly now?: () => number
  /** At most one line per phase per interval, except a phase's first and last. Default 1000 ms. */
  readonly minIntervalMs?: number
}

/** Turns a stream of {@link Progress} updates into throttled progress lines. */
export interface ProgressReporter {
  update(p: Progress): void
}

/**
 * A reusable progress renderer for long operations (catch-up, verify, compaction,
 * restore). It prints lines rather than redrawing one, so output stays readable in
 * logs and CI as well as terminals.
 */
export function createProgressReporter(options: ProgressReporterOptions): ProgressReporter {
  const now = options.now ?? Date.now
  const interval = options.minIntervalMs ?? 1000
  let phase: string | undefined
  let phaseStart = 0
  let lastPrinted = -Infinity
  return {
    update(p) {
      const t = now()
      if (p.phase !== phase) {
        phase = p.phase
        phaseStart = t
        lastPrinted = -Infinity
      }
      const finished = p.total !== undefined && p.done >= p.total
      if (!finished && t - lastPrinted < interval) return
      lastPrinted = t
      options.write(`${formatProgress(p, t - phaseStart)}\n`)
    },
  }
}
