import { mkdtempSync, rmSync } from 'node:fs'
import Database from 'better-sqlite3'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DruError, type DruEvent } from '@dru/core'
import { EventStore, type OpenStoreOptions } from '../src/index.js'
import { RunBodyWriter, decodeRunBody, docsOfRunBody } from '../src/run-body.js'
import { encodeStoredHlc, type StoredHlc } from '../src/stored-form.js'

/** A temp folder removed by the returned cleanup. */
export function tempDir(prefix = 'dru-store-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

export function memStore(druId: string, options: Partial<OpenStoreOptions> = {}): EventStore {
  return EventStore.open({ path: ':memory:', druId, random: sequentialIncarnations(), ...options })
}

export const bytes = (...xs: number[]) => new Uint8Array(xs)

/** Events of origin a/1, as another DRU would send them: one per entry of `docs`, in order. */
export function remoteEvents(docs: string[]): DruEvent[] {
  const a = memStore('a')
  for (const [i, d] of docs.entries()) a.append(d, bytes(i))
  const events = [...a.eventsMissing({})].flat()
  a.close()
  return events
}

/** Everything observable about a store, to prove a failed call changed nothing. */
export function snapshotState(store: EventStore, appTable?: string) {
  return {
    fingerprint: store.fingerprint(),
    count: store.count(),
    lastLsn: store.lastLsn(),
    app: appTable ? store.db.prepare(`select * from ${appTable} order by rowid`).all() : [],
  }
}

/** Moves every event `from` has and `to` lacks, in bounded batches. */
export function exchange(from: EventStore, to: EventStore, maxBatchBytes = 1 << 20): number {
  let n = 0
  for (const batch of from.eventsMissing(to.vv(), { maxBatchBytes })) n += to.ingest(batch).stored.length
  return n
}

/**
 * A `random` source that makes a store's fresh incarnations 1, 2, 3… (each open draws the
 * next one that the log has not used), so tests can name origins like `a/1`. Production
 * stores draw 53 random bits instead.
 */
export function sequentialIncarnations(start = 1): () => number {
  let next = start
  let high = true
  return () => {
    high = !high
    return high ? next++ : 0
  }
}

/** The code of the DruError `fn` throws, undefined when it returns; anything else is rethrown. */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    if (err instanceof DruError) return err.code
    throw err
  }
  return undefined
}

/** The stored run holding `(origin, seq)`: its row as it is on disk (schema 6, run-body.ts). */
export interface StoredRun {
  lsn: number
  originId: number
  seq: number
  n: number
  prev: Buffer
  body: Buffer
  hashes: Buffer
}

/** A stored run's events as its row holds them (decoded, not checked). */
export function eventsOfStored(r: Pick<StoredRun, 'lsn' | 'seq' | 'n' | 'prev' | 'body' | 'hashes'>, origin: string) {
  return decodeRunBody(r.body, r.hashes.toString('hex'), r.n, r.lsn, r.seq, r.prev.toString('hex'), origin)
}

export function runHolding(db: EventStore['db'], origin: string, seq: number): StoredRun {
  const run = db
    .prepare(
      `select lsn, origin_id as originId, seq, n, prev, body, hashes from runs
         where origin_id = (select id from origin_ids where origin = ?) and seq <= ? order by seq desc limit 1`,
    )
    .get(origin, seq) as StoredRun | undefined
  if (!run || seq >= run.seq + run.n) throw new Error(`no run holds ${origin}#${seq}`)
  return run
}

/** Overwrites columns of the run starting at `lsn`, as an operator with the file could. */
export function setRun(
  db: EventStore['db'],
  lsn: number,
  values: Partial<Record<'prev' | 'body' | 'hashes' | 'n' | 'seq', unknown>>,
): void {
  for (const [column, value] of Object.entries(values))
    db.prepare(`update runs set ${column} = ? where lsn = ?`).run(value, lsn)
}

/**
 * Every stored event's position, origin, seq and document, from the rows themselves: the
 * `events` view gives the first three, each run's body its documents (run-body.ts).
 */
export function storedPositions(
  db: EventStore['db'],
): Array<{ lsn: number; origin: string; seq: number; doc_id: string }> {
  const runs = db
    .prepare(
      'select r.lsn, o.origin, r.seq, r.n, r.body from runs r join origin_ids o on o.id = r.origin_id order by r.lsn',
    )
    .all() as Array<{ lsn: number; origin: string; seq: number; n: number; body: Buffer }>
  const name = db.prepare('select doc_id from doc_ids where id = ?').pluck()
  return runs.flatMap((r) =>
    docsOfRunBody(r.body, r.n).map((doc, i) => ({
      lsn: r.lsn + i,
      origin: r.origin,
      seq: r.seq + i,
      doc_id: name.get(doc) as string,
    })),
  )
}

