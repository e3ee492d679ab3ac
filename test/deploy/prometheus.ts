import { spawnSync } from 'node:child_process'
import { createMetrics } from '@dru/node'

// Shared by the deploy tests: whether promtool can run here, and which metric names a DRU
// exports, so rules and dashboards can be checked against them.

/** True when `promtool` runs (Debian's `prometheus` package installs it). */
export const hasPromtool = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0

/** Under CI the promtool checks must run: .ci/run installs promtool when it is missing. */
export const inCi = process.env.CI === 'true'

/**
 * Every name a scrape of a DRU can carry: each metric of a fresh registry, plus the
 * `_bucket`, `_sum` and `_count` series of its histograms.
 */
export async function exportedNames(): Promise<Set<string>> {
  const names = new Set<string>()
  for (const [, name, type] of (await createMetrics().render()).matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name!)
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(`${name}${s}`)
  }
  return names
}

/** The distinct `dru_…` metric names a text mentions, sorted. */
export function druNamesIn(text: string): string[] {
  return [...new Set(text.match(/\bdru_[a-z_]+\b/g) ?? [])].sort()
}

/**
 * The anchors GitHub gives a Markdown file's headings: lower case, punctuation dropped,
 * spaces as hyphens (no duplicate suffixes: the runbook's headings are distinct).
 */
export function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>()
  let fenced = false
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced
    const m = fenced ? null : /^#{1,6} (.+)$/.exec(line)
    if (m)
      anchors.add(
        m[1]!
          .trim()
          .toLowerCase()
          .replace(/[^a-z0-9 _-]/g, '')
          .replace(/ /g, '-'),
      )
  }
  return anchors
}
