import { copyFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { GENESIS_HASH, encodeHlc, sealEvent, type DruEvent, type Origin } from '@dru/core'
import { EventStore, SCHEMA_VERSION, migrate } from '../src/index.js'
import { MIGRATIONS, type SchemaV3EventRow } from '../src/migrations.js'
import { prepareLogStatements } from '../src/statements.js'
import { StoredEvents } from '../src/stored-events.js'
import { decodeStoredHash, encodeStoredHash, encodeStoredHlc, storedHlcSql } from '../src/stored-form.js'
import {
  bytes,
  codeOf,
  eventsOfStored,
  memStore,
  runHolding,
  sequentialIncarnations,
  tempDir,
  toSchema5,
} from './helpers.js'

const FIXTURE = fileURLToPath(new URL('./fixtures/schema-v3.db', import.meta.url))

const cleanups: Array<() => void> = []
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!()
})

type OldEventRow = SchemaV3EventRow

const OLD_COLUMNS = 'lsn, origin, seq, hlc, doc_id, change, prev, hash, sig, received_at, applied_at'

/** A copy of the fixture written by the release before schema 4, and everything it holds, read with plain SQL. */
function fixtureCopy() {
  const { dir, cleanup } = tempDir('dru-migration-')
  cleanups.push(cleanup)
  const path = join(dir, 'v3.db')
  copyFileSync(FIXTURE, path)
  const db = new Database(path, { readonly: true })
  const old = {
    version: db.prepare("select value from meta where key = 'schema_version'").pluck().get() as number,
    events: db.prepare(`select ${OLD_COLUMNS} from events order by lsn`).all() as OldEventRow[],
    heads: db.prepare('select * from origins order by origin').all(),
    base: db.prepare('select * from log_base order by origin').all() as Array<{
      origin: string
      seq: number
      hash: string
      hlc: string
    }>,
    folded: db.prepare('select * from folded order by origin, seq').all() as Array<{ origin: string; seq: number }>,
    peers: db.prepare('select * from peers order by peer_id').all(),
    inbox: db.prepare('select * from inbox order by id').all(),
    meta: db
      .prepare("select key, value from meta where key not like 'schema_version%' and key <> 'clean_close' order by key")
      .all(),
  }
  db.close()
  return { path, old }
}

/** The columns the `events` view keeps in schema 6 (run-body.ts: the rest is in a run's body). */
const VIEW_COLUMNS = 'lsn, origin, seq, prev, hash, sig, received_at'
const viewOf = (r: OldEventRow) => ({
  lsn: r.lsn,
  origin: r.origin,
  seq: r.seq,
  prev: r.prev,
  hash: r.hash,
  sig: r.sig,
  received_at: r.received_at,
})

const asEvent = (r: OldEventRow): DruEvent => ({
  origin: r.origin as Origin,
  seq: r.seq,
  hlc: r.hlc,
  docId: r.doc_id,
  change: r.change,
  prev: r.prev,
  hash: r.hash,
  ...(r.sig ? { sig: r.sig } : {}),
})

