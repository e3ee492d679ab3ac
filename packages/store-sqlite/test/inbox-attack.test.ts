import { copyFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { EventStore, type InboxPolicy } from '../src/index.js'
import { bytes, memStore, remoteEvents, sequentialIncarnations, tempDir } from './helpers.js'

// Adversarial cases against the inbox's owed rows, the registration window and registration itself.

const cleanups: Array<() => void> = []
afterEach(() => {
  while (cleanups.length) cleanups.pop()!()
})

function receiver(policy: Partial<InboxPolicy> = {}) {
  const b = memStore('b', { now: () => 1_000_000, inbox: policy, skewPolicy: 'tolerate' })
  cleanups.push(() => b.close())
  return b
}

describe('inbox attack: exactly once', () => {
  it('a handler that unsubscribes itself while running on an event is not owed that event again', () => {
    const b = receiver()
    const runs: number[] = []
    let off = (): void => undefined
    off = b.onIngest('once', (e) => {
      runs.push(e.seq)
      off() // e.g. "stop after the first matching event"
    })
    b.ingest(remoteEvents(['d1']))
    expect(runs).toEqual([1])
    b.onIngest('once', (e) => void runs.push(e.seq))
    b.inbox.runDue()
    expect(runs).toEqual([1])
  })

  it('a handler unsubscribed by another handler after it ran on the event is not owed it again', () => {
    const b = receiver()
    const runs: string[] = []
    const offFirst = b.onIngest('first', (e) => void runs.push(`first#${e.seq}`))
    b.onIngest('second', (e) => {
      runs.push(`second#${e.seq}`)
      offFirst()
    })
    b.ingest(remoteEvents(['d1']))
    b.onIngest('first', (e) => void runs.push(`first#${e.seq}`))
    b.inbox.runDue()
    expect(runs).toEqual(['first#1', 'second#1'])
  })

  it('a handler that unsubscribes itself and then throws does not make the whole ingest fail', () => {
    const b = receiver()
    let off = (): void => undefined
    off = b.onIngest('flaky', () => {
      off()
      throw new Error('boom')
    })
    // Was: UNIQUE constraint (the failure row, then the owed row of the same event), reported as FORK.
    expect(b.ingest(remoteEvents(['d1'])).stored).toHaveLength(1)
  })
})

describe('inbox attack: nothing lost', () => {
  it('a registration inside a transaction is refused (typed) and records nothing: it could roll back unrecorded', () => {
    const b = receiver()
    const runs: number[] = []
    let code: string | undefined
    expect(() =>
      b.transact(() => {
        try {
          b.onIngest('audit', (e) => void runs.push(e.seq), { order: 'document' })
        } catch (err) {
          code = (err as { code?: string }).code
          throw err
        }
      }),
    ).toThrow(/register event handlers outside a transaction/)
    expect(code).toBe('INVALID_ARGUMENT')
    expect(b.inbox.handlers()).toEqual([])
    expect(b.inbox.known()).toEqual([])
    b.ingest(remoteEvents(['d1']))
    expect(runs).toEqual([])
    expect(b.inbox.list({ state: 'all' })).toEqual([])
  })

  it('a handler registering another while it runs fails that call like any throw; the event is stored, nothing registered', () => {
    const b = receiver({ immediateRetries: 0, delayedRetries: 0 })
    b.onIngest('boot', () => {
      b.onIngest('child', () => undefined)
    })
    expect(b.ingest(remoteEvents(['d1'])).stored).toHaveLength(1)
    expect(b.inbox.handlers()).toEqual(['boot'])
    expect(b.inbox.known().map((k) => k.name)).toEqual(['boot'])
    expect(b.inbox.list()).toMatchObject([
      { handler: 'boot', seq: 1, state: 'dead', lastError: expect.stringMatching(/outside a transaction/) },
    ])
  })

  it('a handler known before the upgrade to inbox track 2 (it has entries) is owed events stored while absent', () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const path = join(dir, 'b.db')
    const random = sequentialIncarnations()
    const open = () => EventStore.open({ path, druId: 'b', now: () => 1_000_000, random, skewPolicy: 'tolerate' })
    const events = remoteEvents(['d1', 'd2'])
    const runs: number[] = []
    let b = open()
    let fail = true
    b.onIngest('mailer', (e) => {
      if (fail) throw new Error('smtp down')
      runs.push(e.seq)
    })
    b.ingest(events.slice(0, 1)) // #1 owed by a failure
    b.close()
    // Back to the layout of inbox track 1, as a database written before today's change.
    const Database = b.db.constructor as new (p: string) => EventStore['db']
    const raw = new Database(path)
    raw.exec("drop table inbox_handlers; update meta set value = 1 where key = 'schema_version:inbox'")
    raw.close()
    b = open()
    cleanups.push(() => b.close())
    expect(b.inbox.list().map((e) => e.seq)).toEqual([1])
    b.ingest(events.slice(1)) // stored before the upgraded application registers it
    fail = false
    b.onIngest('mailer', (e) => void runs.push(e.seq))
    b.inbox.runDue()
    expect(runs).toEqual([1, 2]) // was [1]: the migration did not record 'mailer' as known
  })
})

