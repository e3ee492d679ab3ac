import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { DruError, type DruEvent } from '@dru/core'
import { EventStore, nextAttempt, inboxPolicy, type InboxPolicy } from '../src/index.js'
import { bytes, codeOf, memStore, remoteEvents, sequentialIncarnations, tempDir } from './helpers.js'

const cleanups: Array<() => void> = []
afterEach(() => {
  while (cleanups.length) cleanups.pop()!()
})

/** A receiving store on a hand-driven clock, with an `effects(handler, origin, seq)` table. */
function receiver(policy: Partial<InboxPolicy> = {}) {
  const clock = { ms: 1_000_000 }
  // Tolerate: the sender's events carry real timestamps, far ahead of this hand-driven clock.
  const b = memStore('b', { now: () => clock.ms, inbox: policy, skewPolicy: 'tolerate' })
  b.db.exec('create table effects (handler text, origin text, seq integer)')
  const effect = (handler: string, e: DruEvent, db: EventStore['db']) =>
    db.prepare('insert into effects values (?, ?, ?)').run(handler, e.origin, e.seq)
  const effects = (handler?: string) =>
    (handler === undefined
      ? b.db.prepare('select handler, origin, seq from effects order by rowid').all()
      : b.db.prepare('select seq from effects where handler = ? order by rowid').pluck().all(handler)) as unknown[]
  return { b, clock, effect, effects }
}

describe('inbox: a failing handler never stops the log', () => {
  it("stores the whole batch, keeps other handlers' effects, undoes only the failing call, and records it as pending", () => {
    const { b, clock, effect, effects } = receiver()
    const events = remoteEvents(['d1', 'poison', 'd2', 'd3'])
    b.onIngest('audit', (e, tx) => effect('audit', e, tx.db))
    b.onIngest('mailer', (e, tx) => {
      effect('mailer', e, tx.db) // written, then undone by the throw
      if (e.docId === 'poison') throw new TypeError('cannot read properties of undefined')
    })
    const r = b.ingest(events)
    expect(r.stored).toHaveLength(4)
    expect(b.vv()).toEqual({ 'a/1': 4 })
    expect(effects('audit')).toEqual([1, 2, 3, 4])
    expect(effects('mailer')).toEqual([1, 3, 4])
    const [entry, ...rest] = b.inbox.list()
    expect(rest).toEqual([])
    expect(entry).toMatchObject({
      handler: 'mailer',
      origin: 'a/1',
      seq: 2,
      docId: 'poison',
      state: 'pending',
      attempts: 1,
      firstFailedAt: clock.ms,
      lastFailedAt: clock.ms,
      nextAttemptAt: clock.ms, // an immediate retry is due at once
      lastError: 'TypeError: cannot read properties of undefined',
      registered: true,
    })
    expect(entry!.errorStack).toContain('TypeError')
    expect(b.inbox.counts()).toMatchObject({ pending: 1, waiting: 0, dead: 0, skipped: 0 })
    // The same batch again: duplicates, no handler runs, no second entry.
    expect(b.ingest(events).duplicates).toBe(4)
    expect(effects()).toHaveLength(7)
    expect(b.inbox.list()).toHaveLength(1)
  })

  it('ingest never throws HANDLER_FAILED, whatever a handler throws', () => {
    const { b } = receiver()
    const throwers: unknown[] = [
      new Error('x'),
      'a string',
      null,
      undefined,
      { weird: true },
      new DruError('INVALID_ARGUMENT', 'typed'),
    ]
    let i = 0
    b.onIngest('chaos', () => {
      throw throwers[i++ % throwers.length]
    })
    const events = remoteEvents(throwers.map((_, j) => `doc-${j}`))
    expect(b.ingest(events).stored).toHaveLength(throwers.length)
    expect(b.inbox.list().map((e) => e.lastError)).toEqual([
      'Error: x',
      'thrown: a string',
      'thrown: null',
      'thrown: undefined',
      'thrown: {"weird":true}',
      'INVALID_ARGUMENT: typed',
    ])
  })

  it('a handler that writes through another transaction API (nested transact) fails alone', () => {
    const { b } = receiver()
    b.onIngest('nested', () => b.append('x', bytes(1)))
    const events = remoteEvents(['d1'])
    expect(b.ingest(events).stored).toHaveLength(1)
    expect(b.inbox.list()[0]!.lastError).toMatch(/^INVALID_ARGUMENT: nested transactions/)
    expect(b.vv()).toEqual({ 'a/1': 1 })
  })

  it('a handler returning a promise fails (ASYNC_CHANGE) and an async function is refused at registration', () => {
    const { b } = receiver()
    expect(codeOf(() => b.onIngest('async', async () => undefined))).toBe('ASYNC_CHANGE')
    b.onIngest('thenable', () => Promise.resolve() as unknown as void)
    b.ingest(remoteEvents(['d1']))
    expect(b.inbox.list()[0]!.lastError).toMatch(/^ASYNC_CHANGE: handler thenable returned a promise/)
  })

  it('refuses bad registrations with INVALID_ARGUMENT and changes nothing', () => {
    const { b } = receiver()
    b.onIngest('ok', () => undefined)
    for (const bad of [
      ['', () => undefined],
      ['has space', () => undefined],
      ['a'.repeat(65), () => undefined],
      ['ok', () => undefined],
      ['fine', 'not a function'],
    ] as const) {
      expect(codeOf(() => b.onIngest(bad[0], bad[1] as never))).toBe('INVALID_ARGUMENT')
    }
    expect(codeOf(() => b.onIngest('x', () => undefined, { order: 'lsn' as never }))).toBe('INVALID_ARGUMENT')
    expect(codeOf(() => (b.onIngest as unknown as (h: unknown) => void)(() => undefined))).toBe('INVALID_ARGUMENT')
    expect(b.inbox.handlers()).toEqual(['ok'])
  })
})

