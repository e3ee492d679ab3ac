import { spawn, type ChildProcess } from 'node:child_process'
import { copyFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { GENESIS_HASH, encodeHlc, sealEvent, type DruEvent, type Origin } from '@dru/core'
import { EventStore, SCHEMA_VERSION } from '../src/index.js'
import { bytes, codeOf, exchange, memStore, rewriteRun, sequentialIncarnations, tempDir, toSchema5 } from './helpers.js'

/**
 * Files an operator may hand dru, now that chain heads are derived from the log at open
 * (schema 5): each open either refuses with a typed error or derives heads that never let
 * this DRU's next write reuse an (origin, seq) it already gave away.
 */

const cleanups: Array<() => void> = []
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!()
})

/** A closed file holding h's own origin h/1 (5 events, a run each) and a remote origin a/1 (4 events in runs #1, #2, #3–#4). */
function writtenFile(): { path: string; dir: string; remote: DruEvent[] } {
  const { dir, cleanup } = tempDir('dru-heads-attack-')
  cleanups.push(cleanup)
  const path = join(dir, 'h.db')
  const a = memStore('a')
  for (let i = 0; i < 6; i++) a.append(`r${i % 2}`, bytes(i))
  const remote = [...a.eventsMissing({})].flat()
  a.close()
  const s = open(path)
  for (let i = 0; i < 5; i++) s.append(`d${i % 2}`, bytes(i))
  // Three batches, so a/1 is stored as three runs: #1, #2, #3–#4.
  s.ingest(remote.slice(0, 1))
  s.ingest(remote.slice(1, 2))
  s.ingest(remote.slice(2, 4))
  s.close()
  return { path, dir, remote }
}

const open = (path: string, start = 1) =>
  EventStore.open({ path, druId: 'h', durability: 'process', random: sequentialIncarnations(start) })

function edit(path: string, sql: string): void {
  const db = new Database(path)
  try {
    db.exec(sql)
  } finally {
    db.close()
  }
}

/** {@link writtenFile} with a/1 compacted up to `upTo`, its events there deleted (envelopes kept). */
function compactedFile(upTo: number): string {
  const { path } = writtenFile()
  const s = open(path, 5)
  s.raiseBase({ 'a/1': upTo })
  expect(s.deleteBelowBase(100)).toBe(upTo)
  s.close()
  return path
}

const originId = (origin: string) => `(select id from origin_ids where origin = '${origin}')`

