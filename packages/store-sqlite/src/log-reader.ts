import {
  DEFAULT_BATCH_BYTES,
  DruError,
  GENESIS_HASH,
  missingRanges,
  type DruEvent,
  type StreamOptions,
  type VersionVector,
} from '@dru/core'
import type Database from 'better-sqlite3'
import { docsOfRunOrNone } from './run-body.js'
import {
  prepareDerivedReads,
  RUN,
  type DerivedReads,
  type Head,
  type LogStatements,
  type RunRow,
} from './statements.js'
import type { DocIndex } from './doc-index.js'
import type { RecentReads } from './recent-reads.js'
import type { StoredEvents } from './stored-events.js'

/**
 * Reading the log back out, page by page so memory stays bounded whatever its size: what a
 * peer lacks, a document's events, and the full verification walk. Every event read from the
 * database is re-hashed and its chain link checked; what peers lack is served from the
 * recent reads when another session just read it (re-hashed then).
 *
 * @module
 */

/** What the readers need from the store. */
export interface LogView {
  readonly stmt: LogStatements
  /** Events read out of the runs, checked. */
  readonly events: StoredEvents
  readonly docIndex: DocIndex
  readonly heads: ReadonlyMap<string, Head>
  readonly base: ReadonlyMap<string, Head>
  /** Pages served lately, shared by every reader of what peers lack (see recent-reads.ts). */
  readonly recent: RecentReads
  closed(): boolean
  /** True inside a write transaction: what is read then may roll back. */
  writing(): boolean
  vv(): VersionVector
}

export interface VerifyProgress {
  readonly origin: string
  readonly checked: number
}

