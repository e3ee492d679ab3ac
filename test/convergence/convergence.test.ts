import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  Rng,
  SimNetwork,
  applyOp,
  assertConverged,
  docOpArb,
  runSchedule,
  scheduleArb,
  type ScheduleStep,
} from '@dru/testkit'

const RUNS = Number(process.env.DRU_PROPERTY_RUNS ?? 200)

async function converge(size: number, seed: number, steps: readonly ScheduleStep[], maxDocs = 1000): Promise<void> {
  const net = await SimNetwork.create({
    size,
    seed,
    config: { cache: { maxDocs } },
    faults: { duplicate: 0.2, delay: 0.2, reorder: 0.3, replay: 0.2 },
    maxBatchBytes: 300,
  })
  try {
    await runSchedule(net, steps)
    net.healAll()
    net.settle()
    assertConverged(net.drus)
  } finally {
    await net.close()
  }
}

describe('convergence (guarantee 4)', () => {
  it(
    `3-5 DRUs, random ops and partitions with duplication, delay, reordering and replay converge (${RUNS} runs)`,
    async () => {
      const run = fc.integer({ min: 3, max: 5 }).chain((size) =>
        fc.record({
          size: fc.constant(size),
          seed: fc.nat(),
          // A one-document cache forces evictions and cold loads in the middle of the run.
          maxDocs: fc.constantFrom(1, 1000),
          steps: scheduleArb(size, { minSteps: 10, maxSteps: 60 }),
        }),
      )
      await fc.assert(
        fc.asyncProperty(run, async ({ size, seed, steps, maxDocs }) => converge(size, seed, steps, maxDocs)),
        { numRuns: RUNS, seed: 20261125 },
      )
    },
    Math.max(180_000, RUNS * 500),
  )

  it('assertConverged fails with a readable diff when a DRU misses an event', async () => {
    const net = await SimNetwork.create({ size: 2, seed: 1 })
    try {
      net.cut(0, 1)
      await net.drus[0]!.change('doc-a', (d) => {
        d.x = 1
      })
      expect(() => assertConverged(net.drus)).toThrow(/fingerprint of dru-1[\s\S]*doc-a: present on dru-0 only/)
      net.healAll()
      net.settle()
      assertConverged(net.drus)
    } finally {
      await net.close()
    }
  })
})