describe('chain heads derived from a file an operator altered', () => {
  it('a cold backup: opens with its own heads; the next write takes an origin the newer file never used', () => {
    const { path, dir, remote } = writtenFile()
    const backup = join(dir, 'backup.db')
    copyFileSync(path, backup)
    const newer = open(path, 2)
    const given = newer.append('d0', bytes(9))
    newer.ingest(remote.slice(4))
    // Production draws 53 random bits; here the two opens draw different incarnations by hand.
    const s = open(backup, 3)
    cleanups.push(
      () => s.close(),
      () => newer.close(),
    )
    expect(s.vv()).toEqual({ 'h/1': 5, 'a/1': 4 })
    const mine = s.append('d0', bytes(7))
    expect(mine.origin).not.toBe(given.origin)
    expect(exchange(newer, s)).toBe(3)
    expect(exchange(s, newer)).toBe(1)
    expect(s.fingerprint()).toEqual(newer.fingerprint())
  })

  it('runs deleted from the top of an origin: its head steps back to the last event left, and peers resend the rest', () => {
    const { path, remote } = writtenFile()
    edit(path, `delete from runs where origin_id = ${originId('a/1')} and seq > 2`)
    const s = open(path, 5)
    cleanups.push(() => s.close())
    expect(s.vv()['a/1']).toBe(2)
    expect(s.ingest(remote).stored.length).toBe(4)
    expect(s.verifyLog().events).toBe(11)
  })

  it('a run deleted from the middle of an origin: the gap is CORRUPTION when read, never served as a chain', () => {
    const { path } = writtenFile()
    edit(path, `delete from runs where origin_id = ${originId('a/1')} and seq = 2`)
    const s = open(path, 5)
    cleanups.push(() => s.close())
    expect(codeOf(() => s.verifyLog())).toBe('CORRUPTION')
    expect(codeOf(() => [...s.eventsMissing({})])).toBe('CORRUPTION')
  })

  it('an origin_ids row removed (the highest id): refused at open, its rows never become a new origin', () => {
    const { path } = writtenFile()
    edit(path, "delete from origin_ids where origin = 'a/1'")
    expect(codeOf(() => open(path, 5).close())).toBe('CORRUPTION')
  })

  it('an origin_ids row removed (a lower id): refused at open, its rows are not left out of the heads', () => {
    const { path } = writtenFile()
    edit(path, "delete from origin_ids where origin = 'h/1'")
    expect(codeOf(() => open(path, 5).close())).toBe('CORRUPTION')
  })

  it('an origin_ids row renamed: the open goes on, the renamed origin reads as CORRUPTION', () => {
    const { path } = writtenFile()
    edit(path, "update origin_ids set origin = 'z/1' where origin = 'a/1'")
    const s = open(path, 5)
    cleanups.push(() => s.close())
    expect(codeOf(() => s.getEvent('z/1', 4))).toBe('CORRUPTION')
    expect(codeOf(() => s.verifyLog())).toBe('CORRUPTION')
  })

  it('an origin_ids row added: no head for it', () => {
    const { path } = writtenFile()
    edit(path, "insert into origin_ids (origin) values ('ghost/1')")
    const s = open(path, 5)
    cleanups.push(() => s.close())
    expect(s.vv()).toEqual({ 'h/1': 5, 'a/1': 4 })
    s.append('d0', bytes(1))
    expect(s.verifyLog().events).toBe(10)
  })

  it("damaged hashes on an origin's last run: CORRUPTION at open, never a head that blames the next honest event", () => {
    for (const hashes of [
      "substr(hashes, 1, 32) || x'0102'",
      'substr(hashes, 1, 32)',
      "hashes || x'00'",
      "x''",
      "'text'",
      '42',
    ]) {
      const { path } = writtenFile()
      edit(path, `update runs set hashes = ${hashes} where origin_id = ${originId('a/1')} and seq = 3`)
      expect(codeOf(() => open(path, 5).close())).toBe('CORRUPTION')
    }
  })

  it("a run's count of events changed: CORRUPTION at open, never a head at another seq", () => {
    for (const n of [1, 3, 0, -1]) {
      const { path } = writtenFile()
      edit(path, `update runs set n = ${n} where origin_id = ${originId('a/1')} and seq = 3`)
      expect(codeOf(() => open(path, 5).close())).toBe('CORRUPTION')
    }
  })

  it("a damaged HLC on an origin's last event: CORRUPTION at open (not INVALID_EVENT)", () => {
    const { path } = writtenFile()
    const db = new Database(path)
    rewriteRun(db, 'a/1', 4, (events) => {
      events[1]!.hlc = { wall: -1, counter: -1, node: 'garbage' }
    })
    db.close()
    expect(codeOf(() => open(path, 5).close())).toBe('CORRUPTION')
  })

  it('a damaged HLC in a log_base row: CORRUPTION at open (not INVALID_EVENT)', () => {
    const { path } = writtenFile()
    const s = open(path, 5)
    s.raiseBase({ 'a/1': 4 })
    s.close()
    edit(path, "update log_base set hlc = 'garbage' where origin = 'a/1'")
    expect(codeOf(() => open(path, 6).close())).toBe('CORRUPTION')
  })

  it('a log_base row raised past the events held: CORRUPTION at open, never a vector claiming what is not there', () => {
    const path = compactedFile(3)
    const before = open(path, 6)
    expect(before.vv()['a/1']).toBe(4)
    before.close()
    edit(path, "update log_base set seq = 9 where origin = 'a/1'")
    expect(codeOf(() => open(path, 7).close())).toBe('CORRUPTION')
    // Raised to the last event held, with its rows all deleted: the folded envelopes reach it.
    const s = open(compactedFile(4), 6)
    cleanups.push(() => s.close())
    expect(s.vv()['a/1']).toBe(4)
    expect(s.retired().map((r) => r.origin)).toEqual(['a/1'])
  })

  it('a base past the rows of an origin compacted by a release that kept no envelopes: taken as stored, as before', () => {
    const path = compactedFile(3)
    edit(path, "delete from folded where origin = 'a/1'; update log_base set seq = 9 where origin = 'a/1'")
    const s = open(path, 6)
    cleanups.push(() => s.close())
    expect(s.vv()['a/1']).toBe(9)
  })
})

