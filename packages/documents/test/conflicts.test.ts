import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as A from '@automerge/automerge'
import { EventStore } from '@dru/store-sqlite'
import fc from 'fast-check'
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  DocumentStore,
  chooseWinner,
  originForActor,
  type Conflict,
  type ConflictPolicy,
  type DocumentStoreOptions,
} from '@dru/documents'
import { RECENT_WRITERS } from '../src/recent-writers.js'

const open: Array<{ store: EventStore; docs: DocumentStore }> = []
let clock = 1_700_000_000_000

/** Makes a new store's (fresh) incarnation 1, so origins read `eu-west-1/1`. */
const firstIncarnation = () => {
  const draws = [0, 1]
  return () => draws.shift() ?? 2
}

function make(druId: string, options: DocumentStoreOptions = {}) {
  const now = () => clock
  const store = EventStore.open({ path: ':memory:', druId, now, skewPolicy: 'tolerate', random: firstIncarnation() })
  const docs = new DocumentStore(store, {
    now,
    onError: (e) => {
      throw e
    },
    ...options,
  })
  open.push({ store, docs })
  return { store, docs }
}

function exchange(...sides: Array<{ store: EventStore }>): void {
  for (let round = 0; round < 2; round++) {
    for (const from of sides)
      for (const to of sides)
        if (from !== to) for (const b of from.store.eventsMissing(to.store.vv())) to.store.ingest(b)
  }
}

afterEach(() => {
  for (const { store, docs } of open.splice(0)) {
    docs.close()
    store.close()
  }
})

/** Two DRUs set the same field while partitioned. */
function partitionedWrites(options: DocumentStoreOptions = {}) {
  const eu = make('eu-west-1', options)
  const us = make('us-east-1', options)
  eu.docs.change('order-42', (d) => {
    d.status = 'new'
    d.qty = 1
  })
  exchange(eu, us)
  clock += 1000
  eu.docs.change('order-42', (d) => {
    d.status = 'paid'
  })
  clock += 1000
  us.docs.change('order-42', (d) => {
    d.status = 'cancelled'
  })
  return { eu, us }
}