describe('migration to the binary storage layout (schema 3 → 4, then on to 6)', () => {
  it('the fixture was written by the release before it', () => {
    const { old } = fixtureCopy()
    expect(old.version).toBe(3)
    expect(SCHEMA_VERSION).toBe(6)
    // What the fixture covers: signed and unsigned origins, a foreign HLC node, a folded prefix, an owed event.
    expect(new Set(old.events.map((e) => e.origin))).toEqual(new Set(['fx/1', 'fx/2', 'peer/3']))
    expect(old.events.some((e) => e.sig !== null)).toBe(true)
    expect(old.events.some((e) => !e.hlc.endsWith(`-${e.origin}`))).toBe(true)
    expect(old.folded.length).toBeGreaterThan(0)
    expect(old.inbox.length).toBe(1)
  })

  it('every event reads back identical (hash checked), chains verify, heads, base, folded envelopes, peers, inbox and meta are kept', () => {
    const { path, old } = fixtureCopy()
    const s = EventStore.open({ path, druId: 'fx', durability: 'process' })
    cleanups.push(() => s.close())
    expect(s.db.prepare("select value from meta where key = 'schema_version'").pluck().get()).toBe(SCHEMA_VERSION)
    expect(s.count()).toBe(old.events.length)
    for (const r of old.events) expect(s.getEvent(r.origin, r.seq)).toEqual(asEvent(r))
    // The compatibility view shows what SQL can read of a run, byte for byte: positions, hashes, signatures, times.
    expect(s.db.prepare(`select ${VIEW_COLUMNS} from events order by lsn`).all()).toEqual(old.events.map(viewOf))
    expect(s.verifyLog()).toEqual({ events: old.events.length, origins: 3 })
    const heads = old.heads as Array<{ origin: string; seq: number; hash: string }>
    expect(s.fingerprint().heads).toEqual(Object.fromEntries(heads.map((h) => [h.origin, h.hash])))
    expect(s.base()).toEqual(
      Object.fromEntries(old.base.map((b) => [b.origin, { seq: b.seq, hash: b.hash, hlc: b.hlc }])),
    )
    expect(s.db.prepare('select * from folded order by origin, seq').all()).toEqual(old.folded)
    expect(s.folded('fx/1', 1, 1000)).toHaveLength(old.folded.length)
    expect(s.db.prepare('select * from peers order by peer_id').all()).toEqual(old.peers)
    expect(s.db.prepare('select * from inbox order by id').all()).toEqual(old.inbox)
    for (const m of old.meta as Array<{ key: string; value: unknown }>) {
      if (m.key !== 'incarnation' && m.key !== 'previous_origin') expect(s.getMeta(m.key as never)).toEqual(m.value)
    }
    expect(s.lastLsn()).toBeGreaterThanOrEqual(Math.max(...old.events.map((e) => e.lsn)))
    // Per document: the same events in the same local order, and the same counts.
    for (const docId of new Set(old.events.map((e) => e.doc_id))) {
      const expected = old.events.filter((e) => e.doc_id === docId)
      expect([...s.eventsForDoc(docId)].map((e) => [e.lsn, e.hash])).toEqual(expected.map((e) => [e.lsn, e.hash]))
      expect(s.eventSeqsForDoc(docId, 0).sort((a, b) => a.seq - b.seq || (a.origin < b.origin ? -1 : 1))).toEqual(
        expected
          .map((e) => ({ origin: e.origin, seq: e.seq }))
          .sort((a, b) => a.seq - b.seq || (a.origin < b.origin ? -1 : 1)),
      )
    }
    expect(s.docIdsAfter('', 100)).toEqual([...new Set(old.events.map((e) => e.doc_id))].sort())
    // The document index was built by the migration, in bulk, up to the last position.
    expect(s.db.prepare('select count(*) from doc_events').pluck().get()).toBe(old.events.length)
    expect(s.getMeta('doc_index_lsn')).toBe(Math.max(...old.events.map((e) => e.lsn)))
    // The owed event is still there for its handler's retry.
    expect(s.inbox.list({ handler: 'mailer' })).toHaveLength(1)
    expect(s.getEvent('peer/3', 5)?.docId).toBe('poison')
  })

  it('the stored form is the compact one: runs of consecutive events, 32-byte hashes, integer HLCs, dictionary ids', () => {
    const { path, old } = fixtureCopy()
    const s = EventStore.open({ path, druId: 'fx', durability: 'process' })
    cleanups.push(() => s.close())
    const runs = s.db
      .prepare(
        'select r.lsn, o.origin, r.seq, r.n, r.prev, r.body, r.hashes from runs r join origin_ids o on o.id = r.origin_id',
      )
      .all() as Array<{
      lsn: number
      origin: string
      seq: number
      n: number
      prev: Buffer
      body: Buffer
      hashes: Buffer
    }>
    expect(runs.reduce((n, r) => n + r.n, 0)).toBe(old.events.length)
    // Consecutive events of an origin share a row: fewer rows than events.
    expect(runs.length).toBeLessThan(old.events.length)
    const nodes: string[] = []
    for (const r of runs) {
      expect(r.prev.byteLength).toBe(32)
      expect(r.hashes.byteLength).toBe(32 * r.n)
      for (const e of eventsOfStored(r, r.origin)) if (!e.hlc.endsWith(`-${r.origin}`)) nodes.push(e.hlc.slice(27))
    }
    expect(nodes).toEqual(['elsewhere/77'])
    expect(old.events.some((e) => e.hlc.slice(16, 26) === '9999999999')).toBe(true)
  })

  it('the migrated log goes on: appends, ingests, compacts, bootstraps a newcomer from its folded envelopes, reopens', () => {
    const { path, old } = fixtureCopy()
    let s = EventStore.open({ path, druId: 'fx', durability: 'process' })
    const mine = s.append('ünïcødé-文档', Buffer.from('after the migration'))
    expect(mine.origin).not.toMatch(/^fx\/[12]$/)
    // The remote origin continues its chain from the migrated head.
    const head3 = s.head('peer/3')!
    const next = sealEvent({
      origin: 'peer/3' as Origin,
      seq: head3.seq + 1,
      hlc: encodeHlc({ wall: 1_764_000_001_000, counter: 0, node: 'peer/3' }),
      docId: 'notes',
      change: Buffer.from('more'),
      prev: head3.hash,
    })
    expect(s.ingest([next]).stored).toHaveLength(1)
    // Compaction continues on the second incarnation.
    expect(s.raiseBase({ 'fx/2': 6 })).toEqual(['fx/2'])
    expect(s.deleteBelowBase()).toBe(6)
    s.close()
    s = EventStore.open({ path, druId: 'fx', durability: 'process' })
    cleanups.push(() => s.close())
    expect(s.verifyLog().events).toBe(old.events.length + 2 - 6)
    expect(s.getEvent(mine.origin, 1)).toEqual(mine)
    // A newcomer rebuilds fx/1's folded prefix from the migrated envelopes plus the change
    // bytes (the fixture writer's, regenerated here as a snapshot would carry them).
    const docs = ['notes', 'ünïcødé-文档', 'x'.repeat(256), 'a/b:c', 'doc-0']
    const change = (i: number) => Buffer.from(Array.from({ length: 3 + (i % 40) }, (_, k) => (i * 31 + k) & 0xff))
    const byDoc = new Map<string, Buffer[]>()
    for (let i = 0; i < 30; i++) {
      for (let k = 0; k <= i % 4; k++) {
        const d = docs[(i + k) % docs.length]!
        byDoc.set(d, [...(byDoc.get(d) ?? []), change(i * 4 + k)])
      }
    }
    const c = memStore('c')
    cleanups.push(() => c.close())
    for (const [d, changes] of byDoc) c.stageChanges(d, changes)
    const rebuilt = c.rebuildFolded(s.folded('fx/1', 1, 1000))
    expect(rebuilt).toHaveLength(40)
    c.ingest(rebuilt)
    expect(c.head('fx/1')).toEqual({ seq: 40, hash: s.base()['fx/1']!.hash })
    for (const batch of s.eventsMissing(c.vv(), { belowBase: 'skip' })) c.ingest(batch)
    expect(c.head('fx/1')).toEqual(s.head('fx/1'))
  })

  it('a damaged row stays damaged: a migrated event whose bytes were altered is CORRUPTION, never repaired', () => {
    const { path } = fixtureCopy()
    const db = new Database(path)
    db.prepare("update events set hash = upper(hash) where origin = 'fx/2' and seq = 3").run()
    db.prepare("update events set hlc = 'yesterday' where origin = 'fx/2' and seq = 4").run()
    db.prepare("update events set prev = substr(prev, 2) where origin = 'fx/2' and seq = 5").run()
    db.close()
    const s = EventStore.open({ path, druId: 'fx', durability: 'process' })
    cleanups.push(() => s.close())
    for (const seq of [3, 4, 5]) {
      let code: string | undefined
      try {
        s.getEvent('fx/2', seq)
      } catch (err) {
        code = (err as { code?: string }).code
      }
      expect(code).toBe('CORRUPTION')
    }
    // The run keeps what the old file held.
    const run = runHolding(s.db, 'fx/2', 4)
    const kept = eventsOfStored(run, 'fx/2')
    expect(kept.find((e) => e.seq === 4)?.hlc).toBe('yesterday')
  })
})

