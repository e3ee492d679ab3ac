import type Database from 'better-sqlite3'
import {
  DruError,
  GENESIS_HASH,
  classifyArrival,
  decodeHlc,
  eventHashVerified,
  validateBatch,
  type DruEvent,
  type HlcClock,
  type IngestResult,
  type Origin,
  type WallClock,
} from '@dru/core'
import type { ChainHeads } from './chain-heads.js'
import type { CommitListeners } from './commit-listeners.js'
import type { EventInserter } from './event-inserter.js'
import type { Inbox } from './inbox.js'
import type { Head, LogStatements } from './statements.js'
import type { IngestValidator, SkewPolicy, StoringValidator } from './store-options.js'

/**
 * The remote write path (the inbox side of the log): checks a batch of remote events before
 * touching the database (shape, hash, clock skew, our own origin beyond our head, the
 * registered validators), then in one transaction sorts each event into new, duplicate or
 * refused (FORK, SEQ_GAP, CHAIN_BROKEN: core's `classifyArrival`), stores the new ones, runs
 * the inbox handlers on each behind its savepoint and the storing validators on the batch,
 * and moves the heads. After the commit it folds the newest stored timestamp into the clock,
 * counts skewed events and runs the commit listeners. All or nothing: a refused batch
 * changes nothing.
 *
 * @module
 */

/** What the remote write path works with (the store's parts, shared with the rest of it). */
export interface RemoteIngestParts {
  readonly db: Database.Database
  readonly origin: Origin
  readonly clock: HlcClock
  readonly now: WallClock
  readonly skewPolicy: SkewPolicy
  readonly stmt: LogStatements
  readonly chain: ChainHeads
  readonly inserter: EventInserter
  readonly inbox: Inbox
  readonly listeners: CommitListeners
}

/** The head of an origin we hold nothing of. */
const NO_HEAD: Head = Object.freeze({ seq: 0, hash: GENESIS_HASH, hlc: '' })

export class RemoteIngest {
  /** The store's parts this path works with. */
  readonly #p: RemoteIngestParts
  #validators: IngestValidator[] = []
  #storingValidators: StoringValidator[] = []
  #skewed = 0

  constructor(parts: RemoteIngestParts) {
    this.#p = parts
  }

  /** Remote events stored although their HLC was beyond the skew bound (skewPolicy 'tolerate'). */
  get skewedEvents(): number {
    return this.#skewed
  }

  /** See {@link EventStore.addValidator}. */
  addValidator(validator: IngestValidator): () => void {
    this.#validators.push(validator)
    return () => {
      this.#validators = this.#validators.filter((v) => v !== validator)
    }
  }

  /** See {@link EventStore.addStoringValidator}. */
  addStoringValidator(validator: StoringValidator): () => void {
    this.#storingValidators.push(validator)
    return () => {
      this.#storingValidators = this.#storingValidators.filter((v) => v !== validator)
    }
  }

