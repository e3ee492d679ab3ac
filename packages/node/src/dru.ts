import {
  DruError,
  LifecycleSignal,
  LifecycleState,
  createLifecycle,
  type DruEvent,
  type Fingerprint,
  type Lifecycle,
} from '@dru/core'
import type { ChangeFn, Conflict, ConflictCounts, DocumentDigest, DocumentStore } from '@dru/documents'
import { storageError, type EventStore, type HandlerTx, type InboxOrder } from '@dru/store-sqlite'
import { compactionFloor, runCompaction, type CompactReport, type CompactionFloor } from './compaction.js'
import { createDruInbox, type DruInbox } from './inbox-api.js'
import type { Membership } from './membership.js'
import type { DruOperations, GapReport, ProgressFn, RepairReport, VerifyReport } from './operations.js'

/** What {@link Dru.decommission} resolves to. */
export interface DecommissionReport {
  readonly id: string
  /** False when it was already decommissioned (nothing changed). */
  readonly removed: boolean
  /** The compaction floor once it no longer counts. */
  readonly floor: Readonly<Record<string, number>>
  readonly waitingFor: readonly string[]
}

/** Options of {@link Dru.change}. */
export interface ChangeOptions {
  /** Resolve only once this many peers durably hold the change (needs the sync layer). */
  acks?: number
  /** Milliseconds to wait for the acks. */
  timeoutMs?: number
}

/**
 * Options of {@link Dru.ready}. `state`: `active` (default: caught up and verified with the
 * peers, or standalone), another lifecycle state, or `writable` (writes are accepted: not
 * restoring, whatever the state). `timeoutMs`: give up with TIMEOUT (default: wait until
 * the state is reached or the DRU closes).
 */
export interface ReadyOptions {
  readonly state?: LifecycleState | 'writable'
  readonly timeoutMs?: number
}

/** What {@link Dru.change} resolves to. */
export interface ChangeResult {
  /** The event that carries the change, or undefined when the function changed nothing. */
  readonly event: DruEvent | undefined
}

/** The handle {@link Dru.transact} hands the callback. */
export interface DruTx {
  /** SQLite connection inside the transaction: the application's own statements. */
  readonly db: EventStore['db']
  /** Changes a document in this transaction. */
  change<T = any>(docId: string, fn: (doc: T) => void): DruEvent | undefined
}

/**
 * Runs exactly once per remote event: first inside the transaction that stores it, and if
 * it throws, in retries of its own transaction until it succeeds (or an operator skips the
 * event). Effects go through `tx.db`, synchronously: they commit with the call that returns.
 */
export type EventHandler = (event: DruEvent, tx: HandlerTx) => void

/** Options of {@link Dru.onEvent}. */
export interface EventHandlerOptions {
  /**
   * `none` (default): each event is retried on its own. `document`: the handler sees each
   * document's events in the order this DRU stored them; while one is owed (retrying or a
   * dead letter), later events of that document wait behind it and other documents flow.
   */
  readonly order?: InboxOrder
}

/** Called after a commit that touched a subscribed document. */
export type SubscribeCallback = (docId: string, source: 'local' | 'remote') => void

/** Waits until `k` peers acknowledged an event (the sync layer's, given by openDru). */
export type AckWaiter = (event: DruEvent, k: number, timeoutMs: number | undefined) => Promise<void>

/** The conflicts API of a DRU. */
export interface DruConflicts {
  /** Open conflicts (or all / resolved), oldest first. */
  list(status?: 'open' | 'resolved' | 'all'): Conflict[]
  get(id: number): Conflict | undefined
  /** How many are open, and how many were resolved by whom (the policy's resolutions are journaled as `policy`). */
  counts(): ConflictCounts
  /** Writes `value` at the conflict's path as a new change, which replicates like any other. */
  resolve(id: number, value: unknown): Promise<ChangeResult>
}

/**
 * Everything a {@link Dru} is made of, assembled by {@link openDru}. Without a network the
 * optional parts are absent: no membership, no acks, no write guard.
 */
export interface DruParts {
  readonly id: string
  readonly store: EventStore
  readonly documents: DocumentStore
  /** The lifecycle {@link Dru.state} reads: driven by the network, or standalone (active at once). */
  readonly lifecycle: Lifecycle
  /** Behind {@link Dru.gaps} and {@link Dru.verify}. */
  readonly operations: DruOperations
  /** Who the members are and how to remove one (networked DRUs). */
  readonly membership?: Membership
  /** Throws (e.g. NOT_WRITABLE while restoring) before any local write. */
  readonly writeGuard?: () => void
  /** Makes `change(..., { acks })` wait (needs the sync layer). */
  readonly ackWaiter?: AckWaiter
  /** Run before the store closes, in reverse order (like {@link Dru.onClose}). */
  readonly closeHooks?: ReadonlyArray<() => void | Promise<void>>
}