describe('inbox: retries, backoff, dead letters', () => {
  it('follows the policy: immediate retries, then doubling delays, then a dead letter; never early', () => {
    const policy = { immediateRetries: 2, delayedRetries: 3, backoffMs: 1_000, maxBackoffMs: 3_000 }
    const { b, clock } = receiver(policy)
    const calls: number[] = []
    b.onIngest('h', (_e, tx) => {
      calls.push(tx.attempt)
      throw new Error(`boom ${tx.attempt}`)
    })
    b.ingest(remoteEvents(['d']))
    const t0 = clock.ms
    // Immediate retries: due at once, one per runDue (an entry is tried once per turn).
    expect(b.inbox.runDue()).toMatchObject({ attempted: 1, failed: 1 })
    expect(b.inbox.runDue()).toMatchObject({ attempted: 1, failed: 1 })
    // Delayed: 1 s, 2 s, then 3 s (capped), nothing in between however often we look.
    const schedule: number[] = []
    for (let step = 0; step < 20_000 && b.inbox.list({ state: 'dead' }).length === 0; step++) {
      if (b.inbox.runDue().attempted > 0) schedule.push(clock.ms - t0)
      else clock.ms += 50
    }
    expect(schedule).toEqual([1_000, 3_000, 6_000])
    expect(calls).toEqual([1, 2, 3, 4, 5, 6])
    const dead = b.inbox.list({ state: 'dead' })[0]!
    expect(dead).toMatchObject({
      attempts: 6,
      nextAttemptAt: null,
      lastError: 'Error: boom 6',
      firstFailedAt: t0,
      settledAt: t0 + 6_000,
    })
    // Dead letters are never retried by the timer.
    clock.ms += 10 * 86_400_000
    expect(b.inbox.runDue().attempted).toBe(0)
    expect(b.inbox.nextDue()).toBeUndefined()
  })

  it('nextAttempt: pure schedule, capped, dead after 1 + immediate + delayed calls', () => {
    const p = inboxPolicy({ immediateRetries: 1, delayedRetries: 40, backoffMs: 500, maxBackoffMs: 60_000 })
    expect(nextAttempt(p, 1, 0)).toBe(0)
    expect(nextAttempt(p, 2, 0)).toBe(500)
    expect(nextAttempt(p, 3, 0)).toBe(1_000)
    expect(nextAttempt(p, 20, 0)).toBe(60_000)
    expect(nextAttempt(p, 41, 0)).toBe(60_000)
    expect(nextAttempt(p, 42, 0)).toBe('dead')
    expect(nextAttempt(inboxPolicy({ immediateRetries: 0, delayedRetries: 0 }), 1, 5)).toBe('dead')
    expect(codeOf(() => inboxPolicy({ backoffMs: 0 }))).toBe('CONFIG_INVALID')
    expect(codeOf(() => inboxPolicy({ retries: 3 } as never))).toBe('CONFIG_INVALID')
  })

  it('an operator retry after the fix runs the handler exactly once and removes the entry', () => {
    const { b, effect, effects } = receiver({ immediateRetries: 0, delayedRetries: 0 })
    let broken = true
    b.onIngest('h', (e, tx) => {
      if (broken && e.docId === 'poison') throw new Error('bug')
      effect('h', e, tx.db)
    })
    b.ingest(remoteEvents(['ok', 'poison', 'ok2']))
    const [dead] = b.inbox.list({ state: 'dead' })
    expect(dead).toMatchObject({ seq: 2, attempts: 1 })
    // Still broken: the retry fails, the entry stays dead with one more attempt.
    expect(b.inbox.retry(dead!.id)).toMatchObject({
      id: dead!.id,
      outcome: 'failed',
      error: 'Error: bug',
      entry: { state: 'dead', attempts: 2 },
    })
    broken = false
    expect(b.inbox.retry(dead!.id)).toEqual({ id: dead!.id, outcome: 'done' })
    expect(effects('h')).toEqual([1, 3, 2])
    expect(b.inbox.list({ state: 'all' })).toEqual([])
    expect(codeOf(() => b.inbox.retry(dead!.id))).toBe('NOT_FOUND')
    expect(effects('h')).toEqual([1, 3, 2])
  })

  it('never reuses an entry id, so an id an operator holds cannot come to name another entry', () => {
    const { b } = receiver({ immediateRetries: 0, delayedRetries: 0 })
    let broken = true
    b.onIngest('h', () => {
      if (broken) throw new Error('down')
    })
    const events = remoteEvents(['d1', 'd2'])
    b.ingest(events.slice(0, 1))
    const first = b.inbox.list()[0]!.id
    broken = false
    b.inbox.retry(first)
    broken = true
    b.ingest(events.slice(1))
    expect(b.inbox.list()[0]!.id).toBeGreaterThan(first)
    expect(codeOf(() => b.inbox.retry(first))).toBe('NOT_FOUND')
  })

  it('requeueDead sends every dead letter (of one handler) back for one more try each', () => {
    const { b, effects, effect } = receiver({ immediateRetries: 0, delayedRetries: 0 })
    let broken = true
    for (const h of ['x', 'y']) {
      b.onIngest(h, (e, tx) => {
        if (broken) throw new Error('down')
        effect(h, e, tx.db)
      })
    }
    b.ingest(remoteEvents(['d1', 'd2', 'd3']))
    expect(b.inbox.counts()).toMatchObject({ dead: 6 })
    broken = false
    expect(b.inbox.requeueDead('x')).toBe(3)
    expect(b.inbox.runDue()).toMatchObject({ attempted: 3, done: 3 })
    expect(effects('x')).toEqual([1, 2, 3])
    expect(b.inbox.counts().handlers).toEqual([
      { handler: 'x', registered: true, pending: 0, waiting: 0, dead: 0, skipped: 0 },
      { handler: 'y', registered: true, pending: 0, waiting: 0, dead: 3, skipped: 0 },
    ])
  })

  it('skip records who gave up on what and never runs the handler on it', () => {
    const { b, clock, effects } = receiver({ immediateRetries: 0, delayedRetries: 0 })
    b.onIngest('h', () => {
      throw new Error('nope')
    })
    b.ingest(remoteEvents(['d1']))
    const [dead] = b.inbox.list()
    clock.ms += 5
    const skipped = b.inbox.skip(dead!.id, 'customer refunded by hand (ticket 42)')
    expect(skipped).toMatchObject({
      state: 'skipped',
      settledAt: clock.ms,
      note: 'customer refunded by hand (ticket 42)',
      attempts: 1,
      lastError: 'Error: nope',
    })
    expect(b.inbox.list()).toEqual([])
    expect(b.inbox.list({ state: 'skipped' })).toEqual([skipped])
    expect(codeOf(() => b.inbox.retry(dead!.id))).toBe('INVALID_ARGUMENT')
    expect(codeOf(() => b.inbox.skip(dead!.id))).toBe('INVALID_ARGUMENT')
    expect(codeOf(() => b.inbox.skip(999))).toBe('NOT_FOUND')
    expect(b.inbox.requeueDead()).toBe(0)
    expect(effects()).toEqual([])
  })

  it('entries of a handler not registered in this process wait; registering it resumes them', () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const path = join(dir, 'b.db')
    const clock = { ms: 1_000 }
    const random = sequentialIncarnations()
    let b = EventStore.open({
      path,
      druId: 'b',
      now: () => clock.ms,
      random,
      skewPolicy: 'tolerate',
      inbox: { immediateRetries: 0, delayedRetries: 1 },
    })
    b.onIngest('h', () => {
      throw new Error('down')
    })
    b.ingest(remoteEvents(['d1']))
    b.close()
    b = EventStore.open({ path, druId: 'b', now: () => clock.ms, random, skewPolicy: 'tolerate' })
    cleanups.push(() => b.close())
    clock.ms += 60_000
    expect(b.inbox.list()).toMatchObject([{ handler: 'h', state: 'pending', registered: false }])
    expect(b.inbox.runDue().attempted).toBe(0)
    expect(b.inbox.nextDue()).toBeUndefined()
    expect(codeOf(() => b.inbox.retry(b.inbox.list()[0]!.id))).toBe('INVALID_ARGUMENT')
    const runs: number[] = []
    b.onIngest('h', (e) => void runs.push(e.seq))
    expect(b.inbox.nextDue()).toBe(1_000 + 1_000)
    expect(b.inbox.runDue()).toMatchObject({ attempted: 1, done: 1 })
    expect(runs).toEqual([1])
  })

  it('bad ids and filters are refused with typed errors', () => {
    const { b } = receiver()
    expect(codeOf(() => b.inbox.retry(0))).toBe('NOT_FOUND')
    expect(codeOf(() => b.inbox.retry(1.5))).toBe('NOT_FOUND')
    expect(codeOf(() => b.inbox.list({ state: 'nope' as never }))).toBe('INVALID_ARGUMENT')
    expect(codeOf(() => b.inbox.list({ limit: 0 }))).toBe('INVALID_ARGUMENT')
    expect(codeOf(() => b.inbox.list({ limit: 1001 }))).toBe('INVALID_ARGUMENT')
    expect(codeOf(() => b.inbox.skip(1, 42 as never))).toBe('INVALID_ARGUMENT')
  })
})

