import { countMissing, mergeVv, type VersionVector } from '@dru/core'
import type { SimNetwork } from './sim-network.js'
import { applyTopology, type Topology } from './topologies.js'

/** What a heal cost, per DRU (by index) and in total. */
export interface HealTraffic {
  /** Events each DRU lacked when the links came up (the events it needed). */
  readonly needed: number[]
  /** Events each DRU received in `events` frames after the heal. */
  readonly received: number[]
  /** Of those, events it already held. */
  readonly duplicates: number[]
  /** Bytes put on the links after the heal, all DRUs together. */
  readonly bytes: number
  /** Received ÷ needed over the whole network. */
  readonly ratio: number
}

/**
 * The partition-heal workload on a protocol-exchange {@link SimNetwork}: every DRU cut off,
 * each writes `perDru` events (one change each, spread over a few documents), then exactly
 * the topology's links come up and the network settles. Counts what each DRU received
 * against what it needed; the caller checks convergence.
 */
export async function healAfterWrites(
  net: SimNetwork,
  topology: Topology,
  perDru: number,
  options: { docs?: number; maxRounds?: number } = {},
): Promise<HealTraffic> {
  const docs = options.docs ?? 8
  net.partition([])
  for (let i = 0; i < net.size; i++) {
    const dru = net.drus[i]!
    for (let k = 0; k < perDru; k++) await dru.change(`doc-${k % docs}`, (d) => (d[`${dru.id}-${k % 4}`] = k))
  }
  const before = net.drus.map((d) => d.store.vv())
  const all = before.reduce<VersionVector>((m, v) => mergeVv(m, v), {})
  const receivedBefore = net.received()
  const bytesBefore = sum(net.sessionLog!.bytesBy)
  applyTopology(net, topology)
  net.settle(options.maxRounds ?? 2_000)
  const after = net.received()
  const needed = before.map((vv) => countMissing(all, vv))
  const received = after.events.map((n, i) => n - receivedBefore.events[i]!)
  const duplicates = after.duplicates.map((n, i) => n - receivedBefore.duplicates[i]!)
  const bytes = sum(net.sessionLog!.bytesBy) - bytesBefore
  return { needed, received, duplicates, bytes, ratio: sum(received) / Math.max(1, sum(needed)) }
}

function sum(values: readonly number[]): number {
  let n = 0
  for (const v of values) n += v ?? 0
  return n
}