describe('inbox attack: who gets an event is settled before its handlers run', () => {
  it('a handler unsubscribed by an earlier handler before its turn is owed the event, and runs it once', () => {
    const b = receiver()
    const runs: string[] = []
    let offSecond = (): void => undefined
    b.onIngest('first', (e) => {
      runs.push(`first#${e.seq}`)
      offSecond()
    })
    offSecond = b.onIngest('second', (e) => void runs.push(`second#${e.seq}`))
    b.ingest(remoteEvents(['d1']))
    expect(runs).toEqual(['first#1'])
    expect(b.inbox.list()).toMatchObject([{ handler: 'second', seq: 1, state: 'pending', attempts: 0 }])
    b.onIngest('second', (e) => void runs.push(`second#${e.seq}`))
    b.inbox.runDue()
    expect(runs).toEqual(['first#1', 'second#1'])
  })
})

describe("inbox attack: order 'document' across owed rows", () => {
  it("a handler known with order 'none' and registered again with 'document' runs a document's owed events in order", () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const path = join(dir, 'b.db')
    const clock = { ms: 1_000_000 }
    const random = sequentialIncarnations()
    const open = () => EventStore.open({ path, druId: 'b', now: () => clock.ms, random, skewPolicy: 'tolerate' })
    const events = remoteEvents(['d1', 'd1'])
    let b = open()
    b.onIngest('ledger', () => undefined) // order 'none' in this release of the application
    b.close()
    b = open()
    cleanups.push(() => b.close())
    b.ingest(events) // owed while absent, under the recorded order 'none': both pending
    const runs: number[] = []
    let broken = true
    b.onIngest(
      'ledger',
      (e) => {
        if (broken && e.seq === 1) throw new Error('not yet')
        runs.push(e.seq)
      },
      { order: 'document' },
    )
    b.inbox.runDue()
    broken = false
    clock.ms += 3_600_000
    b.inbox.runDue()
    b.inbox.runDue()
    expect(runs).toEqual([1, 2]) // was [2, 1]: #2 stayed pending, not waiting behind #1
  })

  it('forget of an absent handler with waiting rows leaves nothing held, and compaction moves on', () => {
    const b = receiver()
    b.onIngest('gone', () => undefined, { order: 'document' })()
    b.ingest(remoteEvents(['d1', 'd1', 'd2']))
    expect(b.inbox.list().map((e) => e.state)).toEqual(['pending', 'waiting', 'pending'])
    expect(b.signedFloor({ 'a/1': 3 })).toEqual({})
    expect(b.inbox.forget('gone')).toBe(3)
    expect(b.signedFloor({ 'a/1': 3 })).toEqual({ 'a/1': 3 })
    expect(b.inbox.owedFrom()).toEqual({})
  })
})

describe('inbox attack: the migration to inbox track 2', () => {
  it('the release-before-schema-4 fixture (inbox track 1, one pending mailer entry) knows mailer after it', () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const path = join(dir, 'v3.db')
    copyFileSync(fileURLToPath(new URL('./fixtures/schema-v3.db', import.meta.url)), path)
    const s = EventStore.open({ path, druId: 'fx', durability: 'process' })
    cleanups.push(() => s.close())
    expect(s.db.prepare("select value from meta where key = 'schema_version:inbox'").pluck().get()).toBe(2)
    expect(s.inbox.known()).toEqual([{ name: 'mailer', order: 'none', registered: false }])
  })
})

describe('inbox attack: the registration window across a crash', () => {
  it('a first start killed before the application registered: the next window still owes what the first stored', () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const path = join(dir, 'b.db')
    const random = sequentialIncarnations()
    const open = () => EventStore.open({ path, druId: 'b', now: () => 1_000_000, random, skewPolicy: 'tolerate' })
    const events = remoteEvents(['d1', 'd2', 'd3'])
    let b = open()
    b.inbox.holdForRegistration() // openDru's window; never released: the process dies
    b.ingest(events.slice(0, 2)) // the network catches up while openDru awaits
    b.close() // stands in for SIGKILL: nothing in memory survives
    b = open()
    cleanups.push(() => b.close())
    const release = b.inbox.holdForRegistration()
    b.ingest(events.slice(2))
    const runs: number[] = []
    b.onIngest('new', (e) => void runs.push(e.seq))
    release()
    b.inbox.runDue()
    expect(runs).toEqual([1, 2, 3]) // was [3]: the first window's events were lost to it
    // A released window is gone for good: a later first registration starts from itself.
    b.close()
    b = open()
    b.inbox.holdForRegistration()()
    b.onIngest('newer', (e) => void runs.push(e.seq))
    expect(b.inbox.list({ state: 'all' })).toEqual([])
  })
})

