import { EventStore } from '@dru/store-sqlite'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { DocumentStore, type BackgroundApplyOptions, type Conflict, type Scheduler } from '@dru/documents'

const open: Array<{ store: EventStore; docs: DocumentStore }> = []
let clock = 1_700_000_000_000

afterEach(() => {
  for (const { store, docs } of open.splice(0)) {
    docs.close()
    store.close()
  }
})

/** A scheduler driven by hand: tasks wait in a list until the test runs them. */
function manualScheduler() {
  const tasks: Array<{ run: () => void; delayMs: number; cancelled: boolean }> = []
  const schedule: Scheduler = (run, delayMs) => {
    const task = { run, delayMs, cancelled: false }
    tasks.push(task)
    return () => {
      task.cancelled = true
    }
  }
  /** Runs the next live task; false when none is left. */
  const step = (): boolean => {
    for (;;) {
      const task = tasks.shift()
      if (!task) return false
      if (task.cancelled) continue
      task.run()
      return true
    }
  }
  const live = () => tasks.filter((t) => !t.cancelled).length
  return { schedule, step, live, tasks }
}

function make(druId: string, backgroundApply: BackgroundApplyOptions | false = false) {
  const now = () => clock
  const store = EventStore.open({ path: ':memory:', druId, now, skewPolicy: 'tolerate' })
  const docs = new DocumentStore(store, {
    now,
    backgroundApply,
    onError: (e) => {
      throw e
    },
  })
  open.push({ store, docs })
  return { store, docs }
}

/** Every event `from` holds that `to` lacks, ingested as remote batches; returns how many. */
function deliver(from: { store: EventStore }, to: { store: EventStore }): number {
  let n = 0
  for (const b of from.store.eventsMissing(to.store.vv())) n += to.store.ingest(b).stored.length
  return n
}

/** A clock for the slice budget and the quiet period, moved by hand. */
function fakeTime(stepPerRead = 0) {
  let t = 0
  return {
    now: () => (t += stepPerRead),
    advance: (ms: number) => (t += ms),
  }
}

/** A reader that caches documents d0..d{n-1} from `writer`. */
function cachedReader(writer: { store: EventStore }, docCount: number, bg: BackgroundApplyOptions | false) {
  const reader = make('reader', bg)
  deliver(writer, reader)
  for (let i = 0; i < docCount; i++) reader.docs.get(`d${i}`)
  return reader
}

