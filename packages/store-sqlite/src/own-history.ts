import { SIGN_EVERY_BYTES, SIGN_EVERY_EVENTS, parseOrigin, type VersionVector } from '@dru/core'
import type Database from 'better-sqlite3'
import { storageError } from './sqlite-errors.js'
import { eventsOfRun, type RunRow } from './statements.js'

const ORIGIN_ID = '(select id from origin_ids where origin = ?)'

/**
 * Events written without keys. A DRU tried out alone (no `keys`) writes unsigned events; its
 * peers check a signature at the end of every run they receive, so the day it joins a cluster
 * with keys they would quarantine it (BAD_SIGNATURE) with nothing said at open. The node looks
 * here when it opens with keys: this DRU's own unsigned events it signs (its key vouches for
 * what its own file holds), another DRU's it cannot, and refuses to start (UNSIGNED_HISTORY).
 * The same seam signs the tail of an earlier incarnation that a crash left before its deferred
 * signature ran (see deferred-signing.ts).
 *
 * @module
 */

/** What {@link unsignedOrigins} and {@link signOwnHistory} read of the store. */
export interface HistoryStore {
  readonly db: Database.Database
  vv(): VersionVector
  base(): Record<string, { seq: number }>
  /** Drops copies of events read earlier (they would lack the signatures added here). */
  forgetRecentReads?(): void
}

/** An origin whose newest held event carries no signature, so no run of it can end verifiably. */
export interface UnsignedOrigin {
  readonly origin: string
  readonly druId: string
  /** Its newest held event. */
  readonly head: number
}

/**
 * Origins whose newest held event (above the compaction base) is unsigned: a history written
 * without keys, or an own tail a crash left before its deferred signature. One indexed lookup
 * per origin.
 */
export function unsignedOrigins(store: HistoryStore): UnsignedOrigin[] {
  // 1 when the head is held (the run reaching it) and has no signature.
  const sigOf = store.db
    .prepare(
      `select (select 1 from sigs where origin_id = r.origin_id and seq = r.head) is null from
         (select origin_id, seq, n, ? as head from runs where origin_id = ${ORIGIN_ID} and seq <= ? order by seq desc limit 1) r
         where r.seq + r.n > r.head`,
    )
    .pluck()
  const base = store.base()
  const out: UnsignedOrigin[] = []
  for (const [origin, head] of Object.entries(store.vv())) {
    if (head <= (base[origin]?.seq ?? 0)) continue
    if (sigOf.get(head, origin, head) === 1) out.push({ origin, druId: parseOrigin(origin).druId, head })
  }
  return out
}

/**
 * Signs `druId`'s own origins whose head is unsigned: a history written without keys, or the
 * tail a crash left before its deferred signature (deferred-signing.ts). One signature on the
 * head vouches for the chain back to the last signed event, so of the unsigned run above that
 * event only the head is signed, plus — as a commit does — the event at which the run reaches
 * SIGN_EVERY_EVENTS or SIGN_EVERY_BYTES, so every frame of it can end at a signature. Writes
 * in transactions of `chunk` rows read (a signature is not part of an event's hash, so nothing
 * else changes). Returns the number of events signed; `onProgress` hears the running total.
 */
export function signOwnHistory(
  store: HistoryStore,
  druId: string,
  sign: (hash: string) => Uint8Array,
  options: { chunk?: number; onProgress?: (signed: number) => void } = {},
): number {
  const chunk = options.chunk ?? 5_000
  const lastSigned = store.db
    // Backwards along (origin_id, seq): stops at the newest signature, so it reads only the tail.
    .prepare(`select seq from sigs where origin_id = ${ORIGIN_ID} order by seq desc limit 1`)
    .pluck()
  const page = store.db
    .prepare(
      `select r.lsn, o.origin, r.seq, r.n, lower(hex(r.prev)), r.body, r.origin_id, lower(hex(r.hashes)), r.received_at from runs r join origin_ids o on o.id = r.origin_id
         where r.origin_id = (select id from origin_ids where origin = ?)
           and r.seq >= coalesce((select max(seq) from runs where origin_id = r.origin_id and seq <= ? + 1), ? + 1)
         order by r.seq limit ?`,
    )
    .raw()
  const update = store.db.prepare(
    `insert or replace into sigs (origin_id, seq, sig) values ((select id from origin_ids where origin = ?), ?, ?)`,
  )
  let signed = 0
  for (const { origin, head } of unsignedOrigins(store).filter((u) => u.druId === druId)) {
    let after = Math.max((lastSigned.get(origin) as number | undefined) ?? 0, store.base()[origin]?.seq ?? 0)
    let count = 0
    let bytes = 0
    for (;;) {
      const rows: Array<{ seq: number; hash: string; bytes: number }> = []
      for (const run of page.all(origin, after, after, Math.max(1, Math.ceil(chunk / 8))) as RunRow[])
        for (const e of eventsOfRun(run))
          if (e.seq > after) rows.push({ seq: e.seq, hash: e.hash, bytes: e.change.byteLength })
      if (rows.length === 0) break
      const due = rows.filter((r) => {
        count++
        bytes += r.bytes
        if (r.seq !== head && count < SIGN_EVERY_EVENTS && bytes < SIGN_EVERY_BYTES) return false
        count = 0
        bytes = 0
        return true
      })
      try {
        store.db.transaction(() => {
          for (const r of due) update.run(origin, r.seq, Buffer.from(sign(r.hash)))
        })()
      } catch (err) {
        throw storageError(err)
      } finally {
        store.forgetRecentReads?.()
      }
      after = rows[rows.length - 1]!.seq
      signed += due.length
      options.onProgress?.(signed)
    }
  }
  return signed
}
