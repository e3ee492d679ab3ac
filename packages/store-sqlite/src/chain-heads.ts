import {
  compareHlc,
  decodeHlc,
  normalizeVv,
  retiredSummary,
  type CompactionBase,
  type Fingerprint,
  type Hlc,
  type LogSummary,
  type VersionVector,
} from '@dru/core'
import type { Head, LogStatements } from './statements.js'

/**
 * What the log holds per origin, kept in memory: each origin's chain head and compaction base
 * (loaded from `origins` and `log_base` at open, then changed by the commit paths and by
 * compaction together with their rows), and the vectors, fingerprints and summaries computed
 * from them. The maps are shared with the readers and the commit paths; whoever changes a
 * head or a base calls {@link changed}, which invalidates the cached retired summary.
 *
 * @module
 */
export class ChainHeads {
  /** Per origin, the highest contiguous seq held, with its hash and HLC. */
  readonly heads = new Map<string, Head>()
  /** Per origin, the compacted prefix: events up to `seq` may be gone from `log`. */
  readonly base = new Map<string, Head>()
  /** Bumped whenever a head or base changes: the retired summary is cached against it. */
  #version = 0
  #retiredCache: { version: number; summary: LogSummary['retired'] } | undefined

  /** Loads heads and bases; returns the newest HLC among the heads (the clock's high water). */
  load(stmt: LogStatements): Hlc | undefined {
    let highWater: Hlc | undefined
    for (const row of stmt.allHeads.all() as Array<{ origin: string } & Head>) {
      this.heads.set(row.origin, { seq: row.seq, hash: row.hash, hlc: row.hlc })
      const h = decodeHlc(row.hlc)
      if (!highWater || compareHlc(h, highWater) > 0) highWater = h
    }
    for (const row of stmt.allBase.all() as Array<{ origin: string } & Head>) {
      this.base.set(row.origin, { seq: row.seq, hash: row.hash, hlc: row.hlc })
    }
    return highWater
  }

  /** Call after changing a head or a base. */
  changed(): void {
    this.#version++
  }

  /** Per origin, the highest contiguous seq held. */
  vv(): VersionVector {
    const out: Record<string, number> = {}
    for (const [origin, h] of this.heads) out[origin] = h.seq
    return normalizeVv(out)
  }

  fingerprint(): Fingerprint {
    const heads: Record<string, string> = {}
    for (const origin of [...this.heads.keys()].sort()) heads[origin] = this.heads.get(origin)!.hash
    return { vv: this.vv(), heads }
  }

  summary(): LogSummary {
    const heads: Record<string, string> = {}
    const vv: Record<string, number> = {}
    for (const origin of [...this.heads.keys()].sort()) {
      if (this.#isRetired(origin)) continue
      const h = this.heads.get(origin)!
      vv[origin] = h.seq
      heads[origin] = h.hash
    }
    if (this.#retiredCache?.version !== this.#version) {
      this.#retiredCache = {
        version: this.#version,
        summary: retiredSummary(this.retired().map((r) => [r.origin, r.seq, r.hash] as const)),
      }
    }
    return { live: { vv, heads }, retired: this.#retiredCache.summary }
  }

  retired(): Array<{ origin: string; seq: number; hash: string }> {
    const out: Array<{ origin: string; seq: number; hash: string }> = []
    for (const [origin, h] of this.heads) if (this.#isRetired(origin)) out.push({ origin, seq: h.seq, hash: h.hash })
    return out.sort((a, b) => (a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0))
  }

  baseRecord(): Record<string, CompactionBase> {
    const out: Record<string, CompactionBase> = {}
    for (const origin of [...this.base.keys()].sort()) out[origin] = { ...this.base.get(origin)! }
    return out
  }

  baseVv(): VersionVector {
    const out: Record<string, number> = {}
    for (const [origin, b] of this.base) out[origin] = b.seq
    return normalizeVv(out)
  }

  /** Fully compacted: every event of the origin lives only in snapshots (and envelopes). */
  #isRetired(origin: string): boolean {
    const base = this.base.get(origin)
    return base !== undefined && base.seq === this.heads.get(origin)?.seq
  }
}