describe('inbox: order', () => {
  it("order 'document': later events of the failing document wait, other documents flow, then they run in order", () => {
    const { b, effect, effects } = receiver({ immediateRetries: 0, delayedRetries: 0 })
    let broken = true
    b.onIngest(
      'ordered',
      (e, tx) => {
        if (broken && e.seq === 2) throw new Error('bug on X#2')
        effect('ordered', e, tx.db)
      },
      { order: 'document' },
    )
    //                        1    2    3    4    5    6
    const events = remoteEvents(['X', 'X', 'Y', 'X', 'Z', 'X'])
    b.ingest(events.slice(0, 3))
    b.ingest(events.slice(3))
    expect(effects('ordered')).toEqual([1, 3, 5]) // X#4 and X#6 never ran
    expect(b.inbox.list().map((e) => [e.seq, e.state, e.attempts])).toEqual([
      [2, 'dead', 1],
      [4, 'waiting', 0],
      [6, 'waiting', 0],
    ])
    const waiting = b.inbox.list({ state: 'waiting' })[0]!
    expect(codeOf(() => b.inbox.retry(waiting.id))).toBe('INVALID_ARGUMENT')
    broken = false
    expect(b.inbox.retry(b.inbox.list({ state: 'dead' })[0]!.id).outcome).toBe('done')
    // X#4 moved up; X#6 still waits behind it.
    expect(b.inbox.list().map((e) => [e.seq, e.state])).toEqual([
      [4, 'pending'],
      [6, 'waiting'],
    ])
    while (b.inbox.runDue().attempted > 0);
    expect(effects('ordered')).toEqual([1, 3, 5, 2, 4, 6])
    expect(b.inbox.list({ state: 'all' })).toEqual([])
  })

  it("order 'document': skipping the head lets the next event of the document run", () => {
    const { b, effect, effects } = receiver({ immediateRetries: 0, delayedRetries: 0 })
    b.onIngest(
      'ordered',
      (e, tx) => {
        if (e.seq === 1) throw new Error('bad first event')
        effect('ordered', e, tx.db)
      },
      { order: 'document' },
    )
    b.ingest(remoteEvents(['X', 'X']))
    expect(effects('ordered')).toEqual([])
    b.inbox.skip(b.inbox.list({ state: 'dead' })[0]!.id)
    expect(b.inbox.runDue()).toMatchObject({ done: 1 })
    expect(effects('ordered')).toEqual([2])
  })

  it("order 'none' (the default): later events of the same document do not wait", () => {
    const { b, effect, effects } = receiver({ immediateRetries: 0, delayedRetries: 0 })
    b.onIngest('free', (e, tx) => {
      if (e.seq === 1) throw new Error('bad')
      effect('free', e, tx.db)
    })
    b.ingest(remoteEvents(['X', 'X', 'X']))
    expect(effects('free')).toEqual([2, 3])
    expect(b.inbox.list().map((e) => e.seq)).toEqual([1])
  })
})

