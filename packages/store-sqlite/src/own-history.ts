import { parseOrigin, type VersionVector } from '@dru/core'
import type Database from 'better-sqlite3'
import { storageError } from './sqlite-errors.js'

const ORIGIN_ID = '(select id from origin_ids where origin = ?)'

/**
 * Events written without keys. A DRU tried out alone (no `keys`) writes unsigned events; its
 * peers check a signature at the end of every run they receive, so the day it joins a cluster
 * with keys they would quarantine it (BAD_SIGNATURE) with nothing said at open. The node looks
 * here when it opens with keys: this DRU's own unsigned events it signs (its key vouches for
 * what its own file holds), another DRU's it cannot, and refuses to start (UNSIGNED_HISTORY).
 *
 * @module
 */

/** What {@link unsignedOrigins} and {@link signOwnHistory} read of the store. */
export interface HistoryStore {
  readonly db: Database.Database
  vv(): VersionVector
  base(): Record<string, { seq: number }>
}

/** An origin whose newest held event carries no signature, so no run of it can end verifiably. */
export interface UnsignedOrigin {
  readonly origin: string
  readonly druId: string
  /** Its newest held event. */
  readonly head: number
}

/**
 * Origins whose newest held event (above the compaction base) is unsigned. With keys every
 * commit's last event is signed, so only a history written without keys shows here. One
 * indexed lookup per origin.
 */
export function unsignedOrigins(store: HistoryStore): UnsignedOrigin[] {
  const sigOf = store.db.prepare(`select sig is null from log where origin_id = ${ORIGIN_ID} and seq = ?`).pluck()
  const base = store.base()
  const out: UnsignedOrigin[] = []
  for (const [origin, head] of Object.entries(store.vv())) {
    if (head <= (base[origin]?.seq ?? 0)) continue
    if (sigOf.get(origin, head) === 1) out.push({ origin, druId: parseOrigin(origin).druId, head })
  }
  return out
}

/**
 * Signs every unsigned event of `druId`'s own origins whose head is unsigned, in transactions
 * of `chunk` events (a signature is not part of an event's hash, so nothing else changes).
 * Returns the number of events signed; `onProgress` hears the running total after each chunk.
 */
export function signOwnHistory(
  store: HistoryStore,
  druId: string,
  sign: (hash: string) => Uint8Array,
  options: { chunk?: number; onProgress?: (signed: number) => void } = {},
): number {
  const chunk = options.chunk ?? 5_000
  const page = store.db.prepare(
    `select seq, lower(hex(hash)) as hash from log where origin_id = ${ORIGIN_ID} and seq > ? and sig is null order by seq limit ?`,
  )
  const update = store.db.prepare(`update log set sig = ? where origin_id = ${ORIGIN_ID} and seq = ?`)
  let signed = 0
  for (const { origin } of unsignedOrigins(store).filter((u) => u.druId === druId)) {
    let after = 0
    for (;;) {
      const rows = page.all(origin, after, chunk) as Array<{ seq: number; hash: string }>
      if (rows.length === 0) break
      try {
        store.db.transaction(() => {
          for (const r of rows) update.run(Buffer.from(sign(r.hash)), origin, r.seq)
        })()
      } catch (err) {
        throw storageError(err)
      }
      after = rows[rows.length - 1]!.seq
      signed += rows.length
      options.onProgress?.(signed)
    }
  }
  return signed
}