describe('chain heads read from the log (schema 4 → 5)', () => {
  const FIXTURE_V4 = fileURLToPath(new URL('./fixtures/schema-v4.db', import.meta.url))

  /** The heads a schema-4 file stored apart, read with plain SQL. */
  function storedHeads(path: string): Array<{ origin: string; seq: number; hash: string; hlc: string }> {
    const db = new Database(path, { readonly: true })
    try {
      return db.prepare('select origin, seq, hash, hlc from origins order by origin').all() as Array<{
        origin: string
        seq: number
        hash: string
        hlc: string
      }>
    } finally {
      db.close()
    }
  }

  const schemaOf = (path: string) => {
    const db = new Database(path, { readonly: true })
    try {
      return {
        version: db.prepare("select value from meta where key = 'schema_version'").pluck().get(),
        origins: db.prepare("select count(*) from sqlite_master where name = 'origins'").pluck().get(),
      }
    } finally {
      db.close()
    }
  }

  it('a file written by the release before (heads in `origins`, a base equal to its head with rows left): same heads, table gone', () => {
    const { dir, cleanup } = tempDir('dru-migration-v4-')
    cleanups.push(cleanup)
    const path = join(dir, 'v4.db')
    copyFileSync(FIXTURE_V4, path)
    expect(schemaOf(path)).toEqual({ version: 4, origins: 1 })
    const heads = storedHeads(path)
    expect(heads.map((h) => h.origin)).toEqual(['fx/1', 'fx/2', 'peer/3'])
    const s = EventStore.open({ path, druId: 'fx', durability: 'process' })
    cleanups.push(() => s.close())
    expect(s.fingerprint().heads).toEqual(Object.fromEntries(heads.map((h) => [h.origin, h.hash])))
    expect(s.vv()).toEqual(Object.fromEntries(heads.map((h) => [h.origin, h.seq])))
    // fx/2 was compacted up to its head with rows at and below the base still there.
    expect(s.base()['fx/2']?.seq).toBe(12)
    expect(s.retired().map((r) => r.origin)).toEqual(['fx/2'])
    expect(s.verifyLog().origins).toBe(3)
    // The clock's high water is still the newest head's HLC.
    const next = s.append('notes', Buffer.from('after'))
    for (const h of heads) expect(next.hlc.slice(0, 26) > h.hlc.slice(0, 26)).toBe(true)
    expect(s.db.prepare("select count(*) from sqlite_master where name = 'origins'").pluck().get()).toBe(0)
  })

  it('a file whose stored head disagrees with its log is refused (CORRUPTION) and left as it was', () => {
    for (const alter of [
      "update origins set seq = seq - 1 where origin = 'peer/3'",
      "update origins set hash = replace(hash, 'e', 'f') where origin = 'fx/1'",
      "delete from origins where origin = 'fx/2'",
      "insert into origins (origin, seq, hash, hlc) values ('ghost/1', 1, 'ab', 'x')",
    ]) {
      const { dir, cleanup } = tempDir('dru-migration-v4-')
      cleanups.push(cleanup)
      const path = join(dir, 'v4.db')
      copyFileSync(FIXTURE_V4, path)
      const db = new Database(path)
      db.prepare(alter).run()
      db.close()
      const before = storedHeads(path)
      expect(
        codeOf(() => EventStore.open({ path, druId: 'fx', durability: 'process' })),
        alter,
      ).toBe('CORRUPTION')
      expect(schemaOf(path)).toEqual({ version: 4, origins: 1 })
      expect(storedHeads(path)).toEqual(before)
    }
  })

  it('heads, bases and the clock survive a reopen after any mix of commits, ingests, compaction and reopens (property)', () => {
    type Op =
      | { kind: 'append'; n: number }
      | { kind: 'ingest'; n: number }
      | { kind: 'compact'; remote: boolean; keep: number }
      | { kind: 'delete'; limit: number }
      | { kind: 'reopen' }
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constant('append' as const), n: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ kind: fc.constant('ingest' as const), n: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ kind: fc.constant('compact' as const), remote: fc.boolean(), keep: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ kind: fc.constant('delete' as const), limit: fc.integer({ min: 0, max: 5 }) }),
      fc.constant({ kind: 'reopen' as const }),
    )
    fc.assert(
      fc.property(fc.array(op, { maxLength: 14 }), fc.boolean(), (ops, asV4) => {
        const { dir, cleanup } = tempDir('dru-heads-')
        try {
          const path = join(dir, 'h.db')
          const random = sequentialIncarnations()
          const open = () => EventStore.open({ path, druId: 'h', random, durability: 'process' })
          let s = open()
          let remote = { seq: 0, hash: GENESIS_HASH }
          for (const o of ops) {
            if (o.kind === 'append')
              s.transact((tx) => Array.from({ length: o.n }, (_, i) => tx.append(`d${i}`, bytes(i))))
            else if (o.kind === 'ingest') {
              const batch: DruEvent[] = []
              for (let i = 0; i < o.n; i++) {
                const e = sealEvent({
                  origin: 'r/1' as Origin,
                  seq: remote.seq + 1,
                  hlc: encodeHlc({ wall: 1_764_000_000_000 + remote.seq, counter: 0, node: 'r/1' }),
                  docId: `d${i}`,
                  change: bytes(remote.seq),
                  prev: remote.hash,
                })
                remote = { seq: e.seq, hash: e.hash }
                batch.push(e)
              }
              s.ingest(batch)
            } else if (o.kind === 'compact') {
              const origin = o.remote ? 'r/1' : (s.previousOrigin ?? s.origin)
              const head = s.head(origin)
              if (head) s.raiseBase({ [origin]: Math.max(0, head.seq - o.keep) })
            } else if (o.kind === 'delete') s.deleteBelowBase(o.limit)
            else {
              s.close()
              s = open()
            }
          }
          const fp = s.fingerprint()
          const base = s.base()
          const newest = Object.keys(fp.heads).map(
            (origin) => s.getEvent(origin, fp.vv[origin]!)?.hlc ?? base[origin]!.hlc,
          )
          s.close()
          if (asV4) {
            // The same file as schema 4 wrote it: a row per event, the heads in their own table.
            toSchema5(path)
            const db = new Database(path)
            db.exec(
              'create table origins (origin text primary key, seq integer not null, hash text not null, hlc text not null) without rowid',
            )
            const insert = db.prepare('insert into origins (origin, seq, hash, hlc) values (?, ?, ?, ?)')
            Object.keys(fp.heads).forEach((origin, i) => insert.run(origin, fp.vv[origin], fp.heads[origin], newest[i]))
            db.prepare("update meta set value = 4 where key = 'schema_version'").run()
            db.close()
          }
          s = open()
          try {
            expect(s.fingerprint()).toEqual(fp)
            expect(s.base()).toEqual(base)
            const next = s.append('after', bytes(1))
            for (const hlc of newest) expect(next.hlc.slice(0, 26) >= hlc.slice(0, 26)).toBe(true)
          } finally {
            s.close()
          }
          if (asV4) expect(schemaOf(path)).toEqual({ version: SCHEMA_VERSION, origins: 0 })
        } finally {
          cleanup()
        }
      }),
      { numRuns: Number(process.env.DRU_PROPERTY_RUNS ?? 60) },
    )
  })
})