describe('inbox: compaction keeps owed events', () => {
  it('the base stops below the lowest owed event of each origin until it is handled or skipped', () => {
    const { b } = receiver({ immediateRetries: 0, delayedRetries: 0 })
    let broken = true
    b.onIngest('h', (e) => {
      if (broken && e.seq === 3) throw new Error('x')
    })
    b.ingest(remoteEvents(['d', 'd', 'd', 'd', 'd']))
    expect(b.signedFloor({ 'a/1': 5 })).toEqual({ 'a/1': 2 })
    b.raiseBase({ 'a/1': 5 })
    b.deleteBelowBase()
    expect(b.getEvent('a/1', 3)).toBeDefined()
    broken = false
    expect(b.inbox.retry(b.inbox.list()[0]!.id).outcome).toBe('done')
    expect(b.signedFloor({ 'a/1': 5 })).toEqual({ 'a/1': 5 })
  })
})

describe('inbox: an event stored while a known handler is not registered is owed to it', () => {
  it('across a restart: stored before the application registers it again, each runs once it does, in document order', () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const path = join(dir, 'b.db')
    const clock = { ms: 1_000 }
    const random = sequentialIncarnations()
    const open = () => EventStore.open({ path, druId: 'b', now: () => clock.ms, random, skewPolicy: 'tolerate' })
    const events = remoteEvents(['d1', 'd1', 'd2', 'd1'])
    const runs: number[] = []
    let b = open()
    b.onIngest('shipments', (e) => void runs.push(e.seq), { order: 'document' })
    b.ingest(events.slice(0, 1))
    expect(runs).toEqual([1])
    b.close()

    // The restart's window: the network stores events before the application calls onEvent.
    b = open()
    cleanups.push(() => b.close())
    b.ingest(events.slice(1, 3))
    expect(b.inbox.list()).toMatchObject([
      { handler: 'shipments', seq: 2, state: 'pending', attempts: 0, registered: false },
      { handler: 'shipments', seq: 3, state: 'pending', attempts: 0, registered: false },
    ])
    expect(b.signedFloor({ 'a/1': 3 })).toEqual({ 'a/1': 1 }) // owed events hold compaction back
    b.onIngest('shipments', (e) => void runs.push(e.seq), { order: 'document' })
    b.ingest(events.slice(3)) // d1 again: waits behind the owed #2
    expect(runs).toEqual([1])
    expect(b.inbox.runDue()).toMatchObject({ attempted: 2, done: 2 })
    expect(b.inbox.runDue()).toMatchObject({ attempted: 1, done: 1 })
    expect(runs).toEqual([1, 2, 3, 4])
    expect(b.inbox.list({ state: 'all' })).toEqual([])
    expect(b.inbox.runDue().attempted).toBe(0)
  })

  it('after an unsubscribe within the process too; a name never registered is owed nothing', () => {
    const { b, effect, effects } = receiver()
    const events = remoteEvents(['d1', 'd2', 'd3'])
    const off = b.onIngest('audit', (e, tx) => effect('audit', e, tx.db))
    b.ingest(events.slice(0, 1))
    off()
    b.ingest(events.slice(1))
    expect(effects('audit')).toEqual([1])
    expect(b.inbox.known()).toEqual([{ name: 'audit', order: 'none', registered: false }])
    expect(b.inbox.counts().pending).toBe(2)
    b.onIngest('audit', (e, tx) => effect('audit', e, tx.db))
    expect(b.inbox.runDue()).toMatchObject({ attempted: 2, done: 2 })
    expect(effects('audit')).toEqual([1, 2, 3])
    expect(b.inbox.list({ state: 'all', handler: 'other' })).toEqual([])
  })

  it('forget drops a removed handler: its entries, its name, and what later events would owe it', () => {
    const { b } = receiver()
    const events = remoteEvents(['d1', 'd2', 'd3'])
    const off = b.onIngest('mailer', () => undefined)
    expect(codeOf(() => b.inbox.forget('mailer'))).toBe('INVALID_ARGUMENT') // registered
    off()
    b.ingest(events.slice(0, 2))
    expect(b.signedFloor({ 'a/1': 2 })).toEqual({})
    expect(b.inbox.forget('mailer')).toBe(2)
    expect(b.signedFloor({ 'a/1': 2 })).toEqual({ 'a/1': 2 })
    b.ingest(events.slice(2))
    expect(b.inbox.list({ state: 'all' })).toEqual([])
    expect(b.inbox.known()).toEqual([])
    expect(codeOf(() => b.inbox.forget('mailer'))).toBe('NOT_FOUND')
    expect(codeOf(() => b.inbox.forget('bad name!'))).toBe('INVALID_ARGUMENT')
  })
})

