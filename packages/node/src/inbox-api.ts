import type { Inbox, InboxCounts, InboxEntry, InboxFilter, RetryOutcome, RunReport } from '@dru/store-sqlite'

/**
 * The inbox as a DRU's application and operators see it: the events a named handler still
 * owes (retrying, waiting behind an earlier event of their document, or dead letters), and
 * what an operator can do about them.
 */
export interface DruInbox {
  /** Entries by id, oldest first; `open` (default) is pending, waiting and dead. At most 1,000 per call (page with `afterId`). */
  list(options?: { state?: InboxFilter; handler?: string; limit?: number; afterId?: number }): InboxEntry[]
  get(id: number): InboxEntry | undefined
  /** Entries per handler and state (registered handlers always listed). */
  counts(): InboxCounts
  /**
   * Runs the entry's handler now, in its own transaction (e.g. after deploying a fix);
   * `done` means its effects committed and the entry is gone. NOT_FOUND for an unknown id;
   * INVALID_ARGUMENT for a skipped entry, one waiting behind an earlier event of its
   * document, or a handler not registered in this process.
   */
  retry(id: number): RetryOutcome
  /** Puts every dead letter (of `handler`, or all) back in line for one more try each; returns how many. */
  retryDead(handler?: string): number
  /** Gives the entry up: its handler never runs on that event. Kept as `skipped`, with the time and `reason`. */
  skip(id: number, reason?: string): InboxEntry
  /**
   * Forgets a handler removed from the application for good: its name and all its entries
   * (owed events then stop holding compaction back). A handler once registered is owed every
   * event stored while it is not registered (e.g. between a restart and `onEvent`) until then.
   * Returns how many entries went; INVALID_ARGUMENT while it is registered, NOT_FOUND if unknown.
   */
  forget(handler: string): number
  /**
   * Runs the retries that are due now (bounded by the policy's `batch`). The DRU's own timer
   * does this; call it yourself only with `inbox.autoRetry: false` (deterministic tests).
   */
  runDue(limit?: number): RunReport
}

/** Wraps the store's inbox so every call goes through the DRU's guard (CLOSED, typed SQLite errors). */
export function createDruInbox(inbox: Inbox, guard: <T>(fn: () => T) => T): DruInbox {
  return {
    list: (options) => guard(() => inbox.list(options)),
    get: (id) => guard(() => inbox.get(id)),
    counts: () => guard(() => inbox.counts()),
    retry: (id) => guard(() => inbox.retry(id)),
    retryDead: (handler) => guard(() => inbox.requeueDead(handler)),
    skip: (id, reason) => guard(() => inbox.skip(id, reason)),
    forget: (handler) => guard(() => inbox.forget(handler)),
    runDue: (limit) => guard(() => inbox.runDue(limit)),
  }
}
