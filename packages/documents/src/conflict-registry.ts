import type { EventStore } from '@dru/store-sqlite'
import type { Conflict, ConflictValue } from './conflict-policy.js'

interface Row {
  id: number
  doc_id: string
  path: string
  value_key: string
  values: string
  detected_at: number
  status: 'open' | 'resolved'
  resolution: string | null
  resolved_at: number | null
  resolved_by: string | null
}

/** Conflicts open, and resolved by `operator`, `policy`, `replicated` or `local-change`. */
export interface ConflictCounts {
  readonly open: number
  readonly resolved: Readonly<Record<string, number>>
}

/** Settled conflicts held before their rows are written (about 200 bytes each); more are written at once. */
export const MAX_UNWRITTEN_SETTLED = 1024

type SettledRow = [docId: string, path: string, key: string, values: string, at: number, resolution: string, by: string]

/**
 * The `conflicts` table: one row per (document, path, set of concurrent op ids).
 *
 * A conflict settled as it is found (keep-visible) needs no id and nothing reads it at once,
 * so its row is written with the others found in the same turn of the event loop, in one
 * transaction, not in a commit per document (a heal finds thousands, a few per document).
 * Every read of the table writes them first, and so does {@link ConflictRegistry.flush},
 * which the materializer calls before it stores a snapshot or moves the cold-scan mark: a
 * crash before the write loses only rows whose changes are still in the snapshot's tail, so
 * the next load finds those conflicts again.
 */
export class ConflictRegistry {
  readonly #store: EventStore
  readonly #stmt
  #unwritten: SettledRow[] = []
  #flushScheduled = false

  /** Where a failed write of the settled rows held back is reported (they stay held and are tried again). */
  readonly #onError: (err: unknown) => void

