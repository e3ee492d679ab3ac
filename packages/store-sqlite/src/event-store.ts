import Database from 'better-sqlite3'
import {
  DEFAULT_BATCH_BYTES,
  MAX_CHANGE_BYTES,
  MAX_INCARNATION,
  DruError,
  GENESIS_HASH,
  HlcClock,
  decodeHlc,
  encodeHlc,
  eventHashMatches,
  formatOrigin,
  mergeVv,
  missingRanges,
  normalizeVv,
  parseDocId,
  parseDruId,
  sealEvent,
  validateEvent,
  compareHlc,
  type DruEvent,
  type DruId,
  type Fingerprint,
  type Hlc,
  type Origin,
  type VersionVector,
  type WallClock,
} from '@dru/core'
import { migrate } from './migrations.js'

/**
 * How far a commit must survive. `machine` (the default) is `synchronous=FULL`: a commit
 * that returned survives power loss and kernel crashes. `process` is WAL with
 * `synchronous=NORMAL`: it survives the process being killed, not the machine, and is
 * several times faster per commit.
 */
export type Durability = 'machine' | 'process'

/** What to do with a remote event whose timestamp is too far ahead of our clock. */
export type SkewPolicy = 'reject' | 'tolerate'

export interface OpenStoreOptions {
  /** SQLite file path, or ':memory:' for tests. */
  path: string
  /** This DRU's stable id. A database remembers it and refuses to open under another. */
  druId: string
  durability?: Durability
  /** Wall clock for the HLC and timestamps; defaults to Date.now. */
  now?: WallClock
  /** How far (ms) a remote HLC may run ahead of our clock. Default 60 s. */
  maxClockSkewMs?: number
  /**
   * `reject` (default): a batch holding an event too far ahead fails with CLOCK_SKEW and
   * stores nothing. `tolerate`: the event is stored (convergence never depends on wall
   * clocks) but our clock is not dragged forward; `skewedEvents` counts it for alarms.
   */
  skewPolicy?: SkewPolicy
  /** Signs the hash of the last event of each local commit (authorship of the chain). */
  sign?: (hash: string) => Uint8Array
  /** Called with errors thrown by post-commit listeners (which cannot undo a commit). */
  onListenerError?: (err: unknown) => void
  /**
   * Bound of SQLite's page cache for this connection, in KiB (default
   * {@link DEFAULT_CACHE_KIB}). The cache fills with the pages a DRU touches up to this
   * bound and stays there, whatever the size of the log.
   */
  cacheKiB?: number
}

/**
 * Default bound of SQLite's page cache (16 MiB per connection). Set here rather than left to
 * the SQLite build's default, so the bound on the log's memory is dru's configuration.
 */
export const DEFAULT_CACHE_KIB = 16 << 10

/** The handle an application gets inside {@link EventStore.transact}. */
export interface StoreTx {
  /** The same connection, inside the open transaction: app statements commit with the events. */
  readonly db: Database.Database
  /** Appends a local event (outbox); it gets the next seq, an HLC tick and the chain link. */
  append(docId: string, change: Uint8Array): DruEvent
}

/** Passed to inbox handlers; `db` is inside the transaction that records the event. */
export interface InboxTx {
  readonly db: Database.Database
}

/** Runs exactly once per stored remote event, inside the transaction that stores it. */
export type InboxHandler = (event: DruEvent, tx: InboxTx) => void

/** Called after a commit with the events it made durable, in commit order. */
export type CommitListener = (events: readonly DruEvent[], source: 'local' | 'remote') => void

export interface IngestResult {
  /** Events that were new and are now stored (handlers ran for each). */
  readonly stored: readonly DruEvent[]
  /** Events we already held with the same hash: no-ops. */
  readonly duplicates: number
  /** Stored events whose HLC was beyond the skew bound (only with skewPolicy 'tolerate'). */
  readonly skewed: number
}

export interface PeerRecord {
  readonly peerId: string
  readonly url: string | null
  readonly ackedVv: VersionVector
  readonly lastSeen: number | null
  readonly state: string | null
}

export interface StreamOptions {
  /** Soft cap on a batch's change bytes; a batch always holds at least one event. */
  maxBatchBytes?: number
  /** Rows fetched per query; bounds memory together with maxBatchBytes. */
  pageSize?: number
}

export interface VerifyProgress {
  readonly origin: string
  readonly checked: number
}

interface EventRow {
  lsn: number
  origin: string
  seq: number
  hlc: string
  doc_id: string
  change: Buffer
  prev: string
  hash: string
  sig: Buffer | null
}

interface Head {
  seq: number
  hash: string
  hlc: string
}

const CLEAN_CLOSE_KEY = 'clean_close'
/** Zero point of time-based incarnations (2024-01-01T00:00:00Z). */
const INCARNATION_EPOCH_MS = Date.UTC(2024, 0, 1)

/**
 * An incarnation number derived from the wall clock: milliseconds since 2024 (11 digits
 * today, within MAX_INCARNATION for millennia). A disk restored from backup, or an empty
 * one, cannot know which incarnations its DRU took since, but those were taken earlier in
 * time: starting above the clock's value avoids reusing any of them without asking a peer
 * first. Milliseconds, not seconds, so a restart within the same second still differs.
 */