describe('regressions found by the convergence property', () => {
  it('a change made inside a list that lost a conflict, whose dependency comes in the same batch (the depth screen held it back for ever)', async () => {
    // Shrunk counterexample (seed 20261125, run 136) of the first depth screen: dru-0's own
    // list lost a conflict to dru-1's at key l, and dru-3's text made inside dru-0's list
    // arrived with its dependency in the same batch. The screen read the list's depth as of
    // the change's dependencies before that batch was applied, held the change back, and
    // nothing screened it again: dru-0 never applied it. Held changes are now screened again
    // after each apply (applyScreened).
    const steps = JSON.parse(
      '[{"kind": "cut", "a": 0, "b": 1, "oneWay": false}, {"kind": "cut", "a": 1, "b": 3, "oneWay": false}, {"kind": "op", "dru": 0, "op": {"kind": "listInsert", "docId": "doc-a", "key": "l", "index": 0, "value": null}}, {"kind": "op", "dru": 1, "op": {"kind": "listInsert", "docId": "doc-a", "key": "l", "index": 0, "value": ""}}, {"kind": "exchange", "rounds": 1}, {"kind": "op", "dru": 3, "op": {"kind": "listDelete", "docId": "doc-a", "key": "l", "index": 0}}, {"kind": "op", "dru": 3, "op": {"kind": "listInsert", "docId": "doc-a", "key": "l", "index": 0, "value": ""}}, {"kind": "op", "dru": 0, "op": {"kind": "increment", "docId": "doc-a", "key": "n1", "by": 0}}, {"kind": "op", "dru": 0, "op": {"kind": "increment", "docId": "doc-a", "key": "n1", "by": 0}}, {"kind": "cut", "a": 0, "b": 1, "oneWay": false}, {"kind": "op", "dru": 0, "op": {"kind": "set", "docId": "doc-a", "path": [], "key": "a", "value": null}}, {"kind": "heal", "a": 0, "b": 1}, {"kind": "op", "dru": 0, "op": {"kind": "set", "docId": "doc-a", "path": [], "key": "a", "value": 0}}, {"kind": "cut", "a": 1, "b": 0, "oneWay": false}, {"kind": "op", "dru": 0, "op": {"kind": "set", "docId": "doc-a", "path": [], "key": "a", "value": 0}}, {"kind": "exchange", "rounds": 1}, {"kind": "op", "dru": 0, "op": {"kind": "listInsert", "docId": "doc-a", "key": "l", "index": 0, "value": 0}}]',
    ) as ScheduleStep[]
    await converge(4, 2139094518, steps, 1)
  })

  it('a batch with a delete and a concurrent put of one key (Automerge view kept the deleted value)', async () => {
    // Shrunk counterexample (5000 runs): dru-2 applied dru-0's delete of "a" and dru-1's
    // concurrent a = 1 in one batch; Automerge reported only a `conflict` patch and the
    // view kept a = 0, which the delete had removed.
    const steps = JSON.parse(
      '[{"kind":"op","dru":1,"op":{"kind":"set","docId":"doc-a","path":[],"key":"a","value":false}},{"kind":"op","dru":0,"op":{"kind":"set","docId":"doc-a","path":[],"key":"a","value":false}},{"kind":"exchange","rounds":1},{"kind":"exchange","rounds":2},{"kind":"op","dru":2,"op":{"kind":"set","docId":"doc-a","path":[],"key":"a","value":0}},{"kind":"partition","groups":[[0,2],[1]]},{"kind":"exchange","rounds":1},{"kind":"op","dru":0,"op":{"kind":"delete","docId":"doc-a","path":[],"key":"a"}},{"kind":"op","dru":0,"op":{"kind":"delete","docId":"doc-a","path":[],"key":"a"}},{"kind":"partition","groups":[[0,2],[1]]},{"kind":"op","dru":2,"op":{"kind":"listInsert","docId":"doc-a","key":"l","index":0,"value":""}},{"kind":"exchange","rounds":1},{"kind":"cut","a":0,"b":1,"oneWay":false},{"kind":"partition","groups":[[0],[1,2]]},{"kind":"exchange","rounds":1},{"kind":"op","dru":0,"op":{"kind":"set","docId":"doc-a","path":[],"key":"c","value":null}},{"kind":"op","dru":1,"op":{"kind":"set","docId":"doc-a","path":[],"key":"a","value":1}}]',
    ) as ScheduleStep[]
    await converge(3, 0, steps, 1)
  })

  it('a remote increment of a counter conflicted earlier, with no patch reported (Automerge view kept the old value)', async () => {
    // Shrunk counterexample (seed 20261125 with 1500 runs): dru-1's cached doc-b held three
    // concurrent counters n1; dru-0's later increment arrived with no patch for n1, so the
    // view stayed at 0 while the stored state was -1.
    const steps = JSON.parse(
      '[{"kind":"op","dru":0,"op":{"kind":"increment","docId":"doc-b","key":"n1","by":0}},{"kind":"op","dru":2,"op":{"kind":"increment","docId":"doc-b","key":"n1","by":0}},{"kind":"op","dru":1,"op":{"kind":"increment","docId":"doc-b","key":"n2","by":0}},{"kind":"op","dru":1,"op":{"kind":"increment","docId":"doc-b","key":"n1","by":0}},{"kind":"partition","groups":[[0,1],[2,3]]},{"kind":"exchange","rounds":2},{"kind":"op","dru":0,"op":{"kind":"listDelete","docId":"doc-a","key":"l","index":0}},{"kind":"healAll"},{"kind":"op","dru":0,"op":{"kind":"listInsert","docId":"doc-a","key":"l","index":0,"value":0}},{"kind":"cut","a":0,"b":1,"oneWay":false},{"kind":"op","dru":0,"op":{"kind":"listInsert","docId":"doc-a","key":"l","index":0,"value":null}},{"kind":"op","dru":0,"op":{"kind":"increment","docId":"doc-b","key":"n1","by":-1}},{"kind":"cut","a":0,"b":1,"oneWay":false},{"kind":"op","dru":0,"op":{"kind":"delete","docId":"doc-a","path":[],"key":"a"}},{"kind":"op","dru":1,"op":{"kind":"set","docId":"doc-b","path":[],"key":"a","value":null}},{"kind":"exchange","rounds":1}]',
    ) as ScheduleStep[]
    await converge(4, 0, steps, 1)
  })

  it('a batch that makes a counter conflicted and increments the winner (Automerge view kept the loser)', async () => {
    // Shrunk counterexample (run 1648 of 4000, seed 0): dru-2 received, in one batch,
    // dru-0's counter creation and dru-1's increment of its concurrent counter; the
    // batch's patches reported only a `conflict`, and the cached view showed 0, not 1.
    const steps = JSON.parse(
      '[{"kind":"partition","groups":[[0,3,4],[1,2]]},{"kind":"op","dru":0,"op":{"kind":"increment","docId":"doc-a","key":"n1","by":0}},{"kind":"op","dru":1,"op":{"kind":"increment","docId":"doc-a","key":"n1","by":0}},{"kind":"op","dru":3,"op":{"kind":"set","docId":"doc-a","path":[],"key":"a","value":0}},{"kind":"op","dru":2,"op":{"kind":"set","docId":"doc-a","path":[],"key":"a","value":false}},{"kind":"exchange","rounds":1},{"kind":"exchange","rounds":1},{"kind":"op","dru":0,"op":{"kind":"listDelete","docId":"doc-a","key":"l","index":0}},{"kind":"op","dru":0,"op":{"kind":"delete","docId":"doc-b","path":[],"key":"a"}},{"kind":"heal","a":0,"b":1},{"kind":"op","dru":1,"op":{"kind":"increment","docId":"doc-a","key":"n1","by":1}},{"kind":"op","dru":1,"op":{"kind":"listInsert","docId":"doc-a","key":"l","index":0,"value":0}},{"kind":"heal","a":0,"b":1},{"kind":"op","dru":0,"op":{"kind":"increment","docId":"doc-b","key":"n1","by":0}},{"kind":"op","dru":1,"op":{"kind":"set","docId":"doc-a","path":[],"key":"a","value":null}},{"kind":"cut","a":1,"b":0,"oneWay":false},{"kind":"cut","a":0,"b":1,"oneWay":false}]',
    ) as ScheduleStep[]
    await converge(5, 0, steps, 1)
  })

  it('settle() must not stop in the round that drains a delayed duplicate (testkit bug)', async () => {
    // Shrunk counterexample (seed 393530080): a link whose queue held only a late
    // duplicate emptied it in a quiet round, and settle() stopped before the link
    // offered dru-0's last event.
    const steps = JSON.parse(
      '[{"kind":"exchange","rounds":3},{"kind":"op","dru":0,"op":{"kind":"set","docId":"doc-a","path":[],"key":"a","value":""}},{"kind":"op","dru":0,"op":{"kind":"set","docId":"doc-a","path":[],"key":"a","value":0}},{"kind":"op","dru":0,"op":{"kind":"textSplice","docId":"doc-a","key":"t","index":0,"del":0,"insert":""}},{"kind":"op","dru":0,"op":{"kind":"listDelete","docId":"doc-a","key":"l","index":0}},{"kind":"op","dru":2,"op":{"kind":"set","docId":"doc-a","path":[],"key":"a","value":0}},{"kind":"op","dru":1,"op":{"kind":"delete","docId":"doc-a","path":["m"],"key":"a"}},{"kind":"exchange","rounds":2},{"kind":"op","dru":0,"op":{"kind":"textSplice","docId":"doc-a","key":"t","index":0,"del":0,"insert":""}},{"kind":"op","dru":0,"op":{"kind":"set","docId":"doc-a","path":[],"key":"a","value":0}}]',
    ) as ScheduleStep[]
    await converge(4, 393530080, steps, 1)
  })

  it('local increment of a conflicted counter (Automerge view showed the losing counter)', async () => {
    // Shrunk counterexample: two DRUs create counter n1 concurrently; after merging, the
    // one whose counter lost increments it locally. Automerge's JS view then showed the
    // losing counter's value although the stored ops were right.
    const steps: ScheduleStep[] = [
      { kind: 'op', dru: 0, op: { kind: 'increment', docId: 'doc-b', key: 'n1', by: 0 } },
      { kind: 'op', dru: 1, op: { kind: 'increment', docId: 'doc-b', key: 'n1', by: 1 } },
      { kind: 'exchange', rounds: 2 },
      { kind: 'op', dru: 0, op: { kind: 'increment', docId: 'doc-b', key: 'n1', by: 2 } },
    ]
    await converge(3, 0, steps, 1)
    await converge(3, 0, steps, 1000)
    const net = await SimNetwork.create({ size: 2, seed: 0 })
    try {
      await runSchedule(
        net,
        steps.map((s) => (s.kind === 'op' ? { ...s, dru: Math.min(s.dru, 1) } : s)),
      )
      net.settle()
      expect(net.drus[0]!.get('doc-b')).toEqual({ n1: 3 })
      expect(net.drus[1]!.get('doc-b')).toEqual({ n1: 3 })
    } finally {
      await net.close()
    }
  })
})