describe('background apply of queued remote changes', () => {
  it('leaves nothing queued once the slices a remote commit scheduled have run, before any read', () => {
    const writer = make('eu-west-1')
    for (let i = 0; i < 5; i++) writer.docs.change(`d${i}`, (d) => (d.n = 0))
    const sched = manualScheduler()
    const time = fakeTime()
    const reader = cachedReader(writer, 5, { schedule: sched.schedule, now: time.now, minPending: 3, quietMs: 10 })
    // Uneven queues: d0 gets 6 changes, d1 4, d2..d4 one each (below minPending until quiet).
    for (const [doc, count] of [
      [0, 6],
      [1, 4],
      [2, 1],
      [3, 1],
      [4, 1],
    ] as const)
      for (let k = 1; k <= count; k++) writer.docs.change(`d${doc}`, (d) => (d.n = k))
    const before = reader.docs.stats()
    const received = deliver(writer, reader)
    expect(received).toBe(13)
    expect(reader.docs.stats().remoteApplied).toBe(before.remoteApplied) // only queued so far
    // The first slice takes the long queues (most first); the short ones wait for the quiet period.
    expect(sched.step()).toBe(true)
    expect(reader.docs.stats().remoteApplied - before.remoteApplied).toBe(10)
    expect(sched.live()).toBe(1)
    expect(sched.tasks.at(-1)!.delayMs).toBeGreaterThan(0)
    time.advance(10)
    while (sched.step());
    const after = reader.docs.stats()
    expect(after.remoteApplied - before.remoteApplied).toBe(received)
    expect(after.backgroundApplied).toBe(5)
    expect(after.loads).toBe(before.loads)
    for (let i = 0; i < 5; i++) expect(reader.docs.get(`d${i}`)).toEqual(writer.docs.get(`d${i}`))
    // The reads found nothing left to apply.
    expect(reader.docs.stats().remoteApplied).toBe(after.remoteApplied)
  })

  it('bounds a slice by its time budget, not by how much is queued (one document per slice when each takes the budget)', () => {
    const writer = make('eu-west-1')
    for (let i = 0; i < 6; i++) writer.docs.change(`d${i}`, (d) => (d.n = 0))
    const sched = manualScheduler()
    // Every clock read moves time by the whole budget: after one document the slice is spent.
    const time = fakeTime(4)
    const reader = cachedReader(writer, 6, { schedule: sched.schedule, now: time.now, sliceMs: 4, minPending: 1 })
    for (let i = 0; i < 6; i++) writer.docs.change(`d${i}`, (d) => (d.n = 1))
    deliver(writer, reader)
    let slices = 0
    while (sched.step()) slices++
    expect(slices).toBe(6)
    expect(reader.docs.stats().backgroundApplied).toBe(6)
  })

  it('runs no slice after close, even one already scheduled', () => {
    const writer = make('eu-west-1')
    writer.docs.change('d0', (d) => (d.n = 0))
    const sched = manualScheduler()
    const reader = cachedReader(writer, 1, { schedule: sched.schedule, now: fakeTime().now, minPending: 1 })
    writer.docs.change('d0', (d) => (d.n = 1))
    deliver(writer, reader)
    const pending = sched.tasks.filter((t) => !t.cancelled)
    expect(pending).toHaveLength(1)
    const applied = reader.docs.stats().remoteApplied
    reader.docs.close()
    expect(pending[0]!.cancelled).toBe(true)
    // A scheduler that ignores the cancel: the slice still does nothing.
    pending[0]!.run()
    expect(reader.docs.stats().remoteApplied).toBe(applied)
    expect(reader.docs.stats().backgroundApplied).toBe(0)
  })

  it('yields the same content and open conflicts as applying on read, for any interleaving of writes, deliveries, slices and reads', () => {
    const step = fc.oneof(
      { arbitrary: fc.record({ write: fc.nat(2), doc: fc.nat(2), key: fc.nat(2), value: fc.nat(3) }), weight: 8 },
      { arbitrary: fc.record({ deliver: fc.nat(2) }), weight: 3 },
      { arbitrary: fc.record({ sync: fc.nat(2) }), weight: 1 },
      { arbitrary: fc.record({ slices: fc.nat(3), wait: fc.boolean() }), weight: 3 },
      { arbitrary: fc.record({ read: fc.nat(2) }), weight: 2 },
    )
    const openConflicts = (docs: DocumentStore) =>
      docs
        .listConflicts('open')
        .map((c: Conflict) => ({
          docId: c.docId,
          path: c.path,
          values: c.values.map((v) => [v.origin, JSON.stringify(v.value)]).sort(),
        }))
        .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))
    fc.assert(
      fc.property(fc.array(step, { minLength: 10, maxLength: 50 }), fc.nat(3), (steps, minPending) => {
        const writers = [make('eu-west-1'), make('us-east-1'), make('ap-south-1')]
        writers[0]!.docs.transact((tx) => {
          for (let i = 0; i < 3; i++) tx.change(`d${i}`, (d) => (d.init = i))
        })
        for (const w of writers.slice(1)) deliver(writers[0]!, w)
        const sched = manualScheduler()
        const time = fakeTime(1)
        const onRead = cachedReader(writers[0]!, 3, false)
        const background = cachedReader(writers[0]!, 3, {
          schedule: sched.schedule,
          now: time.now,
          sliceMs: 2,
          minPending: minPending + 1,
          quietMs: 5,
        })
        for (const s of steps) {
          clock += 10
          if ('write' in s)
            writers[s.write]!.docs.change(`d${s.doc}`, (d) => (d[`k${s.key}`] = `${s.write}:${s.value}`))
          else if ('deliver' in s) {
            deliver(writers[s.deliver]!, onRead)
            deliver(writers[s.deliver]!, background)
          } else if ('sync' in s) deliver(writers[s.sync]!, writers[(s.sync + 1) % 3]!)
          else if ('slices' in s) {
            if (s.wait) time.advance(5)
            for (let k = 0; k < s.slices; k++) sched.step()
          } else {
            // A read between slices sees every committed change.
            expect(background.docs.get(`d${s.read}`)).toEqual(onRead.docs.get(`d${s.read}`))
          }
        }
        for (const w of writers) {
          deliver(w, onRead)
          deliver(w, background)
        }
        time.advance(5)
        while (sched.step());
        expect(background.docs.stats().remoteApplied).toBe(background.store.count() - 3)
        for (let i = 0; i < 3; i++) expect(background.docs.get(`d${i}`)).toEqual(onRead.docs.get(`d${i}`))
        expect(openConflicts(background.docs)).toEqual(openConflicts(onRead.docs))
        for (const side of [...writers, onRead, background]) {
          open.splice(
            open.findIndex((o) => o.store === side.store),
            1,
          )
          side.docs.close()
          side.store.close()
        }
      }),
      {
        numRuns: 80,
        // Shrunk counterexamples: a third concurrent value that lost (no patch) went unrecorded
        // when the two-way conflict had been applied and recorded before it.
        examples: [
          [
            [
              { write: 0, doc: 2, key: 1, value: 0 },
              { deliver: 0 },
              { write: 2, doc: 2, key: 1, value: 0 },
              { read: 0 },
              { slices: 0, wait: false },
              { read: 0 },
              { write: 1, doc: 2, key: 1, value: 0 },
              { deliver: 1 },
              { slices: 0, wait: false },
              { slices: 1, wait: false },
              { deliver: 0 },
              { deliver: 0 },
              { read: 0 },
            ],
            0,
          ],
          [
            [
              { write: 1, doc: 2, key: 1, value: 0 },
              { write: 0, doc: 2, key: 1, value: 0 },
              { write: 2, doc: 2, key: 1, value: 0 },
              { deliver: 0 },
              { deliver: 1 },
              { slices: 0, wait: false },
              { write: 0, doc: 0, key: 0, value: 0 },
              { write: 0, doc: 0, key: 0, value: 0 },
              { sync: 0 },
              { write: 0, doc: 0, key: 0, value: 0 },
              { read: 0 },
              { sync: 0 },
              { slices: 1, wait: false },
              { write: 0, doc: 0, key: 0, value: 0 },
              { write: 0, doc: 0, key: 0, value: 0 },
            ],
            0,
          ],
        ],
      },
    )
  })
})
