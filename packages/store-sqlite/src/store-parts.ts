import type Database from 'better-sqlite3'
import {
  DruError,
  HlcClock,
  formatOrigin,
  type DruEvent,
  type DruId,
  type Hlc,
  type Origin,
  type VersionVector,
  type WallClock,
} from '@dru/core'
import { ChainHeads } from './chain-heads.js'
import { CommitListeners } from './commit-listeners.js'
import { DeferredSigner } from './deferred-signing.js'
import { DocIndex } from './doc-index.js'
import { EventInserter } from './event-inserter.js'
import { FoldedLog } from './folded-log.js'
import { StoredEvents } from './stored-events.js'
import { cleanCloseToken, openIdentity } from './identity.js'
import { Inbox } from './inbox.js'
import { inboxPolicy } from './inbox-policy.js'
import { LocalCommitter } from './local-commit.js'
import type { BaseView } from './log-base.js'
import { DerivedLogReads } from './log-reader.js'
import { MetaKey, MetaTable } from './meta.js'
import { PeerTable } from './peer-book.js'
import { RemoteIngest } from './remote-ingest.js'
import { RecentReads } from './recent-reads.js'
import { storageError } from './sqlite-errors.js'
import { prepareLogStatements, type LogStatements } from './statements.js'
import type { OpenStoreOptions } from './store-options.js'

/**
 * The parts of one open event store and their lifecycle: builds them over the database in the
 * order they depend on each other (statements, meta, heads, identity, positions, clock, inbox,
 * the two write paths), guards every write (open, not an inspection, not nested in another
 * write) and closes them (sign the own tip, mark a clean stop, release the file). EventStore
 * is the API over these parts; nothing here is per event.
 *
 * @module
 */

/** The reads the parts call back into the store (so that a spy on the store sees them). */
export interface StoreReads {
  getEvent(origin: string, seq: number): DruEvent | undefined
  vv(): VersionVector
}

export class StoreParts {
  readonly db: Database.Database
  readonly now: WallClock
  readonly onListenerError: (err: unknown) => void
  readonly stmt: LogStatements
  readonly meta: MetaTable
  readonly peers: PeerTable
  readonly folded: FoldedLog
  /** Chain heads and compaction base in memory (see chain-heads.ts). */
  readonly chain = new ChainHeads()
  /** Events served to peers lately, re-hashed when read (see recent-reads.ts). */
  readonly recentReads: RecentReads
  /** Positions, dictionary ids and rows inside a write transaction (see event-inserter.ts). */
  readonly inserter: EventInserter
  readonly listeners: CommitListeners
  /** Signs this DRU's own events, a commit's tip soon after it (see deferred-signing.ts). */
  readonly signer: DeferredSigner | undefined
  /** The hybrid logical clock stamping local events (its node is the current origin). */
  readonly clock: HlcClock
  readonly origin: Origin
  readonly incarnation: number
  readonly previousOrigin: Origin | undefined
  readonly openedClean: boolean
  readonly isNew: boolean
  /** Opened for inspection: reads only, and the clean-close marker is left as it was. */
  readonly inspect: boolean
  /** Application handlers, their owed events, retries and dead letters. */
  readonly inbox: Inbox
  /** The write paths: local commits and remote batches. */
  readonly local: LocalCommitter
  readonly remote: RemoteIngest
  /** Events read out of the log's runs, checked (see stored-events.ts). */
  readonly events: StoredEvents
  /** The store's state as the readers (log-reader.ts, log-base.ts) see it. */
  readonly view: BaseView
  #closed = false
  #derivedReads: DerivedLogReads | undefined

