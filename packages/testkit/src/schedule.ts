import fc from 'fast-check'
import { applyOp, docOpArb, type DocOp, type OpArbOptions } from './ops.js'
import type { SimNetwork } from './sim-network.js'

/** One step of a scripted or generated run. */
export type ScheduleStep =
  | { kind: 'op'; dru: number; op: DocOp }
  | { kind: 'cut'; a: number; b: number; oneWay: boolean }
  | { kind: 'heal'; a: number; b: number }
  | { kind: 'partition'; groups: number[][] }
  | { kind: 'healAll' }
  | { kind: 'exchange'; rounds: number }
  | { kind: 'restart'; dru: number; wipe: boolean }
  | { kind: 'compact'; dru: number }

/** A partition of `0..n-1` into groups (a DRU may also be alone). */
export function groupsArb(n: number): fc.Arbitrary<number[][]> {
  return fc.array(fc.nat(n - 1), { minLength: n, maxLength: n }).map((labels) => {
    const groups = new Map<number, number[]>()
    labels.forEach((g, d) => {
      const list = groups.get(g) ?? []
      list.push(d)
      groups.set(g, list)
    })
    return [...groups.values()]
  })
}

/**
 * fast-check arbitrary of a run over `n` DRUs: document operations interleaved with
 * link cuts (also one-way), heals, partitions into groups, full heals and exchange rounds;
 * optionally restarts (some wiping the disk) and compactions.
 */
export function scheduleArb(
  n: number,
  options: OpArbOptions & { minSteps?: number; maxSteps?: number; restarts?: boolean; compaction?: boolean } = {},
): fc.Arbitrary<ScheduleStep[]> {
  const dru = fc.nat(n - 1)
  const pair = fc.tuple(dru, dru).filter(([a, b]) => a !== b)
  const optional: Array<fc.WeightedArbitrary<ScheduleStep>> = []
  // Restarts (a fresh incarnation; with wipe, a lost disk) need file storage; compaction
  // followed by a lost disk needs the protocol exchange (a bootstrap).
  if (options.restarts)
    optional.push({
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant('restart' as const), dru, wipe: fc.boolean() }),
    })
  if (options.compaction)
    optional.push({ weight: 1, arbitrary: fc.record({ kind: fc.constant('compact' as const), dru }) })
  const step: fc.Arbitrary<ScheduleStep> = fc.oneof(
    { weight: 10, arbitrary: fc.record({ kind: fc.constant('op' as const), dru, op: docOpArb(options) }) },
    {
      weight: 2,
      arbitrary: fc
        .record({ kind: fc.constant('cut' as const), pair, oneWay: fc.boolean() })
        .map(({ pair: [a, b], oneWay }) => ({ kind: 'cut' as const, a, b, oneWay })),
    },
    { weight: 1, arbitrary: pair.map(([a, b]) => ({ kind: 'heal' as const, a, b })) },
    { weight: 1, arbitrary: groupsArb(n).map((groups) => ({ kind: 'partition' as const, groups })) },
    { weight: 1, arbitrary: fc.constant({ kind: 'healAll' as const }) },
    { weight: 3, arbitrary: fc.integer({ min: 1, max: 3 }).map((rounds) => ({ kind: 'exchange' as const, rounds })) },
    ...optional,
  )
  return fc.array(step, { minLength: options.minSteps ?? 1, maxLength: options.maxSteps ?? 40, size: 'max' })
}

/** Plays a schedule on a network (operations go through each DRU's public `change`). */
export async function runSchedule(net: SimNetwork, steps: readonly ScheduleStep[]): Promise<void> {
  for (const s of steps) {
    switch (s.kind) {
      case 'op':
        net.tick()
        await net.drus[s.dru]!.change(s.op.docId, (doc) => applyOp(doc, s.op))
        break
      case 'cut':
        net.cut(s.a, s.b, s.oneWay)
        break
      case 'heal':
        net.heal(s.a, s.b)
        break
      case 'partition':
        net.partition(s.groups)
        break
      case 'healAll':
        net.healAll()
        break
      case 'exchange':
        for (let i = 0; i < s.rounds; i++) net.round()
        break
      case 'restart':
        await net.restart(s.dru, { wipe: s.wipe })
        break
      case 'compact':
        net.compact(s.dru)
        break
    }
  }
}
