import { afterEach, describe, expect, it } from 'vitest'
import { DruError } from '@dru/core'
import { bytes, memStore, remoteEvents } from './helpers.js'

// A UNIQUE violation is a FORK only when it is the log's (origin, seq): an application's own
// constraint inside transact(), or a storing validator's, is not a peer writing a position twice
// (FORK quarantines the peer that sent the batch).

const open: Array<{ close(): void }> = []
afterEach(() => {
  while (open.length) open.pop()!.close()
})

/** The DruError code thrown, or the SQLite code of an error passed through as it is. */
function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return err instanceof DruError ? err.code : (err as { code?: string }).code
  }
  return undefined
}

describe('UNIQUE violations', () => {
  it("an application's own constraint inside transact() is not a FORK, and nothing is stored", () => {
    const s = memStore('s')
    open.push(s)
    s.db.exec('create table orders (id text primary key)')
    s.transact((tx) => tx.db.prepare('insert into orders values (?)').run('o-1'))
    const code = codeOf(() =>
      s.transact((tx) => {
        tx.append('doc', bytes(1))
        tx.db.prepare('insert into orders values (?)').run('o-1')
      }),
    )
    expect(code).toBe('SQLITE_CONSTRAINT_PRIMARYKEY')
    expect(s.count()).toBe(0)
  })

  it("a storing validator's constraint on a remote batch is not a FORK, and nothing is stored", () => {
    const s = memStore('s', { skewPolicy: 'tolerate' })
    open.push(s)
    s.db.exec('create table seen (doc text primary key)')
    s.addStoringValidator((events, { db }) => {
      for (const e of events) db.prepare('insert into seen values (?)').run(e.docId)
    })
    const code = codeOf(() => s.ingest(remoteEvents(['d1', 'd1'])))
    expect(code).toBe('SQLITE_CONSTRAINT_PRIMARYKEY')
    expect(s.count()).toBe(0)
  })

  it("the log's own (origin, seq) is still a FORK", async () => {
    const { mapSqliteError } = await import('../src/sqlite-errors.js')
    const s = memStore('s')
    open.push(s)
    s.append('doc', bytes(1))
    let raw: unknown
    try {
      s.db
        .prepare('insert into runs select lsn + 100, origin_id, seq, n, prev, body, hashes, received_at from runs')
        .run()
    } catch (err) {
      raw = err
    }
    expect((mapSqliteError(raw) as DruError).code).toBe('FORK')
  })
})
