import { DruError } from '@dru/core'
import type { InboxStatements } from './inbox-table.js'
import { docsOfRunOrNone } from './run-body.js'
import { DictionaryNames } from './stored-form.js'
import type { InboxHandler, InboxHandlerOptions, InboxHost, InboxOrder } from './inbox-types.js'

/**
 * Who a new remote event is for: the handlers registered in this process, the ones registered
 * on this DRU before and not now (owed what is stored meanwhile), and, while `openDru` runs, the
 * registration window (a handler new to the DRU registered in it is owed what was stored since
 * it opened). Names are recorded (`inbox_handlers`) as they register, until an operator forgets
 * them. The inbox (inbox.ts) delivers and retries; this file only decides for whom.
 *
 * @module
 */

/** A handler's name: the key of its inbox rows across restarts, and what operators type. */
const HANDLER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/** A handler registered in this process. */
export interface Registered {
  readonly handler: InboxHandler
  readonly order: InboxOrder
}

/** A handler owed events without being registered here. */
export interface Absent {
  readonly name: string
  readonly order: InboxOrder
}

/** What an owed row needs of its event. */
export interface Owed {
  readonly origin: string
  readonly seq: number
  readonly docId: string
  readonly lsn: number
}

/** Records an event as owed by a handler without calling it (the inbox's row). */
export type OweFn = (name: string, order: InboxOrder, e: Owed, at: number) => void

export class HandlerRegistry {
  readonly #host: InboxHost
  readonly #stmt: InboxStatements
  readonly #owe: OweFn
  readonly #handlers = new Map<string, Registered>()
  /** The registered handlers as a list, replaced (never mutated) on every change. */
  #registered: ReadonlyArray<readonly [string, Registered]> = []
  /** Handlers recorded and not registered now, replaced on every change. */
  #absent: readonly Absent[] = []
  /** While the application may still be registering its handlers: the first lsn stored meanwhile. */
  #window: { from: number | undefined } | undefined

  constructor(host: InboxHost, stmt: InboxStatements, owe: OweFn) {
    this.#host = host
    this.#stmt = stmt
    this.#owe = owe
    this.#refresh()
  }