describe('conflicts', () => {
  it('a remote batch longer than the recent-writers window names the local writers of its conflicts without reading the log', () => {
    // The batch joins the window only after the writers are named (materializer.ts): the
    // window still holds the local writes, which the batch would otherwise push out, sending
    // every lookup of a local op to the log.
    const opts = { backgroundApply: false } as const
    const eu = make('eu-west-1', opts)
    const us = make('us-east-1', opts)
    eu.docs.change('d', (d) => {
      d.x = 0
    })
    exchange(eu, us)
    const local = new Map<string, string>()
    for (let i = 0; i < 4; i++) {
      clock += 1
      const e = eu.docs.change('d', (d) => {
        d[`k${i}`] = `eu-${i}`
      })!
      local.set(`k${i}`, e.hlc)
    }
    for (let i = 0; i < RECENT_WRITERS + 20; i++) {
      clock += 1
      us.docs.change('d', (d) => {
        d[`k${i % 4}`] = `us-${i}`
      })
    }
    eu.docs.get('d') // cached, with its local writes in the window
    for (const b of us.store.eventsMissing(eu.store.vv())) eu.store.ingest(b)
    const reads = [
      vi.spyOn(eu.store, 'getEvent'),
      vi.spyOn(eu.store, 'eventsForDoc'),
      vi.spyOn(eu.store, 'eventSeqsForDoc'),
    ]
    eu.docs.get('d') // applies the queued batch
    for (const spy of reads) expect(spy).not.toHaveBeenCalled()
    const found = eu.docs.listConflicts('all')
    expect(found).toHaveLength(4)
    for (const c of found) {
      const mine = c.values.find((v) => v.origin === eu.store.origin)!
      expect(mine.hlc).toBe(local.get(String(c.path[0])))
      expect(c.values.every((v) => typeof v.hlc === 'string')).toBe(true)
    }
  })

  it('a partition where two DRUs set the same field yields exactly one conflict record on each side', () => {
    const { eu, us } = partitionedWrites()
    exchange(eu, us)
    // Duplicates and replays do not record it again.
    for (const b of eu.store.eventsMissing({})) us.store.ingest(b)
    us.docs.dropCache()
    us.docs.get('order-42') // a cold reload sees the same conflict: still one record
    for (const side of [eu, us]) {
      const list = side.docs.listConflicts()
      expect(list).toHaveLength(1)
      const c = list[0]!
      expect(c.docId).toBe('order-42')
      expect(c.path).toEqual(['status'])
      expect(c.status).toBe('open')
      const byOrigin = Object.fromEntries(c.values.map((v) => [v.origin, v.value]))
      expect(byOrigin).toEqual({ 'eu-west-1/1': 'paid', 'us-east-1/1': 'cancelled' })
      for (const v of c.values) expect(v.hlc).toMatch(/\S/)
      // The later write carries the later HLC.
      const us1 = c.values.find((v) => v.origin === 'us-east-1/1')!
      const eu1 = c.values.find((v) => v.origin === 'eu-west-1/1')!
      expect(us1.hlc! > eu1.hlc!).toBe(true)
    }
    // The untouched field is not a conflict.
    expect(eu.docs.get('order-42')).toMatchObject({ qty: 1 })
  })

  it('resolving on one side is an ordinary change that clears the conflict on both after exchange', () => {
    const { eu, us } = partitionedWrites()
    exchange(eu, us)
    const [c] = eu.docs.listConflicts()
    const event = eu.docs.resolveConflict(c!.id, 'refunded')
    expect(event?.docId).toBe('order-42')
    expect(eu.docs.getConflict(c!.id)).toMatchObject({
      status: 'resolved',
      resolution: 'refunded',
      resolvedBy: 'operator',
    })
    expect(us.docs.listConflicts()).toHaveLength(1)
    exchange(eu, us)
    expect(us.docs.listConflicts()).toHaveLength(0)
    const [r] = us.docs.listConflicts('resolved')
    expect(r).toMatchObject({ status: 'resolved', resolution: 'refunded', resolvedBy: 'replicated' })
    expect(eu.docs.get('order-42')).toEqual(us.docs.get('order-42'))
    expect(us.docs.get('order-42')).toMatchObject({ status: 'refunded' })
    expect(() => eu.docs.resolveConflict(c!.id, 'x')).toThrow(/already resolved/)
  })

  it('a conflict on a cold document is found when conflicts are listed', () => {
    const eu = make('eu-west-1')
    const us = make('us-east-1')
    const obs = make('ap-south-1', { cache: { maxDocs: 1 } })
    eu.docs.change('d', (d) => {
      d.m = { x: 1 }
    })
    exchange(eu, us, obs)
    eu.docs.change('d', (d) => {
      d.m.x = 2
    })
    us.docs.change('d', (d) => {
      d.m.x = 3
    })
    obs.docs.get('other') // nothing
    obs.docs.dropCache()
    exchange(eu, obs)
    exchange(us, obs)
    expect(obs.docs.isCached('d')).toBe(false)
    const list = obs.docs.listConflicts()
    expect(list.map((c) => c.path)).toEqual([['m', 'x']])
  })

  it('newest-hlc-wins settles automatically and both sides agree', () => {
    const { eu, us } = partitionedWrites({ conflictPolicy: 'newest-hlc-wins' })
    exchange(eu, us)
    // Remote changes reach a cached document when it is next read (listing conflicts reads
    // them): that is when the policy sees the conflict and writes its resolution.
    eu.docs.listConflicts()
    us.docs.listConflicts()
    exchange(eu, us)
    for (const side of [eu, us]) {
      expect(side.docs.listConflicts()).toHaveLength(0)
      expect(side.docs.get('order-42')).toMatchObject({ status: 'cancelled' }) // us wrote last
    }
    // Each side that saw the conflict settled it the same way (a side whose resolution
    // arrived with the conflicting write never sees it); equal concurrent resolutions are
    // no new conflict.
    const resolved = [...eu.docs.listConflicts('resolved'), ...us.docs.listConflicts('resolved')]
    expect(resolved.length).toBeGreaterThanOrEqual(1)
    expect(resolved.length).toBeLessThanOrEqual(2)
    for (const r of resolved) expect(r).toMatchObject({ resolution: 'cancelled', resolvedBy: 'policy' })
    expect(eu.docs.digest('order-42')).toEqual(us.docs.digest('order-42'))
  })

  it('keep-visible records the value both sides show, writes nothing, and leaves a conflicted counter open', () => {
    const { eu, us } = partitionedWrites({ conflictPolicy: 'keep-visible' })
    eu.docs.change('stock', (d) => {
      d.n = new A.Counter(1)
    })
    us.docs.change('stock', (d) => {
      d.n = new A.Counter(5)
    })
    exchange(eu, us)
    const events = [eu.store.count(), us.store.count()]
    for (const side of [eu, us]) expect(side.docs.listConflicts().map((c) => c.docId)).toEqual(['stock'])
    const shown = (eu.docs.get('order-42') as { status: string }).status
    for (const side of [eu, us]) {
      expect(side.docs.get('order-42')).toMatchObject({ status: shown })
      const [r] = side.docs.listConflicts('resolved')
      expect(r).toMatchObject({ docId: 'order-42', resolution: shown, resolvedBy: 'policy' })
      expect(r!.values.map((v) => v.value).sort()).toEqual(['cancelled', 'paid'])
    }
    // Nothing written to settle it, so the logs and the documents stay equal.
    expect([eu.store.count(), us.store.count()]).toEqual(events)
    exchange(eu, us)
    expect([eu.store.count(), us.store.count()]).toEqual(events)
    expect(eu.docs.digest('order-42')).toEqual(us.docs.digest('order-42'))
  })

  it('a keep-visible conflict whose row is written later is never lost: a crash before the write finds it again, a snapshot writes it first', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dru-settled-'))
    const path = join(dir, 'obs.db')
    const openObs = () => {
      const store = EventStore.open({
        path,
        druId: 'ap-south-1',
        now: () => clock,
        skewPolicy: 'tolerate',
        random: firstIncarnation(),
      })
      const docs = new DocumentStore(store, {
        now: () => clock,
        conflictPolicy: 'keep-visible',
        onError: (e) => {
          throw e
        },
      })
      return { store, docs }
    }
    const rows = (store: EventStore) => store.db.prepare('select count(*) from conflicts').pluck().get() as number
    try {
      const { eu, us } = partitionedWrites({ conflictPolicy: 'keep-visible' })
      let obs = openObs()
      exchange(eu, obs)
      obs.docs.get('order-42') // cached: the remote changes below queue on it
      exchange(us, obs)
      obs.docs.get('order-42') // applied: the conflict is found and settled, its row not yet written
      expect(rows(obs.store)).toBe(0)
      obs.store.close() // a crash: no documents close, no turn of the event loop
      obs = openObs()
      expect(obs.docs.listConflicts('resolved').map((c) => c.path)).toEqual([['status']])
      expect(rows(obs.store)).toBe(1)

      // Found again after a restart, and this time a snapshot is written before any read.
      obs.docs.get('other')
      clock += 1000
      eu.docs.change('order-42', (d) => (d.qty = 2))
      us.docs.change('order-42', (d) => (d.qty = 3))
      obs.docs.get('order-42')
      exchange(eu, us, obs)
      obs.docs.get('order-42')
      expect(rows(obs.store)).toBe(1)
      obs.docs.flushSnapshots()
      expect(rows(obs.store)).toBe(2)
      obs.store.close()
      obs = openObs()
      expect(obs.docs.listConflicts('resolved').map((c) => c.path)).toEqual([['status'], ['qty']])
      obs.docs.close()
      obs.store.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a failed write of the settled rows held back is reported, not thrown out of the event loop, and the rows are written later', async () => {
    const errors: unknown[] = []
    const { eu, us } = partitionedWrites({ conflictPolicy: 'keep-visible' })
    const obs = make('ap-south-1', { conflictPolicy: 'keep-visible', onError: (e) => errors.push(e) })
    exchange(eu, obs)
    obs.docs.get('order-42')
    exchange(us, obs)
    // A write that fails as a full disk would.
    obs.store.db.exec(
      "create trigger no_room before insert on conflicts begin select raise(abort, 'database or disk is full'); end",
    )
    obs.docs.get('order-42') // the conflict is found; its row waits for the end of the turn
    await new Promise((r) => setImmediate(r))
    expect(errors.map((e) => String((e as Error).message))).toEqual([expect.stringContaining('disk is full')])
    obs.store.db.exec('drop trigger no_room')
    expect(obs.docs.listConflicts('resolved').map((c) => c.path)).toEqual([['status']])
  })

  it('region priority picks the listed DRU first', () => {
    const { eu, us } = partitionedWrites({ conflictPolicy: { priority: ['eu-west-1', 'us-east-1'] } })
    exchange(eu, us)
    eu.docs.listConflicts()
    us.docs.listConflicts()
    exchange(eu, us)
    for (const side of [eu, us]) {
      expect(side.docs.listConflicts()).toHaveLength(0)
      expect(side.docs.get('order-42')).toMatchObject({ status: 'paid' })
    }
  })

  it('chooseWinner is deterministic and manual leaves it open', () => {
    const c: Conflict = {
      id: 1,
      docId: 'd',
      path: ['x'],
      detectedAt: 0,
      status: 'open',
      values: [
        { opId: '5@61', origin: 'a/1', hlc: null, value: 1 },
        { opId: '5@62', origin: 'b/1', hlc: null, value: 2 },
      ],
    }
    expect(chooseWinner('manual', c)).toBeUndefined()
    expect(chooseWinner('newest-hlc-wins', c)).toBe('5@62')
    expect(chooseWinner({ priority: ['a'] }, c)).toBe('5@61')
  })

  /** The HLC of the stored event whose change holds op `opId`, found by decoding every event of `docId`. */
  function writerHlc(store: EventStore, docId: string, opId: string): string | null {
    const at = opId.indexOf('@')
    const counter = Number(opId.slice(0, at))
    const origin = originForActor(opId.slice(at + 1))
    for (const e of store.eventsForDoc(docId)) {
      if (e.origin !== origin) continue
      const d = A.decodeChange(e.change)
      if (d.startOp <= counter && counter < d.startOp + d.ops.length) return e.hlc
    }
    return null
  }

  it.each([false, true])(
    'records each concurrent value with the HLC of the event that wrote it, hot and cold (earlier events compacted: %s)',
    (compact) => {
      const eu = make('eu-west-1')
      const us = make('us-east-1')
      // History before the partition: several changes per origin to the document, others between.
      for (let i = 0; i < 5; i++) {
        clock += 10
        eu.docs.change('d', (d) => (d[`e${i}`] = i))
        us.docs.change('d', (d) => (d[`u${i}`] = i))
        eu.docs.change('other', (d) => (d.n = i))
      }
      exchange(eu, us)
      if (compact) {
        for (const side of [eu, us]) {
          const steps = side.docs.compact(side.store.vv())
          while (!steps.next().done);
        }
      }
      clock += 1000
      eu.docs.change('d', (d) => {
        d.x = 'eu'
        d.y = 'eu'
      })
      clock += 1000
      us.docs.change('d', (d) => (d.x = 'us'))
      us.docs.change('d', (d) => (d.y = 'us'))
      us.docs.dropCache() // us finds them on a cold load, eu on a hot apply
      exchange(eu, us)
      for (const side of [eu, us]) {
        const list = side.docs.listConflicts()
        expect(list.map((c) => c.path)).toEqual([['x'], ['y']])
        for (const c of list) {
          expect(c.values).toHaveLength(2)
          for (const v of c.values) {
            expect(v.hlc).not.toBeNull()
            expect(v.hlc).toBe(writerHlc(side.store, 'd', v.opId))
          }
        }
      }
    },
  )

  it('records a third concurrent value that arrives after the first two were applied, though it loses and changes nothing visible', () => {
    const writers = [make('eu-west-1'), make('us-east-1'), make('ap-south-1')]
    writers[0]!.docs.change('d', (d) => (d.init = 1))
    for (const w of writers.slice(1)) exchange(writers[0]!, w)
    const reader = make('reader')
    exchange(writers[0]!, reader)
    reader.docs.get('d')
    writers.forEach((w, i) => w.docs.change('d', (d) => (d.k = `${i}`)))
    const deliver = (from: { store: EventStore }) => {
      for (const b of from.store.eventsMissing(reader.store.vv())) reader.store.ingest(b)
    }
    deliver(writers[0]!)
    deliver(writers[1]!)
    expect(reader.docs.listConflicts().map((c) => c.values.length)).toEqual([2])
    deliver(writers[2]!)
    reader.docs.get('d')
    // Before the fix: the two-way record was closed as replicated and the three-way one never written.
    const open = reader.docs.listConflicts()
    expect(open).toHaveLength(1)
    expect(open[0]!.values.map((v) => v.value).sort()).toEqual(['0', '1', '2'])
  })

  it('names for every concurrent value the event that wrote it, whatever the interleaving of writes, exchanges, compactions and cold loads', () => {
    const step = fc.oneof(
      { arbitrary: fc.record({ write: fc.nat(2), doc: fc.nat(1), key: fc.nat(1), value: fc.nat(3) }), weight: 8 },
      { arbitrary: fc.record({ exchange: fc.constant(true) }), weight: 2 },
      { arbitrary: fc.record({ compact: fc.nat(2) }), weight: 1 },
      { arbitrary: fc.record({ drop: fc.nat(2) }), weight: 1 },
    )
    fc.assert(
      fc.property(fc.array(step, { minLength: 8, maxLength: 40 }), (steps) => {
        const sides = [make('eu-west-1'), make('us-east-1'), make('ap-south-1')]
        try {
          for (const s of steps) {
            clock += 10
            if ('write' in s)
              sides[s.write]!.docs.change(`d${s.doc}`, (d) => (d[`k${s.key}`] = `${s.write}:${s.value}`))
            else if ('exchange' in s) exchange(...sides)
            else if ('compact' in s) {
              exchange(...sides) // compaction folds only what every peer holds
              const side = sides[s.compact]!
              const it = side.docs.compact(side.store.vv())
              while (!it.next().done);
            } else sides[s.drop]!.docs.dropCache()
          }
          exchange(...sides)
          for (const side of sides) {
            for (const c of side.docs.listConflicts()) {
              for (const v of c.values) expect(v.hlc).toBe(writerHlc(side.store, c.docId, v.opId) ?? v.hlc)
              // Stored writers are always found (folded ones only when compaction kept them countable).
              for (const v of c.values)
                if (writerHlc(side.store, c.docId, v.opId) !== null) expect(v.hlc).not.toBeNull()
            }
          }
        } finally {
          for (const side of sides) {
            const i = open.findIndex((o) => o.store === side.store)
            open.splice(i, 1)
            side.docs.close()
            side.store.close()
          }
        }
      }),
      { numRuns: 60 },
    )
  })

  it('names every writer when batches outrun the recent-writers window, a policy writes resolutions while a batch is recorded, and local writes meet queued batches (property)', () => {
    // A batch joins the window only after its conflicts are recorded (materializer.ts), and a
    // policy's resolution is a local write made during that recording: the window then holds
    // the resolution before the batch it answers. Every name must still be the log's answer.
    const step = fc.oneof(
      {
        arbitrary: fc.record({
          write: fc.nat(2),
          key: fc.nat(2),
          burst: fc.integer({ min: 1, max: RECENT_WRITERS + 30 }),
          twoKeys: fc.boolean(),
        }),
        weight: 6,
      },
      { arbitrary: fc.record({ from: fc.nat(2), to: fc.nat(2), smallBatches: fc.boolean() }), weight: 4 },
      { arbitrary: fc.record({ read: fc.nat(2) }), weight: 2 },
      { arbitrary: fc.record({ drop: fc.nat(2) }), weight: 1 },
    )
    let named = 0
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 4, maxLength: 25 }),
        fc.constantFrom<ConflictPolicy>('manual', 'newest-hlc-wins', 'keep-visible'),
        fc.boolean(),
        (steps, conflictPolicy, background) => {
          const opts: DocumentStoreOptions = { conflictPolicy, ...(background ? {} : { backgroundApply: false }) }
          const sides = [make('eu-west-1', opts), make('us-east-1', opts), make('ap-south-1', opts)]
          const send = (from: (typeof sides)[number], to: (typeof sides)[number], maxBatchBytes = 1 << 20) => {
            for (const b of from.store.eventsMissing(to.store.vv(), { maxBatchBytes })) to.store.ingest(b)
          }
          try {
            let value = 0
            for (const s of steps) {
              clock += 10
              if ('write' in s) {
                for (let i = 0; i < s.burst; i++) {
                  clock += 1
                  sides[s.write]!.docs.change('d', (d) => {
                    d[`k${(s.key + i) % 3}`] = `${s.write}:${value++}`
                    if (s.twoKeys) d[`k${(s.key + i + 1) % 3}`] = `${s.write}:${value++}`
                  })
                }
              } else if ('from' in s) {
                // Without background apply, what arrives waits on the cached document for the next read or write.
                if (s.from !== s.to) send(sides[s.from]!, sides[s.to]!, s.smallBatches ? 2_000 : undefined)
              } else if ('read' in s) sides[s.read]!.docs.get('d')
              else sides[s.drop]!.docs.dropCache()
            }
            for (const a of sides) for (const b of sides) if (a !== b) send(a, b)
            for (const side of sides) {
              side.docs.get('d')
              for (const c of side.docs.listConflicts('all')) {
                for (const v of c.values) {
                  const writer = writerHlc(side.store, c.docId, v.opId)
                  if (writer === null) continue
                  expect(v.hlc, `${JSON.stringify(c.path)} ${v.opId}`).toBe(writer)
                  named++
                }
              }
            }
          } finally {
            for (const side of sides) {
              open.splice(
                open.findIndex((o) => o.store === side.store),
                1,
              )
              side.docs.close()
              side.store.close()
            }
          }
        },
      ),
      { numRuns: 15 },
    )
    // Not vacuous: conflicts were found and their writers checked.
    expect(named).toBeGreaterThan(0)
  })
})