export function clockIncarnation(nowMs: number = Date.now()): number {
  return Math.max(1, Math.floor(nowMs - INCARNATION_EPOCH_MS))
}

const EVENT_COLUMNS = 'lsn, origin, seq, hlc, doc_id, change, prev, hash, sig'

/**
 * The append-only event log of one DRU on SQLite.
 *
 * Outbox: {@link transact} commits the application's statements and its new events in
 * one SQLite transaction. Inbox: {@link ingest} verifies remote events (hash, chain,
 * contiguity), stores each `(origin, seq)` once and runs the inbox handlers in the same
 * transaction, so effects happen exactly once. Every event read back is re-hashed, so a
 * flipped byte on disk is reported as CORRUPTION instead of being served or applied.
 */
/** Meta key: the highest local position ever given, kept so compaction never lets one be reused. */
const LSN_HIGH_KEY = 'lsn_high'

export class EventStore {
  readonly druId: DruId
  readonly path: string
  readonly durability: Durability
  readonly db: Database.Database
  #clock: HlcClock
  readonly #maxSkewMs: number | undefined
  #openedClean = false
  #isNew = false
  readonly skewPolicy: SkewPolicy
  #origin: Origin
  #incarnation: number
  #heads = new Map<string, Head>()
  /** Next local position; assigned explicitly so that deleting rows never lets SQLite reuse one. */
  #nextLsn = 1
  /** Per origin, the compacted prefix: events up to `seq` may be gone from `events`. */
  #base = new Map<string, Head>()
  #handlers: InboxHandler[] = []
  #listeners: CommitListener[] = []
  #inTransaction = false
  #closed = false
  #skewed = 0
  readonly #now: WallClock
  readonly #sign: ((hash: string) => Uint8Array) | undefined
  readonly #onListenerError: (err: unknown) => void
  readonly #stmt: ReturnType<EventStore['prepareStatements']>