  /** See {@link EventStore.ingest} (which checks that the store is usable first). */
  ingest(batch: readonly unknown[]): IngestResult {
    if (!Array.isArray(batch)) throw new DruError('INVALID_ARGUMENT', 'ingest() takes an array of events')
    const events = validateBatch(batch)
    const heads = this.#p.chain.heads
    const clockErrors: DruEvent[] = []
    // The skew check refuses an HLC whose wall is too far ahead: when the batch's greatest
    // (text order is HLC order) passes, every one does, and none is decoded. Otherwise each
    // is checked in turn, as the greatest alone cannot say which are skewed or which is first.
    const checkEach = !this.#clockAccepts(events)
    for (const e of events) {
      if (!eventHashVerified(e)) {
        throw new DruError('HASH_MISMATCH', `${e.origin}#${e.seq} does not match its hash`, {
          details: { origin: e.origin, seq: e.seq },
        })
      }
      if (checkEach) {
        try {
          this.#p.clock.check(decodeHlc(e.hlc))
        } catch (err) {
          if (this.#p.skewPolicy === 'reject') throw err
          clockErrors.push(e)
        }
      }
      // Only this process writes its current origin: anything of it beyond our head came from
      // someone holding our key, and storing it would fork our next local write.
      if (e.origin === this.#p.origin && e.seq > (heads.get(this.#p.origin)?.seq ?? 0)) {
        throw new DruError(
          'FORK',
          `${e.origin}#${e.seq} is this process's own origin beyond its head: another writer holds its key`,
          {
            details: { origin: e.origin, seq: e.seq },
          },
        )
      }
    }
    for (const validate of this.#validators) validate(events)
    const sorted = [...events].sort((a, b) => (a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : a.seq - b.seq))

    // Each origin's newest stored event is its new head (an object per origin, not per event).
    const newHeads = new Map<string, DruEvent>()
    const stored: DruEvent[] = []
    let duplicates = 0
    const handlers = this.#p.inbox.hasRecipients()
    const bases = this.#p.chain.base
    const inserter = this.#p.inserter
    const run = (): void => {
      const at = this.#p.now()
      // `sorted` holds each origin's events together: its head and compaction base are looked
      // up once per origin, and the head then moves along with the events stored.
      let origin: string | undefined
      let head: Head | DruEvent = NO_HEAD
      let heldHashAt: (seq: number) => string | undefined = () => undefined
      for (const e of sorted) {
        if (e.origin !== origin) {
          const o = (origin = e.origin)
          head = heads.get(o) ?? NO_HEAD
          const base = bases.get(o)
          // Below the compaction base the event may be gone: only its boundary hash is known.
          heldHashAt = (seq) => (seq === base?.seq ? base.hash : inserter.storedHash(o, seq))
        }
        if (classifyArrival(e, head, heldHashAt) === 'duplicate') {
          duplicates++
          continue
        }
        const lsn = inserter.insert(e, at)
        // A handler may read the log: it sees its event stored, as it would without the writer's queue.
        if (handlers) {
          inserter.flush()
          this.#p.inbox.deliver(e, lsn, at)
        }
        head = e
        newHeads.set(e.origin, e)
        stored.push(e)
      }
      inserter.flush()
      if (stored.length > 0) for (const validate of this.#storingValidators) validate(stored, { db: this.#p.db })
    }
    inserter.commit(run)
    // A copy of the head's fields: the event's change bytes are not kept alive by the heads.
    for (const [origin, h] of newHeads) heads.set(origin, { seq: h.seq, hash: h.hash, hlc: h.hlc })
    if (newHeads.size > 0) this.#p.chain.changed()
    // Keyed by position (a repeat of a skewed event is skewed too); no keys built when nothing was skewed.
    const skewedAt = clockErrors.length > 0 ? new Set(clockErrors.map((e) => `${e.origin}#${e.seq}`)) : undefined
    let skewed = 0
    // The clock folds in only the newest timestamp stored: receive keeps the greatest it has
    // seen, so one receive of the maximum leaves it where a receive of each would (an HLC's
    // text order is its order; test/hlc-fold.test.ts in core pins both), without decoding each.
    let newest: string | undefined
    for (const e of stored) {
      if (skewedAt?.has(`${e.origin}#${e.seq}`)) {
        this.#skewed++
        skewed++
      } else if (newest === undefined || e.hlc > newest) newest = e.hlc
    }
    // The batch is committed: a wall clock stepped back since the check must not turn that
    // into a thrown CLOCK_SKEW (the caller would think nothing was stored, and nobody would be told).
    if (newest !== undefined) this.#p.clock.receiveStored(decodeHlc(newest))
    if (stored.length > 0) this.#p.listeners.notify(stored, 'remote')
    return { stored, duplicates, skewed }
  }

  /** Whether the clock's skew check passes the greatest HLC of `events` (all checked by validateBatch). */
  #clockAccepts(events: readonly DruEvent[]): boolean {
    let greatest = ''
    for (const e of events) if (e.hlc > greatest) greatest = e.hlc
    if (greatest === '') return true
    try {
      this.#p.clock.check(decodeHlc(greatest))
      return true
    } catch {
      return false
    }
  }
}