/** The lifecycle of a DRU without a network: nobody to catch up with, active at once. */
export function standaloneLifecycle(): Lifecycle {
  const lifecycle = createLifecycle()
  lifecycle.signal(LifecycleSignal.NO_PEERS)
  return lifecycle
}

/**
 * A disaster-recovery unit embedded in a service: the event log, the materialised
 * documents and, when networked, the sync layer. Open it with {@link openDru}.
 */
export class Dru {
  readonly id: string
  /** The event log (for the sync layer and admin tools). */
  readonly store: EventStore
  /** The materialised documents. */
  readonly documents: DocumentStore
  readonly conflicts: DruConflicts
  /** Events a handler still owes: retries, events waiting behind them, dead letters; retry and skip. */
  readonly inbox: DruInbox
  readonly #ackWaiter: AckWaiter | undefined
  readonly #writeGuard: (() => void) | undefined
  readonly #operations: DruOperations
  readonly #membership: Membership | undefined
  readonly #lifecycle: Lifecycle
  readonly #closeHooks: Array<() => void | Promise<void>>
  #compacting = false
  #closed = false

  /** @internal use {@link openDru} */
  constructor(parts: DruParts) {
    const { store, documents } = parts
    this.id = parts.id
    this.store = store
    this.documents = documents
    this.#lifecycle = parts.lifecycle
    this.#operations = parts.operations
    this.#membership = parts.membership
    this.#writeGuard = parts.writeGuard
    this.#ackWaiter = parts.ackWaiter
    this.#closeHooks = [...(parts.closeHooks ?? [])]
    this.inbox = createDruInbox(store.inbox, (fn) => this.#guard(fn))
    this.conflicts = {
      list: (status = 'open') => this.#guard(() => documents.listConflicts(status)),
      get: (id) => this.#guard(() => documents.getConflict(id)),
      counts: () => this.#guard(() => documents.conflictCounts()),
      resolve: async (id, value) =>
        this.#guard(() => {
          this.#writeGuard?.()
          return { event: documents.resolveConflict(id, value) }
        }),
    }
  }

  /**
   * Changes a document (creating it if needed) in its own transaction. `T` types the
   * document for the callback (`change<Order>('order-1', (o) => { o.total = 7 })`); it is
   * not checked at run time: a document written by another version of your code may differ.
   */
  async change<T = any>(docId: string, fn: (doc: T) => void, opts: ChangeOptions = {}): Promise<ChangeResult> {
    const acks = opts.acks ?? 0
    const event = this.#guard(() => {
      if (!Number.isInteger(acks) || acks < 0)
        throw new DruError('INVALID_ARGUMENT', `acks must be a non-negative integer (got ${acks})`)
      if (acks > 0 && !this.#ackWaiter)
        throw new DruError('INVALID_ARGUMENT', `acks: ${acks} needs the sync layer, which is not running`)
      const members = this.#membership?.members().length
      if (acks > 0 && members !== undefined && acks > members) {
        throw new DruError(
          'INVALID_ARGUMENT',
          `acks: ${acks} can never be met: ${this.id} has ${members} other member${members === 1 ? '' : 's'}`,
          { details: { acks, members } },
        )
      }
      this.#writeGuard?.()
      return this.documents.change(docId, fn as ChangeFn)
    })
    if (event && acks > 0) await this.#ackWaiter!(event, acks, opts.timeoutMs)
    return { event }
  }

  /**
   * The document as plain JSON, or undefined if it does not exist. `T` is what you expect
   * it to hold (`get<Order>('order-1')`), not a run-time check: validate data written by
   * other versions of your service yourself.
   */
  get<T = unknown>(docId: string): T | undefined {
    return this.#guard(() => this.documents.get(docId)) as T | undefined
  }

  /**
   * Resolves once the DRU reaches `state` (default `active`; `writable`: writes accepted),
   * with the state it is in. A networked DRU opens in `starting` and catches up before it
   * is active; a restored one refuses writes until its own earlier events are back. Rejects
   * with TIMEOUT after `timeoutMs`, and with CLOSED if the DRU closes first.
   */
  ready(options: ReadyOptions = {}): Promise<LifecycleState> {
    const want = options.state ?? 'active'
    const reached = (): boolean => {
      if (want !== 'writable') return this.#lifecycle.state() === want
      try {
        this.#writeGuard?.()
        return true
      } catch {
        return false
      }
    }
    return new Promise((resolve, reject) => {
      const started = Date.now()
      const check = (): void => {
        if (this.#closed) return reject(new DruError('CLOSED', `DRU ${this.id} closed before it was ${want}`))
        if (reached()) return resolve(this.#lifecycle.state())
        if (options.timeoutMs !== undefined && Date.now() - started >= options.timeoutMs) {
          return reject(
            new DruError(
              'TIMEOUT',
              `DRU ${this.id} was not ${want} within ${options.timeoutMs} ms (state ${this.#lifecycle.state()})`,
              { details: { state: this.#lifecycle.state(), want } },
            ),
          )
        }
        // The lifecycle is driven by a 100 ms tick; a 25 ms poll adds little and needs no hook into it.
        setTimeout(check, 25).unref()
      }
      if (options.timeoutMs !== undefined && !(typeof options.timeoutMs === 'number' && options.timeoutMs >= 0)) {
        return reject(
          new DruError('INVALID_ARGUMENT', `timeoutMs must be a non-negative number (got ${options.timeoutMs})`),
        )
      }
      if (want !== 'writable' && !(Object.values(LifecycleState) as string[]).includes(want)) {
        return reject(
          new DruError(
            'INVALID_ARGUMENT',
            `state must be a lifecycle state or 'writable' (got ${JSON.stringify(want)})`,
          ),
        )
      }
      check()
    })
  }

  /** Application statements and document changes in one SQLite transaction (synchronous callback). */
  transact<T>(fn: (tx: DruTx) => T): T {
    return this.#guard(() => {
      if (fn.constructor?.name === 'AsyncFunction') {
        throw new DruError(
          'ASYNC_CHANGE',
          'transact(fn): fn must be synchronous; a transaction cannot stay open across an await, so nothing was committed',
        )
      }
      this.#writeGuard?.()
      // A promise returned by fn is refused inside the transaction (ASYNC_CHANGE, rolled back).
      return this.documents.transact((tx) => fn(tx)).result
    })
  }

  /**
   * Registers a handler run exactly once per remote event (see {@link EventHandler}); returns
   * an unsubscribe function. `name` (1-64 letters, digits, `.`, `_`, `-`) must be unique and
   * stable across restarts: the events it still owes are kept under it — those stored while it
   * was not registered too (after a restart, before this call; on a first start, since `openDru`
   * began, when this call comes in the tick `openDru` returns in) — and operators see it. Call
   * it outside any transaction (not inside `transact()` or another handler: INVALID_ARGUMENT);
   * an unsubscribe from inside a handler takes effect from the next event
   * (`dru inbox list`; `dru inbox forget` for a handler removed for good). A throw never stops replication: the event is stored and merged
   * anyway, the handler's own effects are rolled back, and it is retried, then dead-lettered.
   */
  onEvent(name: string, handler: EventHandler, options: EventHandlerOptions = {}): () => void {
    return this.#guard(() => this.store.onIngest(name, handler, options))
  }

  /** Calls `cb` after each commit touching `docId` (or any document for `'*'`). */
  subscribe(docId: string, cb: SubscribeCallback): () => void {
    this.#assertOpen()
    return this.documents.onUpdate((ids, source) => {
      for (const id of ids) if (docId === '*' || id === docId) cb(id, source)
    })
  }

  /** Version vector plus chain heads: equal fingerprints mean identical logs. */
  fingerprint(): Fingerprint {
    return this.#guard(() => this.store.fingerprint())
  }

  /** Digest of every document's materialised state (streamed, memory bounded); isolated documents count as such. */
  digest(): { digest: string; documents: number; isolated: number } {
    return this.#guard(() => this.documents.clusterDigest())
  }

  /** Documents whose history could not be materialised: reading them fails with DOCUMENT_ISOLATED. */
  isolatedDocuments(): { count: number; docs: Array<{ docId: string; reason: string; at: number }> } {
    return this.#guard(() => this.documents.isolated())
  }

  /** One document's heads, canonical JSON and digest. */
  docDigest(docId: string): DocumentDigest | undefined {
    return this.#guard(() => this.documents.digest(docId))
  }

  /** Lifecycle state: `starting`, `catching-up`, `verifying`, `active` or `isolated`. */
  state(): LifecycleState {
    return this.#lifecycle.state()
  }

  /** Wall-clock ms when the current state was entered. */
  stateSince(): number {
    return this.#lifecycle.since()
  }

  /**
   * Per peer and origin, how many events each side lacks (what `dru gaps` prints).
   * Empty for a standalone DRU.
   */
  gaps(): GapReport {
    return this.#guard(() => this.#operations.gaps())
  }

  /**
   * Re-hashes the whole log, then compares fingerprints (and with `deep`, materialised
   * state digests) with every reachable peer. `ok` is false when any reachable peer differs.
   * Progress (re-hashing the log) goes to `onProgress`.
   */
  async verify(options: { deep?: boolean; onProgress?: ProgressFn } = {}): Promise<VerifyReport> {
    this.#assertOpen()
    try {
      return await this.#operations.verify({ deep: options.deep === true }, options.onProgress ?? (() => undefined))
    } catch (err) {
      throw storageError(err)
    }
  }

  /**
   * Rebuilds documents from what the log proves (their events, and the changes compaction
   * folded whose envelopes the log keeps), discarding their snapshots and cached state, then
   * verifies deep against every reachable peer. Refuses to touch anything when a peer's log
   * differs (`logsDiffer`: catch up first). INVALID_ARGUMENT for a malformed id or list,
   * NOT_FOUND for a document neither the log nor a snapshot knows: nothing changes then.
   */
  async repair(docIds: readonly string[], options: { onProgress?: ProgressFn } = {}): Promise<RepairReport> {
    this.#assertOpen()
    try {
      return await this.#operations.repair(docIds, options.onProgress ?? (() => undefined))
    } catch (err) {
      throw storageError(err)
    }
  }

  /**
   * The causal-stability floor: per origin, what this DRU and every current member
   * durably hold. Events at or below it may be compacted.
   */
  compactionFloor(): CompactionFloor {
    return this.#guard(() => compactionFloor(this.store.vv(), this.#membership?.members() ?? []))
  }

  /**
   * Folds every event at or below the compaction floor into document snapshots and
   * deletes it from the log. Documents read the same afterwards; a peer that later
   * turns up below the floor (new, or back from a lost disk) is bootstrapped from the
   * snapshots. Application inbox handlers do not run again for folded events. One
   * compaction at a time (INVALID_ARGUMENT otherwise); progress goes to `onProgress`.
   */
  async compact(options: { onProgress?: ProgressFn } = {}): Promise<CompactReport> {
    this.#assertOpen()
    if (this.#compacting) throw new DruError('INVALID_ARGUMENT', `a compaction of ${this.id} is already running`)
    this.#compacting = true
    try {
      return await runCompaction(this.documents, this.compactionFloor(), options.onProgress ?? (() => undefined))
    } catch (err) {
      throw storageError(err)
    } finally {
      this.#compacting = false
    }
  }

  /**
   * Removes a DRU lost for good from this DRU's membership, so the compaction floor no
   * longer waits for it. It is never dialed again and its sessions are refused
   * (DECOMMISSIONED); its events already replicated stay. Run it on every surviving DRU.
   * A connected peer is refused unless `force` (it is evidently not lost).
   */
  decommission(id: string, options: { force?: boolean } = {}): DecommissionReport {
    return this.#guard(() => {
      if (!this.#membership)
        throw new DruError('NOT_SUPPORTED', `${this.id} runs without peers: there is no membership to change`)
      const r = this.#membership.decommission(id, { force: options.force === true })
      const f = this.compactionFloor()
      return { ...r, floor: f.floor, waitingFor: f.waitingFor }
    })
  }

  /** Runs `hook` before the store closes (after every hook added later): e.g. an admin server built on this DRU. */
  onClose(hook: () => void | Promise<void>): void {
    this.#closeHooks.push(hook)
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Stops hooks, writes due snapshots and closes the database. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    try {
      for (const hook of [...this.#closeHooks].reverse()) await hook()
    } finally {
      // Snapshots that cannot be written (a full disk) are reported, not thrown: the log holds everything.
      this.documents.close({ flush: true })
      this.store.close()
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new DruError('CLOSED', `DRU ${this.id} is closed`)
  }

  /** Every data method: refused after close(), and SQLite's failures typed (STORAGE_FULL, DB_LOCKED, CORRUPTION). */
  #guard<T>(fn: () => T): T {
    this.#assertOpen()
    try {
      return fn()
    } catch (err) {
      throw storageError(err)
    }
  }
}