  /**
   * Registers a named handler (see `Inbox.register`): recorded in its own transaction, so it
   * is refused inside an open one (a rollback would leave it registered and unrecorded).
   * Returns the unsubscribe function.
   */
  register(name: string, handler: InboxHandler, options: InboxHandlerOptions = {}): () => void {
    if (typeof name !== 'string' || !HANDLER_NAME.test(name)) {
      throw new DruError(
        'INVALID_ARGUMENT',
        `a handler needs a name of 1-64 letters, digits, '.', '_' or '-' (got ${JSON.stringify(name)}): it names the handler's pending events across restarts`,
      )
    }
    if (typeof handler !== 'function')
      throw new DruError('INVALID_ARGUMENT', `handler ${name} must be a function (event, tx) => void`)
    if (handler.constructor?.name === 'AsyncFunction') {
      throw new DruError(
        'ASYNC_CHANGE',
        `handler ${name} is async: it must be synchronous, its effects go through tx.db inside the applying transaction`,
      )
    }
    const order = options.order ?? 'none'
    if (order !== 'document' && order !== 'none')
      throw new DruError('INVALID_ARGUMENT', `order must be 'document' or 'none' (got ${JSON.stringify(order)})`)
    if (this.#handlers.has(name))
      throw new DruError('INVALID_ARGUMENT', `a handler named ${name} is already registered`)
    if (this.#host.db.inTransaction) {
      throw new DruError(
        'INVALID_ARGUMENT',
        `handler ${name}: register event handlers outside a transaction (not inside transact() or another handler)`,
      )
    }
    const entry: Registered = { handler, order }
    const known = this.#absent.some((k) => k.name === name)
    this.#host.transaction(() => {
      const now = this.#host.now()
      // New, inside the window: owed what the network stored before the application got here.
      const from = this.#window?.from
      if (!known && from !== undefined) {
        for (const e of this.#remoteSince(from)) this.#owe(name, order, e, now)
      }
      // Known from now on: what is stored while it is not registered (a restart) is owed to it.
      this.#stmt.remember.run(name, order, now)
      // Registered without per-document order now: nothing may wait behind another entry any more.
      if (order === 'none') this.#stmt.unwait.run(now, name)
      // With it now (known under 'none' before): an owed entry behind an earlier one of its document waits for it.
      else this.#stmt.rewait.run(name)
    })
    this.#handlers.set(name, entry)
    this.#refresh()
    return () => {
      if (this.#handlers.get(name) !== entry) return
      this.#handlers.delete(name)
      this.#refresh()
    }
  }

  /** Events of other origins stored at position `from` or later, in order (a damaged run owes nothing: its reads fail). */
  #remoteSince(from: number): Owed[] {
    const out: Owed[] = []
    const names = new DictionaryNames(this.#host.db, 'doc_ids', 'doc_id')
    for (const [lsn, n, seq, origin, body] of this.#stmt.remoteSince.all(from, from, this.#host.origin) as Array<
      [number, number, number, string, Buffer]
    >) {
      const docs = docsOfRunOrNone(body, n)
      for (let i = 0; i < docs.length; i++)
        if (lsn + i >= from) out.push({ origin, seq: seq + i, docId: names.textOf(docs[i]!) ?? '', lsn: lsn + i })
    }
    return out
  }

  /** See `Inbox.forget`. */
  forget(name: string): number {
    if (typeof name !== 'string' || !HANDLER_NAME.test(name))
      throw new DruError('INVALID_ARGUMENT', `not a handler name: ${JSON.stringify(name)}`)
    if (this.#handlers.has(name)) {
      throw new DruError(
        'INVALID_ARGUMENT',
        `handler ${name} is registered in this process: remove it from the application (and restart) before forgetting it`,
      )
    }
    const { known, dropped } = this.#host.transaction(() => ({
      known: this.#stmt.forgetName.run(name).changes > 0,
      dropped: this.#stmt.forgetRows.run(name).changes,
    }))
    if (!known && dropped === 0) throw new DruError('NOT_FOUND', `no handler named ${name} is known to this DRU`)
    this.#refresh()
    return dropped
  }

  /** See `Inbox.holdForRegistration`. */
  holdForRegistration(): () => void {
    // A window the process died in (never released) goes on: what it stored is owed too.
    const kept = this.#stmt.windowGet.get() as number | undefined
    const window: { from: number | undefined } = { from: kept ?? undefined }
    this.#window = window
    return () => {
      if (this.#window !== window) return
      this.#window = undefined
      // Best effort (it runs from a timer): a window left recorded only widens a later backfill.
      if (window.from === undefined || !this.#host.db.open || this.#host.db.readonly) return
      try {
        this.#host.transaction(() => this.#stmt.windowClear.run())
      } catch {
        // the store is closing: the next window goes on from it, and its release clears it
      }
    }
  }

  /**
   * Per origin, the lowest seq a handler registered in the window would be owed: compaction
   * keeps it and everything after, or the backfill would find those events deleted. Held
   * while a window is open here, and while one a killed process left is recorded (the next
   * window goes on from it, even when this process opened none, e.g. to compact offline).
   */
  windowHolds(): Record<string, number> {
    const recorded = this.#stmt.windowGet.get() as number | undefined
    const froms = [this.#window?.from, recorded].filter((lsn): lsn is number => lsn !== undefined)
    if (froms.length === 0) return {}
    const out: Record<string, number> = {}
    const rows = this.#stmt.remoteHeldSince.all(
      Math.min(...froms),
      Math.min(...froms),
      Math.min(...froms),
      this.#host.origin,
    )
    for (const r of rows as Array<{ origin: string; seq: number }>) out[r.origin] = r.seq
    return out
  }

  /** Called by delivery, inside the storing transaction: the window's first position, kept with the event. */
  stored(lsn: number): void {
    if (this.#window && this.#window.from === undefined) {
      this.#window.from = lsn
      // A process killed before the window is released leaves it to the next one.
      this.#stmt.windowSet.run(lsn)
    }
  }

  /** Whether a new remote event goes to any handler: one registered, one known and owed it, or one not registered yet. */
  hasRecipients(): boolean {
    return this.#handlers.size > 0 || this.#absent.length > 0 || this.#window !== undefined
  }

  /** The registered handlers as they are now (a list a later change replaces, never mutates). */
  get registered(): ReadonlyArray<readonly [string, Registered]> {
    return this.#registered
  }

  /** The recorded handlers not registered now (replaced on change, like {@link registered}). */
  get absent(): readonly Absent[] {
    return this.#absent
  }

  get(name: string): Registered | undefined {
    return this.#handlers.get(name)
  }

  has(name: string): boolean {
    return this.#handlers.has(name)
  }

  /** Names of the handlers registered in this process (unsorted). */
  names(): IterableIterator<string> {
    return this.#handlers.keys()
  }

  /** The registered handlers by name (for counts that list them even without rows). */
  get byName(): ReadonlyMap<string, Registered> {
    return this.#handlers
  }

  /** Every handler recorded on this DRU and not forgotten, with its order. */
  known(): Array<{ name: string; order: InboxOrder; registered: boolean }> {
    return (this.#stmt.known.all() as Absent[]).map((k) => ({ ...k, registered: this.#handlers.has(k.name) }))
  }

  #refresh(): void {
    this.#registered = [...this.#handlers]
    this.#absent = (this.#stmt.known.all() as Absent[]).filter((k) => !this.#handlers.has(k.name))
  }
}
