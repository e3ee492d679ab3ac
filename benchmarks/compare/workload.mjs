// The logical workload every system runs: seeded, so each system sees the same ops.
import { createHash } from 'node:crypto'

/** mulberry32: a small seeded PRNG returning floats in [0, 1). */
export function rng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * The ops replica `replica` writes: op k sets key `k0`..`k7` of one document (chosen at
 * random) to the integer `replica * 1e9 + k` (a scalar in every system: an Automerge
 * string would be a collaborative text object, a Yjs map string is not). One op = one
 * change (one Automerge change, one Yjs transaction) in every system.
 */
export function* ops({ seed, replica, count, docs }) {
  const r = rng(seed * 7919 + replica * 104729 + 1)
  for (let k = 0; k < count; k++) {
    const doc = Math.floor(r() * docs)
    const key = `k${Math.floor(r() * 8)}`
    yield { doc, key, value: replica * 1e9 + k }
  }
}

/** Canonical JSON: object keys sorted, so equal content gives equal text. */
export function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(',')}}`
  }
  return JSON.stringify(v)
}

export const sha256 = () => createHash('sha256')

/** Lets timers and sockets run inside long synchronous loops. */
export const tick = () => new Promise((r) => setImmediate(r))
