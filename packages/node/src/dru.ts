import { DruError, LifecycleSignal, createLifecycle, type DruEvent, type Fingerprint, type Lifecycle, type LifecycleState } from '@dru/core'
import { DocumentStore, type ChangeFn, type Conflict, type DocumentDigest } from '@dru/documents'
import { storageError, type EventStore, type HandlerTx, type InboxOrder } from '@dru/store-sqlite'
import type { DruConfig } from './config.js'
import type { GapsJson, ProgressFn, VerifyJson } from './admin-api.js'
import { compactionFloor, runCompaction, type CompactReport, type CompactionFloor, type MemberAck } from './compaction.js'
import { createDruInbox, type DruInbox } from './inbox-api.js'

/** Cluster membership as the network layer knows it (absent for a standalone DRU). */
export interface Membership {
  /** Current members (decommissioned ones excluded) with what each durably acknowledged. */
  members(): MemberAck[]
  /** Removes a member for good; see {@link Dru.decommission}. */
  decommission(id: string, options: { force: boolean }): { id: string; removed: boolean }
}

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
  change(docId: string, fn: ChangeFn): DruEvent | undefined
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

/** Waits until `k` peers acknowledged an event; installed by the sync layer. */
export type AckWaiter = (event: DruEvent, k: number, timeoutMs: number | undefined) => Promise<void>

/** What openDru plugs in behind {@link Dru.gaps} and {@link Dru.verify}. */
export interface DruOperations {
  gaps(): GapsJson
  verify(options: { deep: boolean }, progress: ProgressFn): Promise<VerifyJson>
}

/** The conflicts API of a DRU. */
export interface DruConflicts {
  /** Open conflicts (or all / resolved), oldest first. */
  list(status?: 'open' | 'resolved' | 'all'): Conflict[]
  get(id: number): Conflict | undefined
  /** Writes `value` at the conflict's path as a new change, which replicates like any other. */
  resolve(id: number, value: unknown): Promise<ChangeResult>
}

/**
 * A disaster-recovery unit embedded in a service: the event log, the materialised
 * documents and (once wired) the sync layer. Open it with {@link openDru}.
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
  #ackWaiter: AckWaiter | undefined
  #writeGuard: (() => void) | undefined
  #operations: DruOperations | undefined
  #membership: Membership | undefined
  #compacting = false
  #lifecycle: Lifecycle
  #closed = false
  readonly #closeHooks: Array<() => void | Promise<void>> = []

  /** @internal use {@link openDru} */
  constructor(config: DruConfig, store: EventStore, documents: DocumentStore) {
    this.id = config.id
    this.store = store
    this.documents = documents
    // A DRU without a network is standalone: nobody to catch up with, active at once.
    this.#lifecycle = createLifecycle()
    this.#lifecycle.signal(LifecycleSignal.NO_PEERS)
    this.inbox = createDruInbox(store.inbox, (fn) => this.#guard(fn))
    this.conflicts = {
      list: (status = 'open') => this.#guard(() => documents.listConflicts(status)),
      get: (id) => this.#guard(() => documents.getConflict(id)),
      resolve: async (id, value) =>
        this.#guard(() => {
          this.#writeGuard?.()
          return { event: documents.resolveConflict(id, value) }
        }),
    }
  }

  /** Changes a document (creating it if needed) in its own transaction. */
  async change(docId: string, fn: ChangeFn, opts: ChangeOptions = {}): Promise<ChangeResult> {
    const acks = opts.acks ?? 0
    const event = this.#guard(() => {
      if (!Number.isInteger(acks) || acks < 0) throw new DruError('INVALID_ARGUMENT', `acks must be a non-negative integer (got ${acks})`)
      if (acks > 0 && !this.#ackWaiter) throw new DruError('INVALID_ARGUMENT', `acks: ${acks} needs the sync layer, which is not running`)
      const members = this.#membership?.members().length
      if (acks > 0 && members !== undefined && acks > members) {
        throw new DruError('INVALID_ARGUMENT', `acks: ${acks} can never be met: ${this.id} has ${members} other member${members === 1 ? '' : 's'}`, { details: { acks, members } })
      }
      this.#writeGuard?.()
      return this.documents.change(docId, fn)
    })
    if (event && acks > 0) await this.#ackWaiter!(event, acks, opts.timeoutMs)
    return { event }
  }

  /** The document as plain JSON, or undefined if it does not exist. */
  get(docId: string): unknown {
    return this.#guard(() => this.documents.get(docId))
  }

  /** Application statements and document changes in one SQLite transaction (synchronous callback). */
  transact<T>(fn: (tx: DruTx) => T): T {
    return this.#guard(() => {
      if (fn.constructor?.name === 'AsyncFunction') {
        throw new DruError('ASYNC_CHANGE', 'transact(fn): fn must be synchronous; a transaction cannot stay open across an await, so nothing was committed')
      }
      this.#writeGuard?.()
      // A promise returned by fn is refused inside the transaction (ASYNC_CHANGE, rolled back).
      return this.documents.transact((tx) => fn(tx)).result
    })
  }

  /**
   * Registers a handler run exactly once per remote event (see {@link EventHandler}); returns
   * an unsubscribe function. `name` (1-64 letters, digits, `.`, `_`, `-`) must be unique and
   * stable across restarts: the events it still owes are kept under it, and operators see it
   * (`dru inbox list`). A throw never stops replication: the event is stored and merged
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
  gaps(): GapsJson {
    return this.#guard(() => this.#operations?.gaps() ?? { peers: [] })
  }

  /**
   * Re-hashes the whole log, then compares fingerprints (and with `deep`, materialised
   * state digests) with every reachable peer. `ok` is false when any reachable peer differs.
   */
  async verify(options: { deep?: boolean } = {}): Promise<VerifyJson> {
    this.#assertOpen()
    if (!this.#operations) throw new DruError('NOT_SUPPORTED', 'verify() needs a DRU opened by openDru()')
    try {
      return await this.#operations.verify({ deep: options.deep === true }, () => undefined)
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
      if (!this.#membership) throw new DruError('NOT_SUPPORTED', `${this.id} runs without peers: there is no membership to change`)
      const r = this.#membership.decommission(id, { force: options.force === true })
      const f = this.compactionFloor()
      return { ...r, floor: f.floor, waitingFor: f.waitingFor }
    })
  }

  /** For the network layer: who the members are and how to remove one. */
  useMembership(membership: Membership): void {
    this.#membership = membership
  }

  /** For openDru: the implementations behind gaps() and verify(). */
  useOperations(operations: DruOperations): void {
    this.#operations = operations
  }

  /** For the network layer: the lifecycle it drives replaces the standalone one. */
  useLifecycle(lifecycle: Lifecycle): void {
    this.#lifecycle = lifecycle
  }

  /** For the network layer: throws (e.g. NOT_WRITABLE while restoring) before any local write. */
  setWriteGuard(guard: (() => void) | undefined): void {
    this.#writeGuard = guard
  }

  /** For the sync layer: makes `change(..., { acks })` wait through `waiter`. */
  setAckWaiter(waiter: AckWaiter | undefined): void {
    this.#ackWaiter = waiter
  }

  /** For the sync/admin layers: runs before the store closes, in reverse order of registration. */
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
