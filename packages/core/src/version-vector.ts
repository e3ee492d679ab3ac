/**
 * Version vectors: per origin, the highest contiguous `seq` held. Because seqs have no
 * holes, a vector names an exact set of events, so set operations on event logs become
 * cheap per-origin arithmetic.
 */

/** origin -> highest contiguous seq held. Absent and 0 both mean "none". */
export type VersionVector = Readonly<Record<string, number>>

/** A run of one origin's events, `from..to` inclusive. */
export interface SeqRange {
  readonly origin: string
  readonly from: number
  readonly to: number
}

export type VvOrder = 'equal' | 'before' | 'after' | 'concurrent'

function get(vv: VersionVector, origin: string): number {
  return Object.hasOwn(vv, origin) ? vv[origin]! : 0
}

/** Drops zero entries and sorts origins, so equal sets have equal shapes. */
export function normalizeVv(vv: VersionVector): VersionVector {
  const out: Record<string, number> = {}
  for (const origin of Object.keys(vv).sort()) {
    const seq = vv[origin]!
    if (seq > 0) out[origin] = seq
  }
  return out
}

/** Pointwise maximum: the vector of the union of both event sets. */
export function mergeVv(a: VersionVector, b: VersionVector): VersionVector {
  const out: Record<string, number> = { ...a }
  for (const origin of Object.keys(b)) out[origin] = Math.max(get(a, origin), get(b, origin))
  return normalizeVv(out)
}

/** Compares the event sets two vectors name. */
export function compareVv(a: VersionVector, b: VersionVector): VvOrder {
  let aAhead = false
  let bAhead = false
  for (const origin of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = get(a, origin)
    const y = get(b, origin)
    if (x > y) aAhead = true
    else if (y > x) bAhead = true
  }
  if (aAhead && bAhead) return 'concurrent'
  if (aAhead) return 'after'
  if (bAhead) return 'before'
  return 'equal'
}

/** True when `a` holds every event `b` holds. */
export function dominatesVv(a: VersionVector, b: VersionVector): boolean {
  const order = compareVv(a, b)
  return order === 'after' || order === 'equal'
}

export function equalVv(a: VersionVector, b: VersionVector): boolean {
  return compareVv(a, b) === 'equal'
}

/** Pointwise minimum over origins present in every vector: what all of them hold. */
export function meetVv(vectors: readonly VersionVector[]): VersionVector {
  if (vectors.length === 0) return {}
  const out: Record<string, number> = {}
  for (const origin of Object.keys(vectors[0]!)) {
    out[origin] = Math.min(...vectors.map((v) => get(v, origin)))
  }
  return normalizeVv(out)
}

/**
 * The events `source` holds that `target` lacks, as one range per origin, origins sorted.
 * Exactly the set difference source \ target.
 */
export function missingRanges(source: VersionVector, target: VersionVector): SeqRange[] {
  const out: SeqRange[] = []
  for (const origin of Object.keys(source).sort()) {
    const have = get(source, origin)
    const theirs = get(target, origin)
    if (have > theirs) out.push({ origin, from: theirs + 1, to: have })
  }
  return out
}

/** Number of events `source` holds that `target` lacks. */
export function countMissing(source: VersionVector, target: VersionVector): number {
  return missingRanges(source, target).reduce((n, r) => n + (r.to - r.from + 1), 0)
}