describe('chain heads after a crash (SIGKILL of a child)', () => {
  const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
  const children = new Set<ChildProcess>()
  afterEach(() => {
    for (const c of children) c.kill('SIGKILL')
    children.clear()
  })

  /** Runs the child on `path`, SIGKILLs it `delay` ms after "ready"; resolves once it is gone. */
  function killDuring(path: string, mode: 'delete' | 'open', delay: number): Promise<void> {
    const child = spawn(process.execPath, [fixture('heads-child.mjs'), path, mode], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    children.add(child)
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line === 'ready') setTimeout(() => child.kill('SIGKILL'), delay)
    })
    return new Promise((resolve) => child.on('exit', () => resolve()))
  }

  /** A file with 2,000 remote origins of 3 events each, and h's own 30. */
  function bigFile(): string {
    const { dir, cleanup } = tempDir('dru-heads-crash-')
    cleanups.push(cleanup)
    const path = join(dir, 'h.db')
    const s = EventStore.open({ path, druId: 'h', durability: 'process' })
    const batch: DruEvent[] = []
    for (let o = 0; o < 2000; o++) {
      let prev = GENESIS_HASH
      for (let seq = 1; seq <= 3; seq++) {
        const origin = `p${o}/1` as Origin
        const e = sealEvent({
          origin,
          seq,
          hlc: encodeHlc({ wall: 1_764_000_000_000 + seq, counter: 0, node: origin }),
          docId: `d${seq}`,
          change: bytes(seq),
          prev,
        })
        prev = e.hash
        batch.push(e)
      }
    }
    for (let i = 0; i < batch.length; i += 1500) s.ingest(batch.slice(i, i + 1500))
    for (let i = 0; i < 30; i++) s.append('mine', bytes(i))
    s.close()
    return path
  }

  const state = (path: string) => {
    const s = EventStore.open({ path, druId: 'h', durability: 'process', inspect: true })
    try {
      return { fp: s.fingerprint(), base: s.base(), count: s.count() }
    } finally {
      s.close()
    }
  }

  it('deleteBelowBase killed at any moment: heads, vector and base are as before, the rows gone or all there', async () => {
    const path = bigFile()
    const s = EventStore.open({ path, druId: 'h', durability: 'process' })
    const floor: Record<string, number> = {}
    for (const [origin, seq] of Object.entries(s.vv())) floor[origin] = seq - (seq % 2)
    s.raiseBase(floor)
    s.close()
    const before = state(path)
    for (const delay of [0, 5, 20, 60]) {
      await killDuring(path, 'delete', delay)
      const after = state(path)
      expect(after.fp, `delay ${delay}`).toEqual(before.fp)
      expect(after.base).toEqual(before.base)
      expect([before.count, before.count - Object.values(floor).reduce((n, x) => n + x, 0)]).toContain(after.count)
    }
  }, 60_000)

  it('the 4 → 5 → 6 migrations killed during open: the file is schema 4, 5 or 6, never between, and opens with the same heads', async () => {
    const path = bigFile()
    const before = state(path)
    // Back to the layout of schema 4: a row per event, heads stored apart.
    toSchema5(path)
    const db = new Database(path)
    db.exec(
      'create table origins (origin text primary key, seq integer not null, hash text not null, hlc text not null) without rowid',
    )
    const insert = db.prepare('insert into origins (origin, seq, hash, hlc) values (?, ?, ?, ?)')
    for (const origin of Object.keys(before.fp.heads))
      insert.run(origin, before.fp.vv[origin], before.fp.heads[origin], '0000000000000000000000000-0000-' + origin)
    db.prepare("update meta set value = 4 where key = 'schema_version'").run()
    db.close()
    for (const delay of [0, 2, 10, 40, 80]) {
      await killDuring(path, 'open', delay)
      const check = new Database(path, { readonly: true })
      const version = check.prepare("select value from meta where key = 'schema_version'").pluck().get()
      const tables = check
        .prepare("select name from sqlite_master where name in ('origins', 'log', 'runs') order by name")
        .pluck()
        .all()
      check.close()
      expect([
        { version: 4, tables: ['log', 'origins'] },
        { version: 5, tables: ['log'] },
        { version: SCHEMA_VERSION, tables: ['runs'] },
      ]).toContainEqual({ version, tables })
    }
    expect(state(path).fp).toEqual(before.fp)
    expect(state(path).count).toBe(before.count)
  }, 60_000)
})