describe('inbox attack: compaction while the registration window is open', () => {
  it('a compaction run before the application registers (POST /compact during openDru) deletes nothing the window owes', () => {
    const b = receiver()
    const release = b.inbox.holdForRegistration() // openDru's window
    b.ingest(remoteEvents(['d1', 'd2', 'd3'])) // the network catches up while openDru awaits
    expect(b.signedFloor({ 'a/1': 3 })).toEqual({}) // the window holds the base below its first event
    b.raiseBase({ 'a/1': 3 })
    b.deleteBelowBase()
    const runs: number[] = []
    b.onIngest('new', (e) => void runs.push(e.seq))
    release()
    b.inbox.runDue()
    expect(runs).toEqual([1, 2, 3])
    // Released, and nothing owed: compaction goes as far as the floor again.
    expect(b.signedFloor({ 'a/1': 3 })).toEqual({ 'a/1': 3 })
  })

  it('a window left by a killed start holds compaction in a process that opened none (an offline compaction)', () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const path = join(dir, 'b.db')
    const random = sequentialIncarnations()
    const open = () => EventStore.open({ path, druId: 'b', now: () => 1_000_000, random, skewPolicy: 'tolerate' })
    let b = open()
    b.inbox.holdForRegistration() // never released: the process dies
    b.ingest(remoteEvents(['d1', 'd2']))
    b.close()
    b = open() // no window of its own: the store opened for maintenance
    b.raiseBase({ 'a/1': 2 })
    b.deleteBelowBase()
    b.close()
    b = open()
    cleanups.push(() => b.close())
    const release = b.inbox.holdForRegistration()
    const runs: number[] = []
    b.onIngest('new', (e) => void runs.push(e.seq))
    release()
    b.inbox.runDue()
    expect(runs).toEqual([1, 2])
  })
})

describe('inbox attack: duplicates and the DRU’s own earlier incarnations', () => {
  it('a batch delivered twice, or re-ingested after the handler is back, is owed and run once', () => {
    const b = receiver()
    const runs: number[] = []
    b.onIngest('h', (e) => void runs.push(e.seq))()
    const events = remoteEvents(['d1', 'd2'])
    b.ingest(events)
    b.ingest(events)
    expect(b.inbox.list()).toHaveLength(2)
    b.onIngest('h', (e) => void runs.push(e.seq))
    b.ingest(events)
    b.inbox.runDue()
    b.inbox.runDue()
    expect(runs).toEqual([1, 2])
  })

  it('after a restore, its own earlier origin’s events that come back are owed like any remote one; its current origin’s never', () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const path = join(dir, 'b.db')
    const backup = join(dir, 'backup.db')
    const random = sequentialIncarnations()
    const open = (p: string) =>
      EventStore.open({ path: p, druId: 'b', now: () => 1_000_000, random, skewPolicy: 'tolerate' })
    let b = open(path)
    b.onIngest('h', () => undefined) // known
    b.append('d1', bytes(1))
    b.close()
    copyFileSync(path, backup) // the backup holds b/1#1
    b = open(path)
    b.append('d1', bytes(2))
    b.append('d2', bytes(3))
    const lost = [...b.eventsMissing({})].flat()
    b.close()
    b = open(backup) // restored: a new origin
    cleanups.push(() => b.close())
    expect(b.origin).not.toBe(lost[0]!.origin)
    b.append('d3', bytes(4))
    const runs: string[] = []
    b.ingest(lost) // a peer sends back what the backup lacked
    expect(b.inbox.list().map((e) => `${e.origin}#${e.seq}`)).toEqual(lost.slice(1).map((e) => `${e.origin}#${e.seq}`))
    b.onIngest('h', (e) => void runs.push(`${e.origin}#${e.seq}`))
    b.inbox.runDue()
    expect(runs).toEqual(lost.slice(1).map((e) => `${e.origin}#${e.seq}`))
  })
})

describe('inbox attack: an owed entry that is already there', () => {
  it('does not fail the storing batch (it failed with a UNIQUE error reported as FORK)', () => {
    const b = receiver()
    b.onIngest('h', () => undefined)()
    const events = remoteEvents(['d1'])
    // An entry for the event before it is stored, however it came there (a hand-edited or restored inbox).
    b.db
      .prepare(
        "insert into inbox (handler, origin, seq, doc_id, lsn, state, attempts) values ('h', ?, 1, 'd1', 1, 'skipped', 0)",
      )
      .run(events[0]!.origin)
    expect(b.ingest(events).stored).toHaveLength(1)
    expect(b.inbox.list({ state: 'all' })).toMatchObject([{ handler: 'h', seq: 1, state: 'skipped' }])
  })
})
