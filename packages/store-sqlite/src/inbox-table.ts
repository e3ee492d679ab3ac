import type Database from 'better-sqlite3'
import { DruError } from '@dru/core'
import type { InboxCounts, InboxEntry, InboxFilter, InboxState } from './inbox-types.js'
import { MetaKey } from './meta.js'

/**
 * The `inbox` table as the inbox reads and writes it: its rows, the prepared statement of
 * each state transition, and the operator's reads (an entry, a filtered page, counts per
 * handler, what compaction must keep). No decisions: which transition runs when is inbox.ts.
 *
 * @module
 */

/** Largest page {@link listEntries} returns. */
export const MAX_INBOX_LIST = 1_000

/** One `inbox` row as SQLite returns it. */
export interface InboxRow {
  id: number
  handler: string
  origin: string
  seq: number
  doc_id: string
  lsn: number
  state: InboxState
  attempts: number
  first_failed_at: number | null
  last_failed_at: number | null
  next_attempt_at: number | null
  last_error: string | null
  error_stack: string | null
  settled_at: number | null
  note: string | null
}

const ROW =
  'id, handler, origin, seq, doc_id, lsn, state, attempts, first_failed_at, last_failed_at, next_attempt_at, last_error, error_stack, settled_at, note'

/** The inbox's statements, one per state transition or read. */
export type InboxStatements = Readonly<
  Record<
    | 'savepoint'
    | 'release'
    | 'rollbackTo'
    | 'insert'
    | 'owe'
    | 'blocked'
    | 'get'
    | 'due'
    | 'nextDue'
    | 'failed'
    | 'delete'
    | 'head'
    | 'promote'
    | 'unwait'
    | 'rewait'
    | 'requeue'
    | 'requeueHandler'
    | 'skip'
    | 'counts'
    | 'held'
    | 'known'
    | 'remember'
    | 'forgetName'
    | 'forgetRows'
    | 'remoteSince'
    | 'remoteHeldSince'
    | 'windowGet'
    | 'windowSet'
    | 'windowClear',
    Database.Statement
  >
>

/** Prepares them, once per store. */
export function prepareInboxStatements(db: Database.Database): InboxStatements {
  return {
    savepoint: db.prepare('savepoint dru_inbox_handler'),
    release: db.prepare('release dru_inbox_handler'),
    rollbackTo: db.prepare('rollback to dru_inbox_handler'),
    insert: db.prepare(
      `insert into inbox (handler, origin, seq, doc_id, lsn, state, attempts, first_failed_at, last_failed_at, next_attempt_at, last_error, error_stack, settled_at)
         values (@handler, @origin, @seq, @docId, @lsn, @state, @attempts, @at, @at, @next, @error, @stack, @settled)`,
    ),
    // An owed entry: one already there for the event (however it came) stands; the storing batch must not fail on it.
    owe: db.prepare(
      `insert into inbox (handler, origin, seq, doc_id, lsn, state, attempts, first_failed_at, last_failed_at, next_attempt_at, last_error, error_stack, settled_at)
         values (@handler, @origin, @seq, @docId, @lsn, @state, @attempts, @at, @at, @next, @error, @stack, @settled)
         on conflict (handler, origin, seq) do nothing`,
    ),
    blocked: db.prepare("select 1 from inbox where handler = ? and doc_id = ? and state <> 'skipped' limit 1").pluck(),
    get: db.prepare(`select ${ROW} from inbox where id = ?`),
    due: db.prepare(
      `select ${ROW} from inbox where handler = ? and state = 'pending' and next_attempt_at <= ? order by next_attempt_at, lsn limit ?`,
    ),
    nextDue: db.prepare("select min(next_attempt_at) from inbox where handler = ? and state = 'pending'").pluck(),
    failed: db.prepare(
      'update inbox set state = @state, attempts = @attempts, first_failed_at = coalesce(first_failed_at, @at), last_failed_at = @at, next_attempt_at = @next, last_error = @error, error_stack = @stack, settled_at = @settled where id = @id',
    ),
    delete: db.prepare('delete from inbox where id = ?'),
    // The head of a document's queue is an owed (pending or dead) entry; without one, the earliest waiting entry moves up.
    head: db
      .prepare("select 1 from inbox where handler = ? and doc_id = ? and state in ('pending', 'dead') limit 1")
      .pluck(),
    promote: db.prepare(
      "update inbox set state = 'pending', next_attempt_at = ? where id = (select id from inbox where handler = ? and doc_id = ? and state = 'waiting' order by lsn limit 1)",
    ),
    unwait: db.prepare(
      "update inbox set state = 'pending', next_attempt_at = ? where handler = ? and state = 'waiting'",
    ),
    // Registered with per-document order after being owed events under 'none': an entry behind an earlier owed one of its document waits.
    rewait: db.prepare(
      `update inbox set state = 'waiting', next_attempt_at = null
         where handler = ? and state = 'pending'
           and exists (select 1 from inbox h where h.handler = inbox.handler and h.doc_id = inbox.doc_id and h.state in ('pending', 'dead') and h.lsn < inbox.lsn)`,
    ),
    requeue: db.prepare(
      "update inbox set state = 'pending', next_attempt_at = ?, settled_at = null where state = 'dead'",
    ),
    requeueHandler: db.prepare(
      "update inbox set state = 'pending', next_attempt_at = ?, settled_at = null where state = 'dead' and handler = ?",
    ),
    skip: db.prepare(
      "update inbox set state = 'skipped', next_attempt_at = null, settled_at = ?, note = ? where id = ?",
    ),
    counts: db.prepare('select handler, state, count(*) as n from inbox group by handler, state'),
    held: db.prepare("select origin, min(seq) as seq from inbox where state <> 'skipped' group by origin"),
    known: db.prepare('select name, doc_order as "order" from inbox_handlers order by name'),
    remember: db.prepare(
      'insert into inbox_handlers (name, doc_order, registered_at) values (?, ?, ?) on conflict (name) do update set doc_order = excluded.doc_order',
    ),
    forgetName: db.prepare('delete from inbox_handlers where name = ?'),
    forgetRows: db.prepare('delete from inbox where handler = ?'),
    // Runs of other origins holding positions from ? on (expanded into events by the registry); the position is bound twice.
    remoteSince: db
      .prepare(
        `select r.lsn, r.n, r.seq, o.origin, r.body from runs r join origin_ids o on o.id = r.origin_id
           where r.lsn >= coalesce((select max(lsn) from runs where lsn <= ?), 0) and r.lsn + r.n > ? and o.origin <> ? order by r.lsn`,
      )
      .raw(),
    // What a window from lsn ? may still owe a new handler, per origin: compaction keeps it (see remoteSince).
    remoteHeldSince: db.prepare(
      `select o.origin, min(r.seq + max(0, ? - r.lsn)) as seq from runs r join origin_ids o on o.id = r.origin_id
         where r.lsn >= coalesce((select max(lsn) from runs where lsn <= ?), 0) and r.lsn + r.n > ? and o.origin <> ? group by o.origin`,
    ),
    windowGet: db.prepare(`select value from meta where key = '${MetaKey.INBOX_WINDOW_LSN}'`).pluck(),
    windowSet: db.prepare(`insert or replace into meta (key, value) values ('${MetaKey.INBOX_WINDOW_LSN}', ?)`),
    windowClear: db.prepare(`delete from meta where key = '${MetaKey.INBOX_WINDOW_LSN}'`),
  }
}