/** An event of a run as {@link rewriteRun} hands it out to be changed. */
export interface EditableEvent {
  doc: number
  hlc: StoredHlc
  change: Uint8Array
  hash: string
  damaged: boolean
}

/**
 * Rewrites the run holding `(origin, seq)` with `edit` applied to its decoded events: an
 * operator (or an attacker) with the file and dru's encoder, who can change any field while
 * keeping the body well-formed.
 */
export function rewriteRun(
  db: EventStore['db'],
  origin: string,
  seq: number,
  edit: (events: EditableEvent[]) => void,
): void {
  const run = runHolding(db, origin, seq)
  const decoded = eventsOfStored(run, origin)
  const events: EditableEvent[] = decoded.map((e) => ({
    doc: e.doc,
    hlc: encodeStoredHlc(e.hlc, origin),
    change: e.change,
    hash: e.hash,
    damaged: e.damaged,
  }))
  edit(events)
  const w = new RunBodyWriter()
  for (const e of events) w.add(e.doc, e.hlc, e.change, e.hash, e.damaged)
  const { body, hashes } = w.take()
  setRun(db, run.lsn, { body, hashes, n: events.length })
}

/** Replaces the change of the stored event `(origin, seq)`, leaving its hash: what a flipped byte on disk does. */
export function setChange(db: EventStore['db'], origin: string, seq: number, change: Uint8Array): void {
  const first = runHolding(db, origin, seq).seq
  rewriteRun(db, origin, seq, (events) => {
    events[seq - first]!.change = change
  })
}

/**
 * Rewrites a closed file of this release as the release before schema 6 wrote it (a row per
 * event in `log`, the `events` view of schema 4), events, positions and everything else
 * unchanged: for tests of the 5 → 6 migration on files larger than the committed fixture.
 */
export function toSchema5(path: string): void {
  const db = new Database(path)
  try {
    db.transaction(() => {
      db.exec(`
        create table log (
          lsn integer primary key, origin_id integer not null, seq integer not null, doc integer not null,
          hlc_wall integer not null, hlc_counter integer not null, hlc_node text, change blob not null,
          prev blob not null, hash blob not null, sig blob, received_at integer not null, applied_at integer
        );
        create unique index log_origin_seq on log(origin_id, seq);
      `)
      const insert = db.prepare('insert into log values (?, ?, ?, ?, ?, ?, ?, ?, unhex(?), unhex(?), ?, ?, ?)')
      const sig = db.prepare('select sig from sigs where origin_id = ? and seq = ?').pluck()
      const runs = db
        .prepare(
          'select r.lsn, r.origin_id, o.origin, r.seq, r.n, r.prev, r.body, r.hashes, r.received_at from runs r join origin_ids o on o.id = r.origin_id order by r.lsn',
        )
        .all() as Array<{
        lsn: number
        origin_id: number
        origin: string
        seq: number
        n: number
        prev: Buffer
        body: Buffer
        hashes: Buffer
        received_at: number
      }>
      for (const r of runs) {
        for (const e of eventsOfStored(r, r.origin)) {
          const hlc = encodeStoredHlc(e.hlc, r.origin)
          const at = r.received_at
          insert.run(
            e.lsn,
            r.origin_id,
            e.seq,
            e.doc,
            hlc.wall,
            hlc.counter,
            hlc.node,
            e.change,
            e.prev,
            e.hash,
            sig.get(r.origin_id, e.seq) ?? null,
            at,
            at,
          )
        }
      }
      db.exec(`
        drop view events;
        drop table runs;
        drop table sigs;
        create view events as
          select l.lsn, o.origin, l.seq,
            case when l.hlc_wall < 0 then l.hlc_node else printf('%015d-%010d-%s', l.hlc_wall, l.hlc_counter, coalesce(l.hlc_node, o.origin)) end as hlc,
            d.doc_id, l.change, lower(hex(l.prev)) as prev, lower(hex(l.hash)) as hash, l.sig, l.received_at, l.applied_at
          from log l left join origin_ids o on o.id = l.origin_id left join doc_ids d on d.id = l.doc;
        update meta set value = 5 where key = 'schema_version';
      `)
    })()
  } finally {
    db.close()
  }
}
