import {
  DruError,
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
import type { Head, HeadStatements } from './statements.js'

/**
 * What the log holds per origin, kept in memory: each origin's chain head and compaction base
 * (derived at open from the log's last event per origin and `log_base`, then changed by the
 * commit paths and by compaction together with their rows), and the vectors, fingerprints and
 * summaries computed from them. The maps are shared with the readers and the commit paths; whoever changes a
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

  /**
   * Loads bases and heads; returns the newest HLC among the heads (the clock's high water).
   * A head is not stored apart (a row per commit that cost a quarter of a one-event commit):
   * it is the origin's last event in the log, or its base when compaction folded everything
   * up to it. Its hash is taken as stored, as the head row's was (a damaged row's reads fail
   * with CORRUPTION as any damaged row's do), but what cannot be a head refuses the open.
   */
  load(stmt: HeadStatements): Hlc | undefined {
    for (const row of stmt.allBase.all() as Array<{ origin: string } & Head>) {
      this.base.set(row.origin, { seq: row.seq, hash: row.hash, hlc: row.hlc })
      this.heads.set(row.origin, { seq: row.seq, hash: row.hash, hlc: row.hlc })
    }
    const heldAtBase = this.#loadLastRows(stmt)
    for (const [origin, base] of this.base) if (!heldAtBase.has(origin)) checkBaseEvidenced(stmt, origin, base)
    return highWater(this.heads)
  }

  /** Each origin's last row as its head when above its base; returns the origins with a row at or above their base. */
  #loadLastRows(stmt: HeadStatements): Set<string> {
    const heldAtBase = new Set<string>()
    for (const last of stmt.lastEvents()) {
      const { origin, seq, hash } = last
      // The event is not re-hashed (a damaged change byte leaves its hash, the head's, right), but
      // fields that cannot be a head refuse the open: a nameless origin id would be taken by the
      // next new origin, and a hash of another length would be advertised and fail the next link.
      if (origin === null || hash.length !== 64)
        throw new DruError(
          'CORRUPTION',
          `the last stored event of ${origin ?? 'an origin id origin_ids does not name'} (position ${last.lsn}) cannot be a chain head: the database file was altered`,
          { details: { origin, seq, lsn: last.lsn } },
        )
      const base = this.base.get(origin)
      // Events at or below the base are left by a deletion cut short: the base is the head then.
      if (base === undefined || seq > base.seq) this.heads.set(origin, { seq, hash, hlc: last.hlc })
      if (base !== undefined && seq >= base.seq) heldAtBase.add(origin)
    }
    return heldAtBase
  }

  /**
   * Events held above the compaction bases: each origin holds every seq from its base to its
   * head (which `verifyLog` checks), so this is the log's row count once no compaction is
   * between its steps, without walking the log.
   */
  heldAboveBase(): number {
    let n = 0
    for (const [origin, head] of this.heads) n += head.seq - (this.base.get(origin)?.seq ?? 0)
    return n
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

/**
 * A head taken from the base claims base.seq in the vector: compaction kept the envelope of
 * every event it deleted, the base's included. A base raised by hand past what was held would
 * otherwise be advertised. (A release before envelopes kept none: an origin without any cannot
 * be checked, and passes as before.)
 */
function checkBaseEvidenced(stmt: HeadStatements, origin: string, base: Head): void {
  if (stmt.foldedAt.get(origin, base.seq) !== undefined || stmt.anyFolded.get(origin) === undefined) return
  throw new DruError(
    'CORRUPTION',
    `the compaction base of ${origin} (#${base.seq}) is neither in the log nor among its folded envelopes: the database file was altered`,
    { details: { origin, seq: base.seq } },
  )
}

/** The newest HLC among the heads; CORRUPTION naming the origin of one that does not decode. */
function highWater(heads: ReadonlyMap<string, Head>): Hlc | undefined {
  let newest: Hlc | undefined
  for (const [origin, h] of heads) {
    let hlc: Hlc
    try {
      hlc = decodeHlc(h.hlc)
    } catch (cause) {
      throw new DruError('CORRUPTION', `the chain head of ${origin} has no valid HLC: the database file was altered`, {
        cause,
        details: { origin, seq: h.seq },
      })
    }
    if (!newest || compareHlc(hlc, newest) > 0) newest = hlc
  }
  return newest
}