/** See {@link EventStore.eventsMissing}. */
export function* eventsMissing(
  view: LogView,
  remote: VersionVector,
  options: StreamOptions = {},
): Generator<DruEvent[], void, undefined> {
  const maxBytes = options.maxBatchBytes ?? DEFAULT_BATCH_BYTES
  const pageSize = options.pageSize ?? 512
  let batch: DruEvent[] = []
  let bytes = 0
  for (const range of missingRanges(view.vv(), remote)) {
    const base = view.base.get(range.origin)
    if (base && range.from <= base.seq) {
      if (options.belowBase === 'skip') continue
      throw new DruError(
        'BELOW_FLOOR',
        `${range.origin}#${range.from}–#${base.seq} were compacted into document snapshots; the peer must bootstrap from snapshots`,
        {
          details: { origin: range.origin, seq: range.from, base: base.seq },
        },
      )
    }
    let next = range.from
    let prev: string | undefined
    while (next <= range.to) {
      if (view.closed()) throw new DruError('CLOSED', 'the event store is closed')
      let page = view.recent.take(range.origin, next, range.to, pageSize)
      if (!page) {
        const read = view.events.range(range.origin, next, range.to, pageSize)
        if (read.length === 0 || read[0]!.seq !== next) {
          throw new DruError(
            'CORRUPTION',
            `${range.origin}#${next} is missing from the log although the version vector claims it`,
            {
              details: { origin: range.origin, seq: next },
            },
          )
        }
        // What a write transaction inserted may still roll back: only reads outside one are kept.
        if (!view.writing()) view.recent.keep(read)
        page = read
      }
      for (const e of page) {
        if (e.seq !== next || (prev !== undefined && e.prev !== prev)) {
          throw new DruError('CORRUPTION', `${e.origin}#${e.seq} breaks its stored chain`, {
            details: { origin: e.origin, seq: e.seq },
          })
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

/** See {@link EventStore.eventsForDoc}. */
export function* eventsForDoc(
  view: LogView,
  docId: string,
  afterLsn = 0,
  pageSize = 512,
): Generator<DruEvent & { lsn: number }, void, undefined> {
  const doc = view.stmt.docId.get(docId) as number | undefined
  if (doc === undefined) return
  let after = afterLsn
  for (;;) {
    // One page from both parts of the document index, read in one synchronous step so a
    // merge between pages (see doc-index.ts) loses nothing. Each indexed event comes with the
    // run holding it, of which only that event is decoded.
    const rows =
      after < view.docIndex.upto ? (view.stmt.docRange.all(doc, after, pageSize) as Array<[number, ...RunRow]>) : []
    // Positions the index names, in order, each with its event when a run holds it.
    const page: Array<[number, (DruEvent & { lsn: number }) | undefined]> = []
    for (const row of rows) {
      const lsn = row[0]
      const run = row.slice(1) as unknown as RunRow
      page.push([
        lsn,
        lsn < run[RUN.lsn] + run[RUN.n] ? { ...view.events.eventOf(run, lsn - run[RUN.lsn]), lsn } : undefined,
      ])
    }
    if (rows.length < pageSize) {
      const from = rows.length > 0 ? rows[rows.length - 1]![0] : after
      for (const lsn of view.docIndex.lsnsAfter(doc, Math.max(from, view.docIndex.upto), pageSize - rows.length))
        page.push([lsn, view.events.atLsn(lsn)])
    }
    for (const [lsn, e] of page) {
      if (e === undefined) continue
      // Positions are not hashed: an event of another document at an indexed position (a run
      // moved by hand) is damage, never served as this document's.
      if (e.docId !== docId)
        throw new DruError(
          'CORRUPTION',
          `position ${lsn} holds ${e.origin}#${e.seq} of another document than ${docId}, whose index names it: the database file was altered`,
          { details: { origin: e.origin, seq: e.seq, lsn } },
        )
      yield e
    }
    // A page of fewer positions than asked (both parts read) is the last.
    if (page.length < pageSize) return
    after = page[page.length - 1]![0]
  }
}

/** See {@link EventStore.verifyLog}. */
export function verifyLog(
  view: LogView,
  onProgress?: (p: VerifyProgress) => void,
  progressEvery = 10_000,
): { events: number; origins: number } {
  let total = 0
  for (const [origin, head] of view.heads) {
    // A compacted origin's chain starts after its base, linking to the base's hash.
    const base = view.base.get(origin)
    let prev: string | undefined = base?.hash
    // From the base on, or from #1: a chain whose first events are gone is not whole.
    let expected: number | undefined = (base?.seq ?? 0) + 1
    let checked = 0
    let last: DruEvent | undefined
    let after = base?.seq ?? 0
    for (;;) {
      const events = view.events.range(origin, after + 1, head.seq, 1024)
      for (const e of events) {
        if (
          (expected !== undefined && e.seq !== expected) ||
          (prev !== undefined && e.prev !== prev) ||
          (e.seq === 1 && e.prev !== GENESIS_HASH)
        ) {
          throw new DruError('CORRUPTION', `${origin}#${e.seq} breaks its stored chain`, {
            details: { origin, seq: e.seq },
          })
        }
        prev = e.hash
        expected = e.seq + 1
        last = e
        checked++
        total++
        if (onProgress && total % progressEvery === 0) onProgress({ origin, checked })
      }
      if (events.length === 0 || events[events.length - 1]!.seq >= head.seq) break
      after = events[events.length - 1]!.seq
    }
    if (!last && head.seq > (base?.seq ?? 0)) {
      throw new DruError(
        'CORRUPTION',
        `${origin}#${(base?.seq ?? 0) + 1}–#${head.seq} are missing from the log although its head claims them`,
        {
          details: { origin, seq: (base?.seq ?? 0) + 1 },
        },
      )
    }
    if (!last && base && base.hash !== head.hash) {
      throw new DruError(
        'CORRUPTION',
        `the recorded head of ${origin} (#${head.seq}) does not match its compaction base`,
        { details: { origin, seq: head.seq } },
      )
    }
    if (last && (last.seq !== head.seq || last.hash !== head.hash)) {
      throw new DruError(
        'CORRUPTION',
        `the recorded head of ${origin} (#${head.seq}) does not match its last stored event (#${last.seq})`,
        {
          details: { origin, seq: head.seq },
        },
      )
    }
  }
  return { events: total, origins: view.heads.size }
}

/**
 * Positions for state derived from the log (documents asks these instead of reading
 * `events` itself): which documents changed after a position, which events a document has.
 */
export class DerivedLogReads {
  readonly #q: DerivedReads
  readonly #view: LogView

  constructor(db: Database.Database, view: LogView) {
    this.#q = prepareDerivedReads(db)
    this.#view = view
  }

  /** Distinct document ids of the stored events after `afterDocId`, in order, at most `limit`. */
  docIdsAfter(afterDocId: string, limit: number): string[] {
    return this.#view.docIndex.docIdsAfter(afterDocId, limit)
  }

  /** Position and document of each event stored after `afterLsn` up to `toLsn`, in order, at most `limit`. */
  docsChangedAfter(afterLsn: number, toLsn: number, limit: number): Array<{ lsn: number; docId: string }> {
    const out: Array<{ lsn: number; docId: string }> = []
    let after = afterLsn
    while (out.length < limit) {
      const runs = this.#q.runsAfter.all(after, toLsn, 64) as Array<[number, number, Buffer]>
      let progressed = false
      for (const [lsn, n, body] of runs) {
        // A damaged run names no document here; its events' own reads are CORRUPTION.
        const docs = docsOfRunOrNone(body, n)
        for (let i = 0; i < docs.length && out.length < limit; i++) {
          const at = lsn + i
          if (at <= after || at > toLsn) continue
          out.push({ lsn: at, docId: this.#view.events.docName(docs[i]!) ?? '' })
          progressed = true
        }
        if (out.length >= limit) break
      }
      if (!progressed || runs.length < 64) break
      after = out[out.length - 1]!.lsn
    }
    return out
  }

  /** Origin and seq of each event of `docId` stored after `afterLsn` (no change bytes, so nothing to verify). */
  eventSeqsForDoc(docId: string, afterLsn: number): Array<{ origin: string; seq: number }> {
    const doc = this.#view.stmt.docId.get(docId) as number | undefined
    if (doc === undefined) return []
    const index = this.#view.docIndex
    const out: Array<{ origin: string; seq: number }> = []
    const take = (lsn: number, run: RunRow | undefined): void => {
      const origin = run?.[RUN.origin]
      if (run === undefined || origin == null || lsn >= run[RUN.lsn] + run[RUN.n]) return
      // Positions are not hashed: the run must name this document there (a run moved by hand
      // would otherwise lend another document's event).
      if (docsOfRunOrNone(run[RUN.body], run[RUN.n])[lsn - run[RUN.lsn]] !== doc)
        throw new DruError(
          'CORRUPTION',
          `position ${lsn}, which the index of ${docId} names, holds an event of another document: the database file was altered`,
          { details: { origin, seq: run[RUN.seq] + (lsn - run[RUN.lsn]), lsn } },
        )
      out.push({ origin, seq: run[RUN.seq] + (lsn - run[RUN.lsn]) })
    }
    if (afterLsn < index.upto)
      for (const row of this.#view.stmt.docRange.all(doc, afterLsn, -1) as Array<[number, ...RunRow]>)
        take(row[0], row.slice(1) as unknown as RunRow)
    for (const lsn of index.lsnsAfter(doc, Math.max(afterLsn, index.upto)))
      take(lsn, this.#view.stmt.runAtLsn.get(lsn) as RunRow | undefined)
    return out
  }

  /**
   * How many events of `origin` for `docId` the log holds, stored or folded by compaction;
   * undefined when a compaction by an older release kept no envelopes of `origin`.
   */
  eventCountForDoc(docId: string, origin: string): number | undefined {
    const q = this.#q
    if (q.uncountable.get(origin) !== undefined) return undefined
    const doc = this.#view.stmt.docId.get(docId) as number | undefined
    const originId = q.originId.get(origin) as number | undefined
    const stored = doc === undefined || originId === undefined ? 0 : this.#view.docIndex.count(doc, originId)
    return stored + (q.countFolded.get(docId, origin) as number)
  }
}