/** A row as callers see it; `registered`: whether its handler is registered in this process. */
export function toEntry(r: InboxRow, registered: boolean): InboxEntry {
  return {
    id: r.id,
    handler: r.handler,
    origin: r.origin,
    seq: r.seq,
    docId: r.doc_id,
    state: r.state,
    attempts: r.attempts,
    firstFailedAt: r.first_failed_at,
    lastFailedAt: r.last_failed_at,
    nextAttemptAt: r.next_attempt_at,
    lastError: r.last_error,
    errorStack: r.error_stack,
    settledAt: r.settled_at,
    note: r.note,
    registered,
  }
}

/** See {@link Inbox.list}. */
export function listEntries(
  db: Database.Database,
  options: { state?: InboxFilter; handler?: string; limit?: number; afterId?: number },
  isRegistered: (handler: string) => boolean,
): InboxEntry[] {
  const state = options.state ?? 'open'
  const limit = options.limit ?? 100
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_INBOX_LIST)
    throw new DruError('INVALID_ARGUMENT', `limit must be an integer in 1..${MAX_INBOX_LIST} (got ${limit})`)
  const states =
    state === 'open'
      ? ['pending', 'waiting', 'dead']
      : state === 'all'
        ? ['pending', 'waiting', 'dead', 'skipped']
        : [state]
  if (!states.every((s) => ['pending', 'waiting', 'dead', 'skipped'].includes(s))) {
    throw new DruError(
      'INVALID_ARGUMENT',
      `state must be open, pending, waiting, dead, skipped or all (got ${JSON.stringify(state)})`,
    )
  }
  const where = [`state in (${states.map(() => '?').join(', ')})`, 'id > ?']
  const args: unknown[] = [...states, options.afterId ?? 0]
  if (options.handler !== undefined) {
    where.push('handler = ?')
    args.push(options.handler)
  }
  const rows = db
    .prepare(`select ${ROW} from inbox where ${where.join(' and ')} order by id limit ?`)
    .all(...args, limit) as InboxRow[]
  return rows.map((r) => toEntry(r, isRegistered(r.handler)))
}

/** See {@link Inbox.counts}; `registered`: the handlers registered in this process (listed even with no rows). */
export function countEntries(stmt: InboxStatements, registered: ReadonlyMap<string, unknown>): InboxCounts {
  const by = new Map<
    string,
    { handler: string; registered: boolean; pending: number; waiting: number; dead: number; skipped: number }
  >()
  const at = (h: string) => {
    let c = by.get(h)
    if (!c) by.set(h, (c = { handler: h, registered: registered.has(h), pending: 0, waiting: 0, dead: 0, skipped: 0 }))
    return c
  }
  for (const name of registered.keys()) at(name)
  for (const r of stmt.counts.all() as Array<{ handler: string; state: InboxState; n: number }>)
    at(r.handler)[r.state] = r.n
  const handlers = [...by.values()].sort((a, b) => (a.handler < b.handler ? -1 : 1))
  const sum = (k: InboxState) => handlers.reduce((n, h) => n + h[k], 0)
  return { pending: sum('pending'), waiting: sum('waiting'), dead: sum('dead'), skipped: sum('skipped'), handlers }
}

/** See {@link Inbox.owedFrom}. */
export function owedFrom(stmt: InboxStatements): Record<string, number> {
  const out: Record<string, number> = {}
  for (const r of stmt.held.all() as Array<{ origin: string; seq: number }>) out[r.origin] = r.seq
  return out
}