describe('the stored form round-trips', () => {
  const hex32 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'))
  const node = fc.oneof(fc.constant('o/1'), fc.string({ minLength: 1, maxLength: 96 }))
  const hlcText = fc
    .tuple(fc.integer({ min: 0, max: 10 ** 15 - 1 }), fc.integer({ min: 0, max: 10 ** 10 - 1 }), node)
    .map(([wall, counter, n]) => encodeHlc({ wall, counter, node: n }))

  it('hashes: 32 bytes and back; anything else never decodes to a hash', () => {
    fc.assert(
      fc.property(hex32, (h) => {
        expect(encodeStoredHash(h).byteLength).toBe(32)
        expect(decodeStoredHash(encodeStoredHash(h))).toBe(h)
      }),
      { seed: 41 },
    )
    expect(decodeStoredHash(encodeStoredHash('A'.repeat(64)))).toBeUndefined()
    expect(decodeStoredHash('ab'.repeat(32))).toBeUndefined()
  })

  it('HLCs: any text, exactly (integers for every encoded HLC, the node only when it is not the origin)', () => {
    const db = new Database(':memory:')
    const decode = db.prepare(`select ${storedHlcSql({ wall: '@w', counter: '@c', node: '@n', origin: '@o' })}`).pluck()
    fc.assert(
      fc.property(fc.oneof(hlcText, fc.string()), (text) => {
        const s = encodeStoredHlc(text, 'o/1')
        expect(decode.get({ w: s.wall, c: s.counter, n: s.node, o: 'o/1' })).toBe(text)
        if (text.endsWith('-o/1') && s.wall >= 0) expect(s.node).toBeNull()
      }),
      { seed: 42, numRuns: 500 },
    )
    db.close()
  })

  it('HLCs: the node is left out only when it is exactly the origin', () => {
    for (const node of ['o/1', 'o/1x', 'xo/1', 'o/', 'O/1', 'o/10', ' o/1']) {
      const text = encodeHlc({ wall: 5, counter: 7, node })
      expect(encodeStoredHlc(text, 'o/1')).toEqual({ wall: 5, counter: 7, node: node === 'o/1' ? null : node })
    }
  })

  it('HLCs: every encoded HLC is stored as its integers; a near miss (non-digit, no dash, no node) verbatim', () => {
    fc.assert(
      fc.property(hlcText, fc.nat(), fc.constantFrom('x', '٣', '-', ' '), (text, at, bad) => {
        const node = text.slice(27)
        expect(encodeStoredHlc(text, 'o/1')).toEqual({
          wall: Number(text.slice(0, 15)),
          counter: Number(text.slice(16, 26)),
          node: node === 'o/1' ? null : node,
        })
        // Any character of the two numbers or their dashes replaced: not an encoded HLC any more.
        const i = at % 27
        if (text[i] !== bad) {
          const near = text.slice(0, i) + bad + text.slice(i + 1)
          expect(encodeStoredHlc(near, 'o/1')).toEqual({ wall: -1, counter: -1, node: near })
        }
        expect(encodeStoredHlc(text.slice(0, 27), 'o/1').wall).toBe(-1)
      }),
      { seed: 43, numRuns: 300 },
    )
  })

  it('rows written by the old schema: migrated, every one reads back the same through the store and the view (property)', () => {
    const event = fc.record({
      origin: fc.constantFrom('a/1', 'b/22', 'c-d.e_f/9007199254740991'),
      hlc: hlcText,
      docId: fc.string({ minLength: 1, maxLength: 256 }),
      change: fc.uint8Array({ maxLength: 64 }),
      sig: fc.option(fc.uint8Array({ minLength: 1, maxLength: 128 }), { nil: undefined }),
    })
    fc.assert(
      fc.property(fc.array(event, { maxLength: 40 }), (specs) => {
        const db = new Database(':memory:')
        migrate(db, MIGRATIONS.slice(0, 3))
        const insert = db.prepare(`insert into events (${OLD_COLUMNS}) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
        const chains = new Map<string, { seq: number; hash: string }>()
        const written: OldEventRow[] = []
        specs.forEach((spec, i) => {
          const at = chains.get(spec.origin) ?? { seq: 0, hash: GENESIS_HASH }
          const e = sealEvent({
            origin: spec.origin as Origin,
            seq: at.seq + 1,
            hlc: spec.hlc,
            docId: spec.docId,
            change: spec.change,
            prev: at.hash,
          })
          chains.set(spec.origin, { seq: e.seq, hash: e.hash })
          const row: OldEventRow = {
            lsn: i * 3 + 1,
            origin: e.origin,
            seq: e.seq,
            hlc: e.hlc,
            doc_id: e.docId,
            change: Buffer.from(e.change),
            prev: e.prev,
            hash: e.hash,
            sig: spec.sig ? Buffer.from(spec.sig) : null,
            received_at: 1000 + i,
            applied_at: i % 2 === 0 ? 1000 + i : null,
          }
          insert.run(Object.values(row))
          written.push(row)
        })
        // The heads as schema 3 stored them, so the file passes 4 → 5's check.
        const head = db.prepare('insert into origins (origin, seq, hash, hlc) values (?, ?, ?, ?)')
        for (const [origin, h] of chains)
          head.run(origin, h.seq, h.hash, written.findLast((r) => r.origin === origin)!.hlc)
        migrate(db, MIGRATIONS)
        expect(db.prepare(`select ${VIEW_COLUMNS} from events order by lsn`).all()).toEqual(written.map(viewOf))
        const events = new StoredEvents(db, prepareLogStatements(db))
        for (const r of written) expect(events.at(r.origin, r.seq)).toEqual(asEvent(r))
        db.close()
      }),
      { seed: 43, numRuns: 60 },
    )
  })
})

describe('the log in runs (schema 5 → 6)', () => {
  const FIXTURE_V5 = fileURLToPath(new URL('./fixtures/schema-v5.db', import.meta.url))
  const V5_COLUMNS = 'lsn, origin, seq, hlc, doc_id, change, prev, hash, sig, received_at, applied_at'

  /** A copy of a schema-5 file and everything it holds, read with plain SQL. */
  function v5Copy(from = FIXTURE_V5) {
    const { dir, cleanup } = tempDir('dru-migration-v5-')
    cleanups.push(cleanup)
    const path = join(dir, 'v5.db')
    copyFileSync(from, path)
    const db = new Database(path, { readonly: true })
    const old = {
      version: db.prepare("select value from meta where key = 'schema_version'").pluck().get() as number,
      events: db.prepare(`select ${V5_COLUMNS} from events order by lsn`).all() as OldEventRow[],
      docEvents: db.prepare('select * from doc_events order by doc, lsn').all(),
      rest: ['log_base', 'folded', 'peers', 'inbox', 'origin_ids', 'doc_ids'].map((t) =>
        db.prepare(`select * from ${t} order by 1, 2`).all(),
      ),
    }
    db.close()
    return { path, old }
  }

  it('the fixture was written by the release before it: a row per event in `log`', () => {
    const { old, path } = v5Copy()
    expect(old.version).toBe(5)
    const db = new Database(path, { readonly: true })
    expect(db.prepare("select count(*) from sqlite_master where name in ('log', 'runs')").pluck().get()).toBe(1)
    db.close()
    expect(old.events.length).toBeGreaterThan(80)
    expect(old.events.some((e) => e.sig !== null)).toBe(true)
  })

  it('every event reads back identical, in runs; positions, the document index and every other table are kept', () => {
    const { path, old } = v5Copy()
    const s = EventStore.open({ path, druId: 'fx', durability: 'process' })
    cleanups.push(() => s.close())
    expect(s.getMeta('schema_version' as never)).toBe(SCHEMA_VERSION)
    for (const r of old.events) expect(s.getEvent(r.origin, r.seq)).toEqual(asEvent(r))
    expect(s.db.prepare(`select ${VIEW_COLUMNS} from events order by lsn`).all()).toEqual(old.events.map(viewOf))
    // verifyLog walks what is above each base (fx/2's deletion was cut short with rows at and below it).
    const base = s.base()
    expect(s.verifyLog().events).toBe(old.events.filter((e) => e.seq > (base[e.origin]?.seq ?? 0)).length)
    for (const docId of new Set(old.events.map((e) => e.doc_id))) {
      const expected = old.events.filter((e) => e.doc_id === docId)
      expect([...s.eventsForDoc(docId)].map((e) => [e.lsn, e.hash])).toEqual(expected.map((e) => [e.lsn, e.hash]))
    }
    expect(s.db.prepare('select * from doc_events order by doc, lsn').all()).toEqual(old.docEvents)
    expect(
      ['log_base', 'folded', 'peers', 'inbox', 'origin_ids', 'doc_ids'].map((t) =>
        s.db.prepare(`select * from ${t} order by 1, 2`).all(),
      ),
    ).toEqual(old.rest)
    expect(s.db.prepare('select count(*) from runs').pluck().get()).toBeLessThan(old.events.length)
    expect(s.db.prepare("select count(*) from sqlite_master where name = 'log'").pluck().get()).toBe(0)
  })

  it("toSchema5 (the tests' writer of larger schema-5 files) writes what the release wrote", () => {
    const { path } = v5Copy()
    const read = () => {
      const db = new Database(path, { readonly: true })
      try {
        return [
          db.prepare('select * from log order by lsn').all(),
          db.prepare(`select ${V5_COLUMNS} from events order by lsn`).all(),
        ]
      } finally {
        db.close()
      }
    }
    const before = read()
    EventStore.open({ path, druId: 'fx', durability: 'process' }).close()
    toSchema5(path)
    expect(read()).toEqual(before)
  })

  it('damaged rows stay damaged: each is CORRUPTION after the migration, never repaired, and the others read as before', () => {
    const { path, old } = v5Copy()
    const damage = [
      [
        "update log set hash = x'0102' where seq = 3 and origin_id = (select id from origin_ids where origin = 'peer/3')",
        3,
      ],
      [
        "update log set hlc_wall = -1, hlc_node = 'yesterday' where seq = 4 and origin_id = (select id from origin_ids where origin = 'peer/3')",
        4,
      ],
      [
        "update log set prev = substr(prev, 2) where seq = 5 and origin_id = (select id from origin_ids where origin = 'peer/3')",
        5,
      ],
      [
        "update log set change = 'text' where seq = 6 and origin_id = (select id from origin_ids where origin = 'peer/3')",
        6,
      ],
      [
        "update log set doc = 9999 where seq = 7 and origin_id = (select id from origin_ids where origin = 'peer/3')",
        7,
      ],
      [
        "update log set hlc_counter = -5 where seq = 8 and origin_id = (select id from origin_ids where origin = 'peer/3')",
        8,
      ],
    ] as const
    const db = new Database(path)
    for (const [sql] of damage) expect(db.prepare(sql).run().changes).toBe(1)
    db.close()
    const s = EventStore.open({ path, druId: 'fx', durability: 'process' })
    cleanups.push(() => s.close())
    for (const [, seq] of damage)
      expect(
        codeOf(() => s.getEvent('peer/3', seq)),
        `peer/3#${seq}`,
      ).toBe('CORRUPTION')
    for (const r of old.events.filter((e) => e.origin !== 'peer/3' || e.seq < 3 || e.seq > 8))
      expect(s.getEvent(r.origin, r.seq)).toEqual(asEvent(r))
    expect(codeOf(() => s.verifyLog())).toBe('CORRUPTION')
  })
})
