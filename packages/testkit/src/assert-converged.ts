import { equalFingerprints } from '@dru/core'
import type { Dru } from '@dru/node'

/** Thrown by {@link assertConverged}; `report` lists every difference found. */
export class ConvergenceError extends Error {
  override readonly name = 'ConvergenceError'
  constructor(readonly report: string[]) {
    super(`DRUs did not converge:\n  ${report.join('\n  ')}`)
  }
}

/**
 * Checks that DRUs hold identical logs and identical materialised states: equal
 * fingerprints, equal sorted heads per document and equal canonical JSON per document.
 * Throws {@link ConvergenceError} describing each difference (which DRU, which document,
 * the first differing position of the JSON).
 */
export function assertConverged(drus: readonly Dru[], options: { maxReports?: number } = {}): void {
  const max = options.maxReports ?? 20
  const report: string[] = []
  const first = drus[0]
  if (!first) return
  const fp0 = first.fingerprint()
  for (const d of drus.slice(1)) {
    const fp = d.fingerprint()
    if (!equalFingerprints(fp, fp0))
      report.push(`fingerprint of ${d.id} ${JSON.stringify(fp.vv)} ≠ ${first.id} ${JSON.stringify(fp0.vv)}`)
  }
  const ids = new Set<string>()
  for (const d of drus) for (const id of d.documents.docIds()) ids.add(id)
  for (const docId of [...ids].sort()) {
    if (report.length >= max) break
    const base = first.docDigest(docId)
    for (const d of drus.slice(1)) {
      const other = d.docDigest(docId)
      if (!base || !other) {
        if (base !== other) report.push(`${docId}: present on ${base ? first.id : d.id} only`)
        continue
      }
      if (base.heads.join(',') !== other.heads.join(',')) {
        report.push(`${docId}: heads on ${d.id} [${short(other.heads)}] ≠ ${first.id} [${short(base.heads)}]`)
      }
      if (base.json !== other.json)
        report.push(`${docId}: JSON on ${d.id} differs from ${first.id}: ${jsonDiff(base.json, other.json)}`)
    }
  }
  if (report.length > 0) throw new ConvergenceError(report)
}

function short(heads: readonly string[]): string {
  return heads.map((h) => h.slice(0, 8)).join(',')
}

/** The first differing position of two JSON texts, with a little context on each side. */
export function jsonDiff(a: string, b: string): string {
  let i = 0
  while (i < a.length && i < b.length && a[i] === b[i]) i++
  const from = Math.max(0, i - 30)
  return `at char ${i}: …${a.slice(from, i + 40)}… vs …${b.slice(from, i + 40)}…`
}