  constructor(store: EventStore, onError: (err: unknown) => void = (err) => console.error(err)) {
    this.#store = store
    this.#onError = onError
    const db = store.db
    this.#stmt = {
      exists: db.prepare('select id from conflicts where doc_id = ? and path = ? and value_key = ?').pluck(),
      insert: db.prepare(
        `insert into conflicts (doc_id, path, value_key, "values", detected_at, status, resolution, resolved_at, resolved_by)
         values (?, ?, ?, ?, ?, ?, ?, ?, ?)
         on conflict(doc_id, path, value_key) do nothing`,
      ),
      resolve: db.prepare(
        `update conflicts set status = 'resolved', resolution = ?, resolved_at = ?, resolved_by = ? where id = ? and status = 'open'`,
      ),
      get: db.prepare('select * from conflicts where id = ?'),
      openForDoc: db.prepare(`select * from conflicts where status = 'open' and doc_id = ? order by id`),
      openDocs: db.prepare(`select distinct doc_id from conflicts where status = 'open'`).pluck(),
      list: db.prepare('select * from conflicts where id > ? order by id limit ?'),
      listStatus: db.prepare('select * from conflicts where status = ? and id > ? order by id limit ?'),
      counts: db.prepare(
        'select status, resolved_by as "by", count(*) as n from conflicts group by status, resolved_by',
      ),
    }
  }

  exists(docId: string, path: string, valueKey: string): boolean {
    // Held rows are searched, not indexed: only an open conflict asks (rare while rows are
    // held, as only keep-visible holds them), and an index cost every held row a string key.
    if (this.#unwritten.some(([d, p, k]) => d === docId && p === path && k === valueKey)) return true
    return this.#stmt.exists.get(docId, path, valueKey) !== undefined
  }

  /**
   * Records a conflict settled as found (see the class comment); written with the others of
   * this turn, or at once inside an open transaction (a known one is skipped either way: one
   * found twice before the write is held twice, and the insert keeps the first, as a write
   * at once would).
   */
  recordSettled(
    docId: string,
    path: ReadonlyArray<string | number>,
    values: readonly ConflictValue[],
    at: number,
    settled: { readonly resolution: unknown; readonly by: string },
  ): void {
    if (this.#store.db.inTransaction) {
      this.record(docId, path, values, at, settled)
      return
    }
    // Known ones, written or held, are left to the insert (it skips a known conflict): a
    // heal's conflicts are almost all new, and a lookup each cost more than the rare repeat.
    this.#unwritten.push([
      docId,
      JSON.stringify(path),
      valueKey(values),
      JSON.stringify(values),
      at,
      JSON.stringify(settled.resolution ?? null),
      settled.by,
    ])
    if (this.#unwritten.length >= MAX_UNWRITTEN_SETTLED) this.flush()
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true
      setImmediate(() => {
        this.#flushScheduled = false
        if (this.#store.closed) return
        // Nobody waits on this turn's write: a failure (a full disk) is reported, not thrown
        // out of the event loop, and the rows stay held for the next write.
        try {
          this.flush()
        } catch (err) {
          this.#onError(err)
        }
      })
    }
  }

  /** Writes the settled conflicts held back (one transaction). */
  flush(): void {
    if (this.#unwritten.length === 0) return
    const rows = this.#unwritten
    this.#store.db.transaction(() => {
      for (const [docId, path, key, values, at, resolution, by] of rows)
        this.#stmt.insert.run(docId, path, key, values, at, 'resolved', resolution, at, by)
    })()
    this.#unwritten = []
  }

  /**
   * Records a conflict once, open or (`settled`) already resolved in the same row; returns
   * it when it is new, undefined when already known. Built from what was written, not read
   * back: a heal records thousands.
   */
  record(
    docId: string,
    path: ReadonlyArray<string | number>,
    values: readonly ConflictValue[],
    at: number,
    settled?: { readonly resolution: unknown; readonly by: string },
  ): Conflict | undefined {
    const key = valueKey(values)
    const resolution = settled ? JSON.stringify(settled.resolution ?? null) : null
    const r = this.#stmt.insert.run(
      docId,
      JSON.stringify(path),
      key,
      JSON.stringify(values),
      at,
      settled ? 'resolved' : 'open',
      resolution,
      settled ? at : null,
      settled?.by ?? null,
    )
    if (r.changes !== 1) return undefined
    const base = { id: Number(r.lastInsertRowid), docId, path: [...path], values: [...values], detectedAt: at }
    return settled
      ? {
          ...base,
          status: 'resolved',
          resolution: JSON.parse(resolution!) as unknown,
          resolvedAt: at,
          resolvedBy: settled.by,
        }
      : { ...base, status: 'open' }
  }

  markResolved(id: number, resolution: unknown, at: number, by: string): boolean {
    return this.#stmt.resolve.run(JSON.stringify(resolution ?? null), at, by, id).changes === 1
  }

  get(id: number): Conflict | undefined {
    this.flush()
    const row = this.#stmt.get.get(id) as Row | undefined
    return row ? toConflict(row) : undefined
  }

  openForDoc(docId: string): Conflict[] {
    return (this.#stmt.openForDoc.all(docId) as Row[]).map(toConflict)
  }

  /** How many conflicts are open, and how many were resolved by whom (one grouped count). */
  counts(): ConflictCounts {
    this.flush()
    const out = { open: 0, resolved: {} as Record<string, number> }
    for (const r of this.#stmt.counts.all() as Array<{ status: string; by: string | null; n: number }>) {
      if (r.status === 'open') out.open += r.n
      else out.resolved[r.by ?? 'unknown'] = (out.resolved[r.by ?? 'unknown'] ?? 0) + r.n
    }
    return out
  }

  openDocIds(): string[] {
    return this.#stmt.openDocs.all() as string[]
  }

  /** Conflicts in id order, paged so a long history is never read at once. */
  *list(status?: 'open' | 'resolved', pageSize = 256): Generator<Conflict> {
    this.flush()
    let after = 0
    for (;;) {
      const rows = (
        status ? this.#stmt.listStatus.all(status, after, pageSize) : this.#stmt.list.all(after, pageSize)
      ) as Row[]
      for (const r of rows) yield toConflict(r)
      if (rows.length < pageSize) return
      after = rows[rows.length - 1]!.id
    }
  }
}

/** A conflict's identity: its concurrent op ids, sorted. */
function valueKey(values: readonly ConflictValue[]): string {
  return values
    .map((v) => v.opId)
    .sort()
    .join(',')
}

function toConflict(r: Row): Conflict {
  return {
    id: r.id,
    docId: r.doc_id,
    path: JSON.parse(r.path) as Array<string | number>,
    values: JSON.parse(r.values) as ConflictValue[],
    detectedAt: r.detected_at,
    status: r.status,
    ...(r.resolution === null ? {} : { resolution: JSON.parse(r.resolution) as unknown }),
    ...(r.resolved_at === null ? {} : { resolvedAt: r.resolved_at }),
    ...(r.resolved_by === null ? {} : { resolvedBy: r.resolved_by }),
  }
}
