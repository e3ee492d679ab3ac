import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { SimNetwork, assertConverged, runSchedule, scheduleArb } from '@dru/testkit'

describe('SimNetwork', () => {
  it('is deterministic: the same seed and schedule give the same logs, byte for byte', async () => {
    const [steps] = fc.sample(scheduleArb(3, { minSteps: 30, maxSteps: 30 }), { numRuns: 1, seed: 99 })
    const fingerprints: string[] = []
    for (let i = 0; i < 2; i++) {
      const net = await SimNetwork.create({
        size: 3,
        seed: 5,
        faults: { duplicate: 0.3, delay: 0.3, reorder: 0.3, replay: 0.3 },
        maxBatchBytes: 200,
      })
      try {
        await runSchedule(net, steps!)
        fingerprints.push(JSON.stringify(net.drus.map((d) => d.fingerprint())))
      } finally {
        await net.close()
      }
    }
    expect(fingerprints[0]).toBe(fingerprints[1])
  })

  it('a one-way cut stops only that direction; heal restores it', async () => {
    const net = await SimNetwork.create({ size: 2, seed: 1 })
    try {
      net.cut(0, 1, true)
      expect(net.isUp(0, 1)).toBe(false)
      expect(net.isUp(1, 0)).toBe(true)
      await net.drus[0]!.change('a', (d) => (d.x = 0))
      await net.drus[1]!.change('b', (d) => (d.x = 1))
      net.settle()
      expect(net.drus[0]!.get('b')).toEqual({ x: 1 })
      expect(net.drus[1]!.get('a')).toBeUndefined()
      net.heal(0, 1, true)
      net.settle()
      assertConverged(net.drus)
    } finally {
      await net.close()
    }
  })

  it('partitions isolate groups; reordered batches are refused with SEQ_GAP and re-sent', async () => {
    const net = await SimNetwork.create({ size: 3, seed: 3, faults: { reorder: 1, delay: 0.5 }, maxBatchBytes: 1 })
    try {
      net.partition([[0, 1], [2]])
      for (let i = 0; i < 20; i++) await net.drus[0]!.change('d', (d) => (d[`k${i}`] = i))
      let gaps = 0
      for (let i = 0; i < 10; i++) gaps += net.round().gaps
      expect(gaps).toBeGreaterThan(0)
      expect(net.drus[2]!.get('d')).toBeUndefined()
      net.healAll()
      net.settle()
      assertConverged(net.drus)
      expect(Object.keys(net.drus[2]!.get('d') as object)).toHaveLength(20)
    } finally {
      await net.close()
    }
  })

  it('works on temp files as well as in memory', async () => {
    const net = await SimNetwork.create({ size: 3, seed: 4, storage: 'file', config: { durability: 'process' } })
    try {
      await net.drus[1]!.change('x', (d) => (d.v = 1))
      net.settle()
      assertConverged(net.drus)
      expect(net.drus[2]!.store.path).toMatch(/dru-2\.db$/)
    } finally {
      await net.close()
    }
  })
})
