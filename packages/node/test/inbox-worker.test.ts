import { afterEach, describe, expect, it } from 'vitest'
import { silentLogger } from '@dru/sync'
import type { DruEvent } from '@dru/core'
import { openDru, type Dru } from '../src/index.js'
import { InboxWorker, type WorkerTimers } from '../src/inbox-worker.js'

const open: Dru[] = []
afterEach(async () => {
  while (open.length) await open.pop()!.close()
})

/** A hand-driven clock and timer queue: `next()` jumps to the earliest timer and fires it. */
function fakeTime(start = 1_800_000_000_000) {
  const clock = { ms: start }
  let seq = 0
  const queue = new Map<number, { at: number; fn: () => void }>()
  const timers: WorkerTimers = {
    setTimeout: (fn, ms) => {
      queue.set(++seq, { at: clock.ms + ms, fn })
      return seq
    },
    clearTimeout: (h) => void queue.delete(h as number),
  }
  const next = (): boolean => {
    const first = [...queue.entries()].sort((a, b) => a[1].at - b[1].at)[0]
    if (!first) return false
    queue.delete(first[0])
    clock.ms = Math.max(clock.ms, first[1].at)
    first[1].fn()
    return true
  }
  return { clock, timers, next, pending: () => queue.size }
}

async function remoteEvents(n: number, doc = (i: number) => `doc-${i}`): Promise<DruEvent[]> {
  const a = await openDru({ id: 'a', path: ':memory:' })
  for (let i = 0; i < n; i++) {
    await a.change(doc(i), (d: Record<string, unknown>) => {
      d.i = i
    })
  }
  const events = [...a.store.eventsMissing({})].flat()
  await a.close()
  return events
}

async function receiver(clock: { ms: number }, timers: WorkerTimers, inbox: Record<string, number>) {
  const b = await openDru({ id: 'b', path: ':memory:', now: () => clock.ms, inbox: { ...inbox, autoRetry: false } })
  open.push(b)
  const worker = new InboxWorker({ inbox: b.store.inbox, now: () => clock.ms, log: silentLogger, timers })
  b.store.inbox.onWake(() => worker.wake())
  b.store.onCommit((_e, source) => source === 'remote' && worker.wake())
  b.onClose(() => worker.stop())
  return { b, worker }
}

describe('inbox retry worker', () => {
  it('retries with backoff and stops at the dead letter: a fixed number of calls, however long it runs', async () => {
    const t = fakeTime()
    const { b, worker } = await receiver(t.clock, t.timers, {
      immediateRetries: 2,
      delayedRetries: 3,
      backoffMs: 1_000,
      maxBackoffMs: 60_000,
    })
    const calls: number[] = []
    b.onEvent('always-fails', () => {
      calls.push(t.clock.ms)
      throw new Error('bug')
    })
    const start = t.clock.ms
    b.store.ingest(await remoteEvents(1))
    // A simulated week: the worker only ever sleeps on its timer.
    while (t.clock.ms - start < 7 * 86_400_000 && t.next());
    expect(calls.map((at) => at - start)).toEqual([0, 0, 0, 1_000, 3_000, 7_000])
    expect(b.inbox.list({ state: 'dead' })).toHaveLength(1)
    // After the dead letter only the idle poll (once a minute) is left: no hot loop.
    expect(worker.turns).toBeLessThan(6 + (7 * 86_400_000) / 60_000 + 2)
  })

  it('bounds the work of one turn by the batch size and yields between turns', async () => {
    const t = fakeTime()
    const { b, worker } = await receiver(t.clock, t.timers, { immediateRetries: 1, delayedRetries: 0, batch: 10 })
    let broken = true
    let runs = 0
    b.onEvent('h', () => {
      runs++
      if (broken) throw new Error('down')
    })
    b.store.ingest(await remoteEvents(25))
    expect(runs).toBe(25)
    broken = false
    const perTurn: number[] = []
    for (let before = runs; t.next(); before = runs) {
      perTurn.push(runs - before)
      if (b.inbox.counts().pending === 0) break
    }
    expect(perTurn).toEqual([10, 10, 5])
    expect(worker.turns).toBe(3)
    expect(b.inbox.list({ state: 'all' })).toEqual([])
  })

  it('wakes for an operator action and for a handler registered after a restart', async () => {
    const t = fakeTime()
    const { b } = await receiver(t.clock, t.timers, { immediateRetries: 0, delayedRetries: 0 })
    let broken = true
    const off = b.onEvent('h', () => {
      if (broken) throw new Error('down')
    })
    b.store.ingest(await remoteEvents(2))
    expect(b.inbox.counts().dead).toBe(2)
    broken = false
    // Unregistered, its entries are not run even when requeued.
    off()
    expect(b.inbox.retryDead()).toBe(2)
    while (t.next() && t.pending() > 0 && t.clock.ms < 1_800_000_600_000);
    expect(b.inbox.counts().pending).toBe(2)
    let runs = 0
    b.onEvent('h', () => void runs++)
    t.next()
    expect(runs).toBe(2)
    expect(b.inbox.counts().pending).toBe(0)
  })
})