  private constructor(db: Database.Database, options: OpenStoreOptions, druId: DruId) {
    this.db = db
    this.druId = druId
    this.path = options.path
    this.durability = options.durability ?? 'machine'
    this.skewPolicy = options.skewPolicy ?? 'reject'
    this.#now = options.now ?? Date.now
    this.#sign = options.sign
    this.#onListenerError = options.onListenerError ?? ((err) => console.error('dru: commit listener failed', err))
    this.#stmt = this.prepareStatements()
    this.#maxSkewMs = options.maxClockSkewMs
    this.#incarnation = this.#loadIdentity()
    this.#origin = formatOrigin(druId, this.#incarnation)
    let highWater: Hlc | undefined
    for (const row of this.#stmt.allHeads.all() as Array<{ origin: string } & Head>) {
      this.#heads.set(row.origin, { seq: row.seq, hash: row.hash, hlc: row.hlc })
      const h = decodeHlc(row.hlc)
      if (!highWater || compareHlc(h, highWater) > 0) highWater = h
    }
    const stored = (this.#stmt.lastLsn.get() as { lsn: number | null }).lsn ?? 0
    this.#nextLsn = Math.max(stored, Number(this.getMeta(LSN_HIGH_KEY) ?? 0)) + 1
    for (const row of this.#stmt.allBase.all() as Array<{ origin: string } & Head>) {
      this.#base.set(row.origin, { seq: row.seq, hash: row.hash, hlc: row.hlc })
    }
    this.#clock = this.#makeClock(highWater)
    this.#openedClean = this.#takeCleanCloseMarker()
  }

  #makeClock(highWater: Hlc | undefined): HlcClock {
    return new HlcClock({
      node: this.#origin,
      now: this.#now,
      ...(this.#maxSkewMs === undefined ? {} : { maxSkewMs: this.#maxSkewMs }),
      ...(highWater ? { highWater: { ...highWater, node: this.#origin } } : {}),
    })
  }

  /** The hybrid logical clock stamping local events (its node is the current origin). */
  get clock(): HlcClock {
    return this.#clock
  }

  /**
   * Opens (creating if needed) the log at `options.path`, takes an exclusive lock on the
   * file and brings the schema up to date. A second process opening the same file fails
   * at once with DB_LOCKED.
   */
  static open(options: OpenStoreOptions): EventStore {
    const druId = parseDruId(options.druId, 'druId')
    if (typeof options.path !== 'string' || options.path.length === 0) {
      throw new DruError('CONFIG_INVALID', 'path must be a file path or ":memory:"', { details: { field: 'path' } })
    }
    const durability = options.durability ?? 'machine'
    if (durability !== 'machine' && durability !== 'process') {
      throw new DruError('CONFIG_INVALID', `durability must be 'machine' or 'process' (got ${JSON.stringify(durability)})`, {
        details: { field: 'durability' },
      })
    }
    const skew = options.skewPolicy ?? 'reject'
    if (skew !== 'reject' && skew !== 'tolerate') {
      throw new DruError('CONFIG_INVALID', `skewPolicy must be 'reject' or 'tolerate' (got ${JSON.stringify(skew)})`, {
        details: { field: 'skewPolicy' },
      })
    }
    const cacheKiB = options.cacheKiB ?? DEFAULT_CACHE_KIB
    if (!Number.isInteger(cacheKiB) || cacheKiB < 64) {
      throw new DruError('CONFIG_INVALID', `cacheKiB must be an integer of at least 64 (got ${JSON.stringify(cacheKiB)})`, {
        details: { field: 'cacheKiB' },
      })
    }
    let db: Database.Database
    try {
      // timeout 0: a locked file must fail fast, not wait.
      db = new Database(options.path, { timeout: 0 })
    } catch (cause) {
      throw new DruError('CONFIG_INVALID', `cannot open database ${options.path}: ${(cause as Error).message}`, {
        cause,
        details: { field: 'path' },
      })
    }
    try {
      if (options.path !== ':memory:') {
        // Exclusive locking mode holds an OS lock on the file for the life of this
        // connection; the kernel drops it when the process dies, so a crash never leaves
        // a stale lock. With it, WAL needs no shared-memory file.
        db.pragma('locking_mode = EXCLUSIVE')
        db.pragma('journal_mode = WAL')
        db.exec('begin exclusive; commit')
      }
      db.pragma(`synchronous = ${durability === 'machine' ? 'FULL' : 'NORMAL'}`)
      // A negative cache_size is a bound in KiB; no memory-mapped I/O, so the file's pages
      // are only ever in that cache, never mapped into the process.
      db.pragma(`cache_size = -${cacheKiB}`)
      db.pragma('mmap_size = 0')
      migrate(db)
      return new EventStore(db, options, druId)
    } catch (cause) {
      db.close()
      if ((cause as { code?: string }).code === 'SQLITE_BUSY') {
        throw new DruError('DB_LOCKED', `database ${options.path} is in use by another process; only one DRU may open it`, {
          cause,
          details: { path: options.path },
        })
      }
      if ((cause as { code?: string }).code === 'SQLITE_NOTADB' || (cause as { code?: string }).code === 'SQLITE_CORRUPT') {
        throw new DruError('CORRUPTION', `database ${options.path} is damaged (${(cause as Error).message}); restore it (see docs/RUNBOOK.md)`, {
          cause,
          details: { path: options.path },
        })
      }
      throw cause
    }
  }

  /** The writer identity of this incarnation, e.g. `eu-west-1/1`. */
  get origin(): Origin {
    return this.#origin
  }

  get incarnation(): number {
    return this.#incarnation
  }

  /**
   * True when the previous process closed this database cleanly (close() ran) and the log
   * still ends where it ended then. False after a crash, for a new file, or for a copy
   * taken while the DRU was running (a live backup): cases where this log cannot prove it
   * is the newest copy of its own origin, so a networked DRU takes a new incarnation.
   */
  get openedClean(): boolean {
    return this.#openedClean
  }

  /** True when this open created the database (no earlier identity was stored). */
  get isNew(): boolean {
    return this.#isNew
  }

  /** Remote events stored although their HLC was beyond the skew bound (skewPolicy 'tolerate'). */
  get skewedEvents(): number {
    return this.#skewed
  }

  // ---- outbox -------------------------------------------------------------------------

  /**
   * Runs `fn` in one SQLite transaction. Everything it does through `tx.db` and every
   * event it appends commit together, or (if it throws) not at all; a failed or empty
   * transaction consumes no seq. `fn` must be synchronous.
   */
  transact<T>(fn: (tx: StoreTx) => T): { result: T; events: DruEvent[] } {
    this.#assertUsable()
    const pending: DruEvent[] = []
    let head = this.#heads.get(this.#origin)
    let seq = head?.seq ?? 0
    let prev = head?.hash ?? GENESIS_HASH
    const tx: StoreTx = {
      db: this.db,
      append: (docId, change) => {
        parseDocId(docId)
        if (!(change instanceof Uint8Array)) throw new DruError('INVALID_ARGUMENT', 'change must be a Uint8Array')
        if (change.byteLength > MAX_CHANGE_BYTES) {
          throw new DruError('INVALID_ARGUMENT', `change for ${docId} is ${change.byteLength} bytes; the limit is ${MAX_CHANGE_BYTES}`)
        }
        // Built here from checked parts, so it skips validateEvent (a hot path).
        const event = sealEvent({
          origin: this.#origin,
          seq: seq + 1,
          hlc: encodeHlc(this.clock.tick()),
          docId,
          change,
          prev,
        })
        seq = event.seq
        prev = event.hash
        pending.push(event)
        return event
      },
    }
    const run = this.db.transaction(() => {
      const result = fn(tx)
      if (result instanceof Promise) {
        throw new DruError('INVALID_ARGUMENT', 'transact() callbacks must be synchronous (SQLite transactions cannot span an await)')
      }
      if (pending.length > 0) {
        const last = pending.length - 1
        if (this.#sign) pending[last] = { ...pending[last]!, sig: this.#sign(pending[last]!.hash) }
        const at = this.#now()
        for (const e of pending) this.#insert(e, at)
        const top = pending[last]!
        this.#stmt.upsertHead.run(top.origin, top.seq, top.hash, top.hlc)
      }
      return result
    })
    this.#inTransaction = true
    const lsnBefore = this.#nextLsn
    let result: T
    try {
      result = run.immediate()
    } catch (err) {
      this.#nextLsn = lsnBefore // the rows were rolled back, so their positions are free again
      throw mapSqliteError(err)
    } finally {
      this.#inTransaction = false
    }
    if (pending.length > 0) {
      const top = pending[pending.length - 1]!
      this.#heads.set(this.#origin, { seq: top.seq, hash: top.hash, hlc: top.hlc })
      this.#notify(pending, 'local')
    }
    return { result, events: pending }
  }

  /** Shorthand for a transaction that appends one event and nothing else. */
  append(docId: string, change: Uint8Array): DruEvent {
    return this.transact((tx) => tx.append(docId, change)).result
  }

  // ---- inbox --------------------------------------------------------------------------

  /** Registers a handler that runs exactly once per newly stored remote event. */
  onIngest(handler: InboxHandler): () => void {
    this.#handlers.push(handler)
    return () => {
      this.#handlers = this.#handlers.filter((h) => h !== handler)
    }
  }

  /** Registers a listener called after each commit (local or remote) with its events. */
  onCommit(listener: CommitListener): () => void {
    this.#listeners.push(listener)
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener)
    }
  }

  /**
   * Verifies and stores a batch of remote events, all or nothing. Events may arrive in
   * any order within the batch and may repeat; an `(origin, seq)` already held with the
   * same hash is a no-op. Errors (store unchanged): INVALID_EVENT, HASH_MISMATCH,
   * CLOCK_SKEW, FORK (same `(origin, seq)`, other hash), CHAIN_BROKEN (`prev` does not
   * link to our head), SEQ_GAP (a hole after our head), HANDLER_FAILED.
   */
  ingest(batch: readonly unknown[]): IngestResult {
    this.#assertUsable()
    if (!Array.isArray(batch)) throw new DruError('INVALID_ARGUMENT', 'ingest() takes an array of events')
    const events = batch.map((e, i) => validateEvent(e, `batch[${i}]`))
    const clockErrors: DruEvent[] = []
    for (const e of events) {
      if (!eventHashMatches(e)) {
        throw new DruError('HASH_MISMATCH', `${e.origin}#${e.seq} does not match its hash`, { details: { origin: e.origin, seq: e.seq } })
      }
      try {
        this.clock.check(decodeHlc(e.hlc))
      } catch (err) {
        if (this.skewPolicy === 'reject') throw err
        clockErrors.push(e)
      }
    }
    const sorted = [...events].sort((a, b) => (a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : a.seq - b.seq))

    const newHeads = new Map<string, Head>()
    const stored: DruEvent[] = []
    let duplicates = 0
    const run = this.db.transaction(() => {
      const at = this.#now()
      for (const e of sorted) {
        const head = newHeads.get(e.origin) ?? this.#heads.get(e.origin) ?? { seq: 0, hash: GENESIS_HASH, hlc: '' }
        if (e.seq <= head.seq) {
          const base = this.#base.get(e.origin)
          // Below the compaction base the event may be gone: only its boundary hash is known.
          const held = e.seq === head.seq ? head.hash : e.seq === base?.seq ? base.hash : this.#storedHash(e.origin, e.seq)
          if (held !== undefined && held !== e.hash) {
            throw new DruError('FORK', `fork: ${e.origin}#${e.seq} arrived with hash ${e.hash.slice(0, 12)}… but we hold ${held.slice(0, 12)}…`, {
              details: { origin: e.origin, seq: e.seq, held, offered: e.hash },
            })
          }
          duplicates++
          continue
        }
        if (e.seq > head.seq + 1) {
          throw new DruError('SEQ_GAP', `${e.origin}#${e.seq} arrived but we hold only up to seq ${head.seq}`, {
            details: { origin: e.origin, seq: e.seq, held: head.seq },
          })
        }
        if (e.prev !== head.hash) {
          throw new DruError('CHAIN_BROKEN', `${e.origin}#${e.seq} does not link to our ${e.origin}#${head.seq} (a forked history)`, {
            details: { origin: e.origin, seq: e.seq },
          })
        }
        this.#insert(e, at)
        for (const handler of this.#handlers) {
          try {
            handler(e, { db: this.db })
          } catch (cause) {
            throw new DruError('HANDLER_FAILED', `inbox handler failed on ${e.origin}#${e.seq}: ${(cause as Error)?.message ?? cause}`, {
              cause,
              details: { origin: e.origin, seq: e.seq },
            })
          }
        }
        newHeads.set(e.origin, { seq: e.seq, hash: e.hash, hlc: e.hlc })
        stored.push(e)
      }
      for (const [origin, h] of newHeads) this.#stmt.upsertHead.run(origin, h.seq, h.hash, h.hlc)
    })
    this.#inTransaction = true
    const lsnBefore = this.#nextLsn
    try {
      run.immediate()
    } catch (err) {
      this.#nextLsn = lsnBefore // the rows were rolled back, so their positions are free again
      throw mapSqliteError(err)
    } finally {
      this.#inTransaction = false
    }
    for (const [origin, h] of newHeads) this.#heads.set(origin, h)
    const skewedOrigins = new Set(clockErrors.map((e) => `${e.origin}#${e.seq}`))
    for (const e of stored) {
      if (skewedOrigins.has(`${e.origin}#${e.seq}`)) this.#skewed++
      else this.clock.receive(decodeHlc(e.hlc))
    }
    if (stored.length > 0) this.#notify(stored, 'remote')
    return { stored, duplicates, skewed: stored.filter((e) => skewedOrigins.has(`${e.origin}#${e.seq}`)).length }
  }

  // ---- reads --------------------------------------------------------------------------

  /** Per origin, the highest contiguous seq held. */
  vv(): VersionVector {
    const out: Record<string, number> = {}
    for (const [origin, h] of this.#heads) out[origin] = h.seq
    return normalizeVv(out)
  }

  /** The version vector plus each origin's chain head: equal fingerprints mean equal logs. */
  fingerprint(): Fingerprint {
    const heads: Record<string, string> = {}
    for (const origin of [...this.#heads.keys()].sort()) heads[origin] = this.#heads.get(origin)!.hash
    return { vv: this.vv(), heads }
  }

  /** The chain head of one origin, or undefined when we hold none of its events. */
  head(origin: string): { seq: number; hash: string } | undefined {
    const h = this.#heads.get(origin)
    return h ? { seq: h.seq, hash: h.hash } : undefined
  }

  /** Reads one event, verifying its hash (CORRUPTION if the stored bytes changed). */
  getEvent(origin: string, seq: number): DruEvent | undefined {
    const row = this.#stmt.getEvent.get(origin, seq) as EventRow | undefined
    return row ? rowToEvent(row) : undefined
  }

  /** Number of events stored (all origins). */
  count(): number {
    return (this.#stmt.count.get() as { n: number }).n
  }

  /**
   * Streams, in bounded batches, the events this log holds that a peer with vector
   * `remote` lacks: per origin in seq order. Rows are fetched page by page (no open
   * cursor is held between batches), so memory stays bounded by the options whatever
   * the backlog, and local writes may continue between batches. Every event is
   * re-hashed and its chain link checked on the way out.
   */
  *eventsMissing(remote: VersionVector, options: StreamOptions = {}): Generator<DruEvent[], void, undefined> {
    const maxBytes = options.maxBatchBytes ?? DEFAULT_BATCH_BYTES
    const pageSize = options.pageSize ?? 512
    let batch: DruEvent[] = []
    let bytes = 0
    for (const range of missingRanges(this.vv(), remote)) {
      const base = this.#base.get(range.origin)
      if (base && range.from <= base.seq) {
        throw new DruError('BELOW_FLOOR', `${range.origin}#${range.from}–#${base.seq} were compacted into document snapshots; the peer must bootstrap from snapshots`, {
          details: { origin: range.origin, seq: range.from, base: base.seq },
        })
      }
      let next = range.from
      let prev: string | undefined
      while (next <= range.to) {
        this.#assertUsable()
        const rows = this.#stmt.range.all(range.origin, next, range.to, pageSize) as EventRow[]
        if (rows.length === 0 || rows[0]!.seq !== next) {
          throw new DruError('CORRUPTION', `${range.origin}#${next} is missing from the log although the version vector claims it`, {
            details: { origin: range.origin, seq: next },
          })
        }
        for (const row of rows) {
          const e = rowToEvent(row)
          if (e.seq !== next || (prev !== undefined && e.prev !== prev)) {
            throw new DruError('CORRUPTION', `${e.origin}#${e.seq} breaks its stored chain`, { details: { origin: e.origin, seq: e.seq } })
          }
          prev = e.hash
          next = e.seq + 1
          if (batch.length > 0 && bytes + e.change.byteLength > maxBytes) {
            yield batch
            batch = []
            bytes = 0
          }
          batch.push(e)
          bytes += e.change.byteLength
        }
      }
    }
    if (batch.length > 0) yield batch
  }

  /** Events of one document stored after local position `afterLsn`, in arrival order, verified. */
  *eventsForDoc(docId: string, afterLsn = 0, pageSize = 512): Generator<DruEvent & { lsn: number }, void, undefined> {
    let after = afterLsn
    for (;;) {
      const rows = this.#stmt.docRange.all(docId, after, pageSize) as EventRow[]
      for (const row of rows) yield { ...rowToEvent(row), lsn: row.lsn }
      if (rows.length < pageSize) return
      after = rows[rows.length - 1]!.lsn
    }
  }

  /**
   * The highest local position given to an event so far (0 when none). Positions are never
   * reused, even after compaction deleted the newest rows: snapshots record the position
   * they cover, and a reused one would hide later events from them.
   */
  lastLsn(): number {
    return this.#nextLsn - 1
  }

  /**
   * Walks every stored event in each origin's order, re-hashing it and checking its chain
   * link and that the origin's head matches. Throws CORRUPTION naming the first bad
   * event. Reports progress every `progressEvery` events.
   */
  verifyLog(onProgress?: (p: VerifyProgress) => void, progressEvery = 10_000): { events: number; origins: number } {
    let total = 0
    for (const [origin, head] of this.#heads) {
      // A compacted origin's chain starts after its base, linking to the base's hash.
      const base = this.#base.get(origin)
      let prev: string | undefined = base?.hash
      let expected: number | undefined = base ? base.seq + 1 : undefined
      let checked = 0
      let last: DruEvent | undefined
      let after = base?.seq ?? 0
      for (;;) {
        const rows = this.#stmt.range.all(origin, after + 1, head.seq, 1024) as EventRow[]
        for (const row of rows) {
          const e = rowToEvent(row)
          if ((expected !== undefined && e.seq !== expected) || (prev !== undefined && e.prev !== prev) || (e.seq === 1 && e.prev !== GENESIS_HASH)) {
            throw new DruError('CORRUPTION', `${origin}#${e.seq} breaks its stored chain`, { details: { origin, seq: e.seq } })
          }
          prev = e.hash
          expected = e.seq + 1
          last = e
          checked++
          total++
          if (onProgress && total % progressEvery === 0) onProgress({ origin, checked })
        }
        if (rows.length < 1024) break
        after = rows[rows.length - 1]!.seq
      }
      if (!last && head.seq > (base?.seq ?? 0)) {
        throw new DruError('CORRUPTION', `${origin}#${(base?.seq ?? 0) + 1}–#${head.seq} are missing from the log although its head claims them`, {
          details: { origin, seq: (base?.seq ?? 0) + 1 },
        })
      }
      if (!last && base && base.hash !== head.hash) {
        throw new DruError('CORRUPTION', `the recorded head of ${origin} (#${head.seq}) does not match its compaction base`, { details: { origin, seq: head.seq } })
      }
      if (last && (last.seq !== head.seq || last.hash !== head.hash)) {
        throw new DruError('CORRUPTION', `the recorded head of ${origin} (#${head.seq}) does not match its last stored event (#${last.seq})`, {
          details: { origin, seq: head.seq },
        })
      }
    }
    return { events: total, origins: this.#heads.size }
  }

  // ---- compaction -----------------------------------------------------------------------

  /**
   * Per origin, the highest seq folded into document snapshots (events up to it may no
   * longer be stored), with that event's hash and HLC. Empty until the first compaction.
   */
  base(): Record<string, { seq: number; hash: string; hlc: string }> {
    const out: Record<string, { seq: number; hash: string; hlc: string }> = {}
    for (const origin of [...this.#base.keys()].sort()) out[origin] = { ...this.#base.get(origin)! }
    return out
  }

  /** The compaction base as a version vector. */
  baseVv(): VersionVector {
    const out: Record<string, number> = {}
    for (const [origin, b] of this.#base) out[origin] = b.seq
    return normalizeVv(out)
  }

  /**
   * Raises the compaction base to `floor` (clamped to what we hold; never lowered) and
   * returns the origins whose base moved. The caller must already have written document
   * snapshots covering every event up to the new base: from here on those events may be
   * deleted ({@link deleteBelowBase}) and are refused to peers with BELOW_FLOOR.
   */
  raiseBase(floor: VersionVector): string[] {
    this.#assertUsable()
    const plan: Array<[string, Head]> = []
    for (const origin of Object.keys(floor).sort()) {
      const head = this.#heads.get(origin)
      if (!head) continue
      const seq = Math.min(floor[origin]!, head.seq)
      if (seq <= (this.#base.get(origin)?.seq ?? 0)) continue
      let at: Head
      if (seq === head.seq) at = head
      else {
        const e = this.getEvent(origin, seq)
        if (!e) throw new DruError('CORRUPTION', `${origin}#${seq} is missing from the log although the version vector claims it`, { details: { origin, seq } })
        at = { seq, hash: e.hash, hlc: e.hlc }
      }
      plan.push([origin, at])
    }
    if (plan.length === 0) return []
    this.db.transaction(() => {
      for (const [origin, b] of plan) this.#stmt.upsertBase.run(origin, b.seq, b.hash, b.hlc)
    }).immediate()
    for (const [origin, b] of plan) this.#base.set(origin, b)
    return plan.map(([o]) => o)
  }

  /**
   * Deletes up to `limit` stored events at or below their origin's compaction base, in one
   * transaction; returns how many went. Call until it returns less than `limit`.
   */
  deleteBelowBase(limit = 10_000): number {
    this.#assertUsable()
    let deleted = 0
    this.db.transaction(() => {
      this.setMeta(LSN_HIGH_KEY, this.#nextLsn - 1)
      for (const [origin, b] of this.#base) {
        if (deleted >= limit) break
        deleted += this.#stmt.deletePrefix.run(origin, b.seq, limit - deleted).changes
      }
    }).immediate()
    return deleted
  }

  /**
   * Adopts a peer's compaction base after its document snapshots were merged here
   * (bootstrap of a DRU below the peer's floor): for each origin where we hold less than
   * the base, our head jumps to it, so the peer's later events link to it. An origin where
   * we hold the base's seq with another hash is a FORK; nothing is changed then.
   * Returns the origins whose head moved.
   */
  adoptBase(base: Readonly<Record<string, { seq: number; hash: string; hlc: string }>>): string[] {
    this.#assertUsable()
    const moved: Array<[string, Head]> = []
    for (const origin of Object.keys(base).sort()) {
      const b = base[origin]!
      const head = this.#heads.get(origin)
      if (head && head.seq >= b.seq) {
        const mine = this.#base.get(origin)
        const held = head.seq === b.seq ? head.hash : mine?.seq === b.seq ? mine.hash : this.#storedHash(origin, b.seq)
        if (held !== undefined && held !== b.hash) {
          throw new DruError('FORK', `fork: the peer's compaction base ${origin}#${b.seq} is ${b.hash.slice(0, 12)}… but we hold ${held.slice(0, 12)}…`, {
            details: { origin, seq: b.seq },
          })
        }
        continue
      }
      moved.push([origin, { seq: b.seq, hash: b.hash, hlc: b.hlc }])
    }
    if (moved.length === 0) return []
    this.db.transaction(() => {
      for (const [origin, b] of moved) {
        this.#stmt.upsertHead.run(origin, b.seq, b.hash, b.hlc)
        this.#stmt.upsertBase.run(origin, b.seq, b.hash, b.hlc)
      }
    }).immediate()
    for (const [origin, b] of moved) {
      this.#heads.set(origin, b)
      this.#base.set(origin, b)
    }
    return moved.map(([o]) => o)
  }

  // ---- peers --------------------------------------------------------------------------

  /** Records what a peer has durably acknowledged. Merged by max, so it never regresses. */
  recordPeerAck(peerId: string, acked: VersionVector, at = this.#now()): VersionVector {
    this.#assertUsable()
    const current = this.peer(peerId)?.ackedVv ?? {}
    const merged = mergeVv(current, acked)
    this.#stmt.upsertPeerAck.run(peerId, JSON.stringify(merged), at)
    return merged
  }

  /** Records a peer's address and connection state. */
  recordPeer(peerId: string, fields: { url?: string | null; state?: string | null; lastSeen?: number | null }): void {
    this.#assertUsable()
    this.#stmt.upsertPeer.run(peerId, fields.url ?? null, fields.state ?? null, fields.lastSeen ?? null)
  }

  peer(peerId: string): PeerRecord | undefined {
    const row = this.#stmt.getPeer.get(peerId) as RawPeer | undefined
    return row ? toPeer(row) : undefined
  }

  peers(): PeerRecord[] {
    return (this.#stmt.allPeers.all() as RawPeer[]).map(toPeer)
  }

  // ---- meta ---------------------------------------------------------------------------

  getMeta(key: string): unknown {
    return (this.#stmt.getMeta.get(key) as { value: unknown } | undefined)?.value
  }

  setMeta(key: string, value: string | number | null): void {
    this.#stmt.setMeta.run(key, value)
  }

  /**
   * Starts a new incarnation: later local events carry origin `<druId>/<n>` with
   * `n = max(current + 1, atLeast)` and a fresh seq, so `(origin, seq)` is never reused
   * after a restore from backup. Pass {@link clockIncarnation} as `atLeast` when this copy
   * may not know every incarnation taken before (an empty disk or an old backup).
   */
  bumpIncarnation(atLeast = 0): Origin {
    this.#assertUsable()
    const next = Math.min(MAX_INCARNATION, Math.max(this.#incarnation + 1, Math.floor(atLeast)))
    this.setMeta('incarnation', next)
    this.#incarnation = next
    this.#origin = formatOrigin(this.druId, next)
    this.#clock = this.#makeClock(this.#clock.last)
    return this.#origin
  }

  /**
   * Applies another package's schema steps on its own track (`schema_version:<track>`),
   * each step with its version bump in one transaction.
   */
  migrate(track: string, steps: ReadonlyArray<(db: Database.Database) => void>): void {
    this.#assertUsable()
    migrate(this.db, steps, `schema_version:${track}`)
  }

  /** Closes the database (releasing the file lock). Idempotent. */
  close(): void {
    if (this.#closed) return
    try {
      // Marks a clean stop: the next open can trust this log is its origin's newest copy.
      this.setMeta(CLEAN_CLOSE_KEY, this.#cleanCloseToken())
    } catch {
      // A full or failing disk must not prevent closing; the next open just sees no marker.
    }
    this.#closed = true
    this.db.close()
  }

  get closed(): boolean {
    return this.#closed
  }

  // ---- internals ----------------------------------------------------------------------

  private prepareStatements() {
    const db = this.db
    return {
      insert: db.prepare(
        'insert into events (lsn, origin, seq, hlc, doc_id, change, prev, hash, sig, received_at, applied_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      upsertHead: db.prepare(
        'insert into origins (origin, seq, hash, hlc) values (?, ?, ?, ?) on conflict(origin) do update set seq = excluded.seq, hash = excluded.hash, hlc = excluded.hlc',
      ),
      allHeads: db.prepare('select origin, seq, hash, hlc from origins'),
      allBase: db.prepare('select origin, seq, hash, hlc from log_base'),
      upsertBase: db.prepare(
        'insert into log_base (origin, seq, hash, hlc) values (?, ?, ?, ?) on conflict(origin) do update set seq = excluded.seq, hash = excluded.hash, hlc = excluded.hlc',
      ),
      deletePrefix: db.prepare('delete from events where lsn in (select lsn from events where origin = ? and seq <= ? limit ?)'),
      getEvent: db.prepare(`select ${EVENT_COLUMNS} from events where origin = ? and seq = ?`),
      storedHash: db.prepare('select hash from events where origin = ? and seq = ?').pluck(),
      range: db.prepare(`select ${EVENT_COLUMNS} from events where origin = ? and seq >= ? and seq <= ? order by seq limit ?`),
      docRange: db.prepare(`select ${EVENT_COLUMNS} from events where doc_id = ? and lsn > ? order by lsn limit ?`),
      lastLsn: db.prepare('select max(lsn) as lsn from events'),
      count: db.prepare('select count(*) as n from events'),
      getMeta: db.prepare('select value from meta where key = ?'),
      setMeta: db.prepare('insert into meta (key, value) values (?, ?) on conflict(key) do update set value = excluded.value'),
      getPeer: db.prepare('select peer_id, url, acked_vv, last_seen, state from peers where peer_id = ?'),
      allPeers: db.prepare('select peer_id, url, acked_vv, last_seen, state from peers order by peer_id'),
      upsertPeerAck: db.prepare(
        'insert into peers (peer_id, acked_vv, last_seen) values (?, ?, ?) on conflict(peer_id) do update set acked_vv = excluded.acked_vv, last_seen = excluded.last_seen',
      ),
      upsertPeer: db.prepare(
        `insert into peers (peer_id, url, state, last_seen) values (?, ?, ?, ?) on conflict(peer_id) do update set
           url = coalesce(excluded.url, url), state = coalesce(excluded.state, state), last_seen = coalesce(excluded.last_seen, last_seen)`,
      ),
    }
  }

  #cleanCloseToken(): string {
    const head = this.#heads.get(this.#origin)
    return `${this.#origin}#${head?.seq ?? 0}#${head?.hash ?? GENESIS_HASH}`
  }

  /** Reads and removes the clean-close marker, so a copy of the running file never carries one. */
  #takeCleanCloseMarker(): boolean {
    const marker = this.getMeta(CLEAN_CLOSE_KEY)
    if (marker === undefined) return false
    this.db.prepare('delete from meta where key = ?').run(CLEAN_CLOSE_KEY)
    return marker === this.#cleanCloseToken()
  }

  #loadIdentity(): number {
    const stored = this.getMeta('dru_id')
    if (stored === undefined) {
      this.#isNew = true
      this.db.transaction(() => {
        this.setMeta('dru_id', this.druId)
        this.setMeta('incarnation', 1)
      })()
      return 1
    }
    if (stored !== this.druId) {
      throw new DruError('CONFIG_INVALID', `database ${this.path} belongs to DRU ${JSON.stringify(stored)}, not ${JSON.stringify(this.druId)}`, {
        details: { field: 'id' },
      })
    }
    return Number(this.getMeta('incarnation') ?? 1)
  }

  #insert(e: DruEvent, at: number): void {
    this.#stmt.insert.run(this.#nextLsn++, e.origin, e.seq, e.hlc, e.docId, e.change, e.prev, e.hash, e.sig ?? null, at, at)
  }

  #storedHash(origin: string, seq: number): string | undefined {
    return this.#stmt.storedHash.get(origin, seq) as string | undefined
  }

  #notify(events: readonly DruEvent[], source: 'local' | 'remote'): void {
    for (const listener of this.#listeners) {
      try {
        listener(events, source)
      } catch (err) {
        this.#onListenerError(err)
      }
    }
  }

  #assertUsable(): void {
    if (this.#closed) throw new DruError('CLOSED', 'the event store is closed')
    if (this.#inTransaction) {
      throw new DruError('INVALID_ARGUMENT', 'nested transactions are not supported: call tx.append() inside the open transact()')
    }
  }
}

interface RawPeer {
  peer_id: string
  url: string | null
  acked_vv: string
  last_seen: number | null
  state: string | null
}

function toPeer(row: RawPeer): PeerRecord {
  return { peerId: row.peer_id, url: row.url, ackedVv: JSON.parse(row.acked_vv) as VersionVector, lastSeen: row.last_seen, state: row.state }
}

/** Rebuilds an event from its row, re-hashing it: CORRUPTION if anything changed on disk. */
function rowToEvent(row: EventRow): DruEvent {
  const e: DruEvent = {
    origin: row.origin as Origin,
    seq: row.seq,
    hlc: row.hlc,
    docId: row.doc_id,
    change: row.change,
    prev: row.prev,
    hash: row.hash,
    ...(row.sig ? { sig: row.sig } : {}),
  }
  let ok = false
  try {
    ok = eventHashMatches(e)
  } catch {
    ok = false
  }
  if (!ok) {
    throw new DruError('CORRUPTION', `stored event ${row.origin}#${row.seq} does not match its hash: the database file was altered`, {
      details: { origin: row.origin, seq: row.seq },
    })
  }
  return e
}

function mapSqliteError(err: unknown): unknown {
  const code = (err as { code?: string }).code
  if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
    return new DruError('FORK', `an event with the same (origin, seq) is already stored: ${(err as Error).message}`, { cause: err })
  }
  if (code === 'SQLITE_FULL') {
    return new DruError('STORAGE_FULL', `disk full: ${(err as Error).message}`, { cause: err })
  }
  return err
}