describe('inbox: the registration window (openDru holds it until it has returned)', () => {
  it('a handler registered for the first time inside it is owed every remote event stored since it opened, not local ones', () => {
    const { b, effect, effects } = receiver()
    const release = b.inbox.holdForRegistration()
    b.ingest(remoteEvents(['d1', 'd1', 'd2']))
    b.append('mine', bytes(9)) // a local event: never a handler's
    b.onIngest('new', (e, tx) => effect('new', e, tx.db), { order: 'document' })
    expect(b.inbox.list().map((e) => [e.seq, e.state, e.attempts])).toEqual([
      [1, 'pending', 0],
      [2, 'waiting', 0],
      [3, 'pending', 0],
    ])
    expect(b.inbox.runDue()).toMatchObject({ attempted: 2, done: 2 })
    expect(b.inbox.runDue()).toMatchObject({ attempted: 1, done: 1 })
    expect(effects('new')).toEqual([1, 3, 2])
    release()
    // After the window a new handler starts from its registration, as before.
    b.onIngest('later', (e, tx) => effect('later', e, tx.db))
    expect(b.inbox.list({ state: 'all' })).toEqual([])
  })

  it('outside it nothing is owed to a handler that was never registered', () => {
    const { b, effect, effects } = receiver()
    b.inbox.holdForRegistration()() // opened and released at once
    b.ingest(remoteEvents(['d1', 'd2']))
    b.onIngest('new', (e, tx) => effect('new', e, tx.db))
    expect(b.inbox.runDue().attempted).toBe(0)
    expect(effects('new')).toEqual([])
  })
})
