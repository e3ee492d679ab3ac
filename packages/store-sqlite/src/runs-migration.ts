import type Database from 'better-sqlite3'
import { MAX_RUN_BODY_BYTES, RunBodyWriter } from './run-body.js'

/**
 * The schema step 5 → 6 (migrations.ts lists it): a row per event in `log` becomes the log in
 * runs (run-body.ts).
 *
 * @module
 */

/** A row of schema 5's `log`, as the migration to schema 6 reads it. */
type SchemaV5Row = [
  lsn: number,
  originId: number,
  seq: number,
  doc: number,
  wall: number,
  counter: number,
  node: string | null,
  change: Buffer | string | number | null,
  prev: Buffer | string | number | null,
  hash: string,
  sig: Buffer | null,
  receivedAt: number,
]

/**
 * Schema 5 to 6, the log in runs (run-body.ts): consecutive rows of one origin and one commit —
 * seq after seq at consecutive positions, each `prev` the hash before it, one arrival time —
 * become one row of `runs`, up to its bounds, as the writer makes them; signatures move to `sigs`. Positions are kept, so `doc_events`, the inbox and every
 * stored position stay valid. Nothing is repaired: a row whose hash, prev or change is not what
 * dru writes starts a run of its own and is marked damaged (its reads stay CORRUPTION), and a
 * row whose ids no dictionary holds keeps them. `events`, the read-only view of schema 4, keeps
 * what SQL can read of a run (positions, origins, seqs, hashes, signatures).
 */
export function toRuns(db: Database.Database, pageRows: number): void {
  db.exec(`
    create table runs (
      lsn integer primary key,          -- position of the run's first event; its i-th is at lsn + i
      origin_id integer not null,       -- origin_ids.id
      seq integer not null,             -- the first event's seq; the i-th is seq + i
      n integer not null,               -- events in the run
      prev blob not null,               -- the first event's prev (32 bytes); each next one's is the hash before it
      body blob not null,               -- the events (run-body.ts)
      hashes blob not null,             -- their hashes, 32 bytes each, in order
      received_at integer not null
    );
    create unique index runs_origin_seq on runs(origin_id, seq);
    create table sigs (
      origin_id integer not null,
      seq integer not null,
      sig blob not null,
      primary key (origin_id, seq)
    ) without rowid;
  `)
  const page = db
    .prepare(
      `select lsn, origin_id, seq, doc, hlc_wall, hlc_counter, hlc_node, change, prev, case when typeof(hash) = 'blob' and length(hash) = 32
         then lower(hex(hash)) else '' end, sig, received_at from log where lsn > ? order by lsn limit ?`,
    )
    .raw()
  const insert = db.prepare(
    'insert into runs (lsn, origin_id, seq, n, prev, body, hashes, received_at) values (?, ?, ?, ?, ?, ?, ?, ?)',
  )
  const putSig = db.prepare('insert into sigs (origin_id, seq, sig) values (?, ?, ?)')
  const body = new RunBodyWriter()
  let run: { lsn: number; originId: number; seq: number; prev: Buffer | string | number | null; at: number } | undefined
  let last: { lsn: number; seq: number; hash: string } | undefined
  const close = (): void => {
    if (run && body.events > 0) {
      const n = body.events
      const { body: bytes, hashes } = body.take()
      insert.run(run.lsn, run.originId, run.seq, n, run.prev ?? Buffer.alloc(0), bytes, hashes, run.at)
    }
    run = undefined
  }
  let after = 0
  for (;;) {
    const rows = page.all(after, pageRows) as SchemaV5Row[]
    for (const [lsn, originId, seq, doc, wall, counter, node, change, prev, hash, sig, at] of rows) {
      // A stored HLC that did not parse is kept verbatim (wall -1, its text in node), as schema 4 kept it.
      const numbers =
        Number.isSafeInteger(doc) &&
        doc >= 0 &&
        (wall === -1
          ? typeof node === 'string'
          : Number.isSafeInteger(wall) && wall >= 0 && Number.isSafeInteger(counter) && counter >= 0)
      const whole = Buffer.isBuffer(change) && hash.length === 64 && numbers
      const prevHex = Buffer.isBuffer(prev) && prev.byteLength === 32 ? prev.toString('hex') : undefined
      const bytes = Buffer.isBuffer(change) ? change : Buffer.alloc(0)
      const hlc = numbers ? { wall, counter, node } : { wall: -1, counter: -1, node: '' }
      const continues =
        run !== undefined &&
        last !== undefined &&
        originId === run.originId &&
        lsn === last.lsn + 1 &&
        seq === last.seq + 1 &&
        prevHex === last.hash &&
        // Rows of one commit (one arrival time): a run keeps one received_at, as the writer does.
        at === run.at &&
        body.fits(bytes.byteLength, hlc) &&
        body.bytes < MAX_RUN_BODY_BYTES
      if (!continues) {
        close()
        run = { lsn, originId, seq, prev, at }
      }
      body.add(numbers ? doc : 0, hlc, bytes, hash, !whole)
      if (sig !== null) putSig.run(originId, seq, sig)
      // A damaged event ends its run: the next one's prev cannot be told from its hash.
      last = whole ? { lsn, seq, hash } : undefined
      if (!whole) close()
    }
    if (rows.length < pageRows) break
    after = rows[rows.length - 1]![0]
  }
  close()
  // `events` stays a read-only view for operators' SQL, of what SQL can read of a run: each
  // event's position, origin, seq, hashes and signature (its document, HLC and change are in
  // the body; dru reads them). At most 1,024 events a run, far above MAX_RUN_EVENTS.
  db.exec(`
    drop view events;
    drop table log;
    create view events as
      with recursive k(i) as (select 0 union all select i + 1 from k where i < 1023)
      select r.lsn + k.i as lsn, o.origin, r.seq + k.i as seq,
        lower(hex(case when k.i = 0 then r.prev else substr(r.hashes, k.i * 32 - 31, 32) end)) as prev,
        lower(hex(substr(r.hashes, k.i * 32 + 1, 32))) as hash, s.sig, r.received_at
      from runs r join k on k.i < r.n left join origin_ids o on o.id = r.origin_id
        left join sigs s on s.origin_id = r.origin_id and s.seq = r.seq + k.i;
  `)
}