  constructor(db: Database.Database, options: OpenStoreOptions, druId: DruId, reads: StoreReads) {
    this.db = db
    this.recentReads = new RecentReads(options.recentReadBytes)
    this.now = options.now ?? Date.now
    this.onListenerError = options.onListenerError ?? ((err) => console.error('dru: commit listener failed', err))
    this.stmt = prepareLogStatements(db)
    this.events = new StoredEvents(db, this.stmt)
    this.signer = options.sign ? this.#makeSigner(options.sign) : undefined
    this.meta = new MetaTable(db)
    this.peers = new PeerTable(this.stmt)
    this.folded = new FoldedLog(db)
    const docIndex = new DocIndex(db, this.meta, options.docIndexMergeEvery, options.docIndexMergeDocs)
    const highWater = this.chain.load(this.stmt)
    // The marker is read before the new identity replaces the incarnation it names.
    this.inspect = options.inspect === true
    const identity = openIdentity({
      db,
      meta: this.meta,
      druId,
      path: options.path,
      heads: this.chain.heads,
      random: options.random,
      inspect: this.inspect,
    })
    this.openedClean = identity.openedClean
    this.isNew = identity.isNew
    this.previousOrigin = identity.previousOrigin
    this.incarnation = identity.incarnation
    this.origin = formatOrigin(druId, this.incarnation)
    const stored = (this.stmt.lastLsn.get() as { lsn: number | null }).lsn ?? 0
    const nextLsn = Math.max(stored, Number(this.meta.get(MetaKey.LSN_HIGH) ?? 0)) + 1
    this.inserter = new EventInserter(db, this.stmt, docIndex, nextLsn)
    this.clock = this.#makeClock(highWater, options.maxClockSkewMs)
    this.view = {
      db,
      stmt: this.stmt,
      events: this.events,
      docIndex,
      heads: this.chain.heads,
      base: this.chain.base,
      folded: this.folded,
      recent: this.recentReads,
      closed: () => this.#closed,
      writing: () => db.inTransaction,
      vv: () => reads.vv(),
      getEvent: (origin, seq) => reads.getEvent(origin, seq),
    }
    this.inbox = new Inbox(
      {
        db,
        origin: this.origin,
        now: this.now,
        getEvent: (o, s) => reads.getEvent(o, s),
        transaction: (fn) => this.#exclusive(fn),
      },
      inboxPolicy(options.inbox),
    )
    this.listeners = new CommitListeners(this.onListenerError)
    const writing = {
      db,
      origin: this.origin,
      clock: this.clock,
      now: this.now,
      stmt: this.stmt,
      chain: this.chain,
      inserter: this.inserter,
      listeners: this.listeners,
    }
    this.local = new LocalCommitter({ ...writing, signer: this.signer })
    this.remote = new RemoteIngest({ ...writing, skewPolicy: options.skewPolicy ?? 'reject', inbox: this.inbox })
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Reads for state derived from the log, prepared on first use (see {@link DerivedLogReads}). */
  get derivedReads(): DerivedLogReads {
    this.#derivedReads ??= new DerivedLogReads(this.db, this.view)
    return this.#derivedReads
  }

  /** Throws unless a write may start now: the store is open, writable, and in no write of its own. */
  assertUsable(): void {
    if (this.#closed) throw new DruError('CLOSED', 'the event store is closed')
    if (this.inspect)
      throw new DruError('INVALID_ARGUMENT', 'this database was opened for inspection: it takes no writes')
    if (this.inserter.inTransaction) {
      throw new DruError(
        'INVALID_ARGUMENT',
        'nested transactions are not supported: call tx.append() inside the open transact()',
      )
    }
  }

  /**
   * Throws when the connection is inside a transaction of someone else's: the events' commit
   * would be a savepoint that can still roll back after they were published (heads,
   * listeners, peers).
   */
  assertOutsideTransaction(): void {
    if (this.db.inTransaction) {
      throw new DruError(
        'INVALID_ARGUMENT',
        "the store's writes commit on their own: call them outside any open transaction of its connection (use transact(tx => …) and tx.db to write with the events)",
      )
    }
  }

  /** Signs the own tip, marks a clean stop and closes the database (releasing the file lock). Idempotent. */
  close(): void {
    if (this.#closed) return
    try {
      this.signer?.stop()
      this.signer?.flush()
    } catch (err) {
      // Left for the next open, which signs a tail left unsigned (signOwnHistory).
      this.onListenerError(err)
    }
    // The next open rebuilds the document index's tail by reading its events back from the
    // log (~0.6 s for a full tail of 262,144): merged now, a clean restart reads none.
    // merge() keeps the tail on failure; an inspection writes nothing.
    if (!this.inspect) this.view.docIndex.merge()
    try {
      // Marks a clean stop (reported at the next open). An inspection leaves the old marker.
      if (!this.inspect) this.meta.set(MetaKey.CLEAN_CLOSE, cleanCloseToken(this.origin, this.chain.heads))
    } catch {
      // A full or failing disk must not prevent closing; the next open just sees no marker.
    }
    this.#closed = true
    this.db.close()
  }

  /** One immediate transaction of the store's own (the inbox's retries), guarded like transact(). */
  #exclusive<T>(fn: () => T): T {
    this.assertUsable()
    return this.inserter.exclusive(fn)
  }

  #makeSigner(sign: NonNullable<OpenStoreOptions['sign']>): DeferredSigner {
    // Only for an event the log holds (a run at or before it, reaching it).
    const storeSig = this.db.prepare(
      `insert or replace into sigs (origin_id, seq, sig) select origin_id, at, sig from (select origin_id, seq, n, ? as sig, ? as at from runs
         where origin_id = (select id from origin_ids where origin = ?) and seq <= ? order by seq desc limit 1) where seq + n > at`,
    )
    return new DeferredSigner({
      sign,
      store: (origin, seq, sig) => {
        try {
          storeSig.run(sig, seq, origin, seq)
          // A kept copy of the event would lack the signature.
          this.recentReads.forget(origin)
        } catch (err) {
          throw storageError(err)
        }
      },
      onError: this.onListenerError,
      canWrite: () => !this.#closed && !this.db.inTransaction,
    })
  }

  #makeClock(highWater: Hlc | undefined, maxSkewMs: number | undefined): HlcClock {
    return new HlcClock({
      node: this.origin,
      now: this.now,
      ...(maxSkewMs === undefined ? {} : { maxSkewMs }),
      ...(highWater ? { highWater: { ...highWater, node: this.origin } } : {}),
    })
  }
}
