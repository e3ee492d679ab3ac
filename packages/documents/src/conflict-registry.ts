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

/** The `conflicts` table: one row per (document, path, set of concurrent op ids). */
export class ConflictRegistry {
  readonly #stmt

  constructor(store: EventStore) {
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
    return this.#stmt.exists.get(docId, path, valueKey) !== undefined
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
    const key = values
      .map((v) => v.opId)
      .sort()
      .join(',')
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
      ? { ...base, status: 'resolved', resolution: JSON.parse(resolution!) as unknown, resolvedAt: at, resolvedBy: settled.by }
      : { ...base, status: 'open' }
  }

  markResolved(id: number, resolution: unknown, at: number, by: string): boolean {
    return this.#stmt.resolve.run(JSON.stringify(resolution ?? null), at, by, id).changes === 1
  }

  get(id: number): Conflict | undefined {
    const row = this.#stmt.get.get(id) as Row | undefined
    return row ? toConflict(row) : undefined
  }

  openForDoc(docId: string): Conflict[] {
    return (this.#stmt.openForDoc.all(docId) as Row[]).map(toConflict)
  }

  /** How many conflicts are open, and how many were resolved by whom (one grouped count). */
  counts(): ConflictCounts {
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