describe('merge laws (commutative, associative, idempotent)', () => {
  it(
    'the same events ingested in any interleaving, reversed, or twice give one state',
    async () => {
      const RUNS_LAW = Math.max(20, Math.floor(RUNS / 4))
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.record({ dru: fc.nat(2), op: docOpArb() }), { minLength: 1, maxLength: 30 }),
          fc.array(fc.nat(), { minLength: 3, maxLength: 3 }),
          async (ops, orderSeeds) => {
            // Three isolated writers produce concurrent histories.
            const writers = await SimNetwork.create({ size: 3, seed: 7 })
            const readers = await SimNetwork.create({ size: 5, seed: 8, ids: ['r-0', 'r-1', 'r-2', 'r-3', 'r-4'] })
            try {
              writers.partition([[0], [1], [2]])
              for (const { dru, op } of ops) await writers.drus[dru]!.change(op.docId, (d) => applyOp(d, op))
              const perOrigin = writers.drus.map((d) =>
                [...d.store.eventsMissing({})].flat().filter((e) => e.origin === d.store.origin),
              )
              const all = perOrigin.flat()
              // Readers 0-2: one event at a time, in different seeded interleavings (each origin's own order kept, as the log requires).
              orderSeeds.forEach((seed, r) => {
                const rng = new Rng(seed)
                const queues = perOrigin.map((q) => [...q])
                while (queues.some((q) => q.length > 0)) {
                  const live = queues.filter((q) => q.length > 0)
                  const e = live[rng.int(live.length)]!.shift()!
                  readers.drus[r]!.store.ingest([e])
                  // Keep the document hot so later events take the cached apply path, not a cold load.
                  readers.drus[r]!.get(e.docId)
                }
              })
              // Reader 3: one reversed batch. Reader 4: everything twice, then again as duplicates.
              readers.drus[3]!.store.ingest([...all].reverse())
              readers.drus[4]!.store.ingest([...all, ...all])
              expect(readers.drus[4]!.store.ingest(all).duplicates).toBe(all.length)
              // Writers exchange for real too, and must land on the same state.
              writers.healAll()
              writers.settle()
              assertConverged([...writers.drus, ...readers.drus])
              const digests = new Set([...writers.drus, ...readers.drus].map((d) => d.digest().digest))
              expect(digests.size).toBe(1)
            } finally {
              await writers.close()
              await readers.close()
            }
          },
        ),
        { numRuns: RUNS_LAW, seed: 424242 },
      )
    },
    Math.max(120_000, RUNS * 250),
  )
})
