import type Database from 'better-sqlite3'
import { DruError, type DruEvent } from '@dru/core'
import type { InboxStatements } from './inbox-table.js'
import type { InboxHandler } from './inbox-types.js'

/**
 * One call of an inbox handler behind a savepoint: its effects are kept when it returns and
 * undone when it throws (or returns a promise: handlers are synchronous), and a throw becomes
 * a bounded error text and stack to record. A failure that took SQLite's whole transaction
 * with it (a full disk) is rethrown: that is the batch's failure, not the handler's.
 *
 * @module
 */

const MAX_ERROR_CHARS = 1_000
const MAX_STACK_CHARS = 4_000

export type CallResult = { ok: true } | { ok: false; error: string; stack: string | null }

/** Calls `handler` on `event` inside the open transaction, behind the inbox's savepoint. */
export function callHandler(
  stmt: InboxStatements,
  db: Database.Database,
  name: string,
  handler: InboxHandler,
  event: DruEvent,
  attempt: number,
): CallResult {
  stmt.savepoint.run()
  try {
    const returned = handler(event, { db, handler: name, attempt }) as unknown
    if (
      returned !== null &&
      typeof returned === 'object' &&
      typeof (returned as { then?: unknown }).then === 'function'
    ) {
      ;(returned as PromiseLike<unknown>).then(undefined, () => undefined)
      throw new DruError(
        'ASYNC_CHANGE',
        `handler ${name} returned a promise: handlers must be synchronous (its work after an await ran outside the transaction)`,
      )
    }
    stmt.release.run()
    return { ok: true }
  } catch (err) {
    // SQLite may have rolled the whole transaction back (a full disk): that is the batch's failure, not the handler's.
    if (!db.inTransaction) throw err
    stmt.rollbackTo.run()
    stmt.release.run()
    return failure(err)
  }
}

/** A thrown value as the inbox records it (code or name and message, bounded; the stack, bounded). */
export function failure(err: unknown): { ok: false; error: string; stack: string | null } {
  let error: string
  if (err instanceof DruError) error = `${err.code}: ${err.message}`
  else if (err instanceof Error) error = `${err.name}: ${err.message}`
  else error = `thrown: ${safeString(err)}`
  const stack = err instanceof Error && typeof err.stack === 'string' ? err.stack.slice(0, MAX_STACK_CHARS) : null
  return { ok: false, error: error.slice(0, MAX_ERROR_CHARS), stack }
}

function safeString(v: unknown): string {
  try {
    return typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v))
  } catch {
    return String(v)
  }
}
