import { DruError } from '@dru/core'
import type { InboxEntry } from '@dru/store-sqlite'
import type { InboxEntryJson, InboxSummaryJson } from './admin-api.js'
import type { AdminSource } from './admin-routes.js'
import type { Dru } from './dru.js'

/** An entry as the admin API shows it; the stack only for a single entry (lists stay small). */
function entryJson(e: InboxEntry, withStack: boolean): InboxEntryJson {
  const { errorStack, ...rest } = e
  return withStack ? { ...rest, errorStack } : rest
}

/** Entry ids in URLs are positive integers; anything else names no entry. */
function entryId(id: string): number {
  const n = Number(id)
  if (!/^\d+$/.test(id) || !Number.isSafeInteger(n) || n < 1)
    throw new DruError('NOT_FOUND', `no inbox entry ${JSON.stringify(id)}`)
  return n
}

/** `inbox` for `/status`: undefined while no handler is registered and nothing is owed. */
export function inboxSummary(dru: Dru): InboxSummaryJson | undefined {
  const c = dru.inbox.counts()
  if (c.handlers.length === 0) return undefined
  return {
    pending: c.pending,
    waiting: c.waiting,
    dead: c.dead,
    handlers: c.handlers.map(({ handler, registered, pending, waiting, dead }) => ({
      handler,
      registered,
      pending,
      waiting,
      dead,
    })),
  }
}

/** The admin API's inbox operations on a DRU (`GET /inbox`, `POST /inbox/:id/retry|skip`, `POST /inbox/retry-dead`, `POST /inbox/forget`). */
export function inboxAdmin(dru: Dru): NonNullable<AdminSource['inbox']> {
  return {
    list({ state, handler, limit, after }) {
      const entries = dru.inbox.list({
        state,
        limit,
        ...(handler !== undefined ? { handler } : {}),
        ...(after !== undefined ? { afterId: after } : {}),
      })
      const c = dru.inbox.counts()
      return {
        counts: { pending: c.pending, waiting: c.waiting, dead: c.dead, skipped: c.skipped, handlers: c.handlers },
        entries: entries.map((e) => entryJson(e, false)),
        ...(entries.length === limit ? { next: entries[entries.length - 1]!.id } : {}),
      }
    },
    get(id) {
      const e = dru.inbox.get(entryId(id))
      return e ? entryJson(e, true) : undefined
    },
    retry(id) {
      const r = dru.inbox.retry(entryId(id))
      return {
        id: r.id,
        outcome: r.outcome,
        ...(r.error !== undefined ? { error: r.error } : {}),
        ...(r.entry ? { entry: entryJson(r.entry, false) } : {}),
      }
    },
    retryDead(handler) {
      return { requeued: dru.inbox.retryDead(handler), ...(handler !== undefined ? { handler } : {}) }
    },
    skip(id, reason) {
      return entryJson(dru.inbox.skip(entryId(id), reason), false)
    },
    forget(handler) {
      return { handler, dropped: dru.inbox.forget(handler) }
    },
  }
}
