// Workload 2: in-sync reconnect. Three replicas (own processes) already hold the same
// `docs` documents; every link is cut and then healed. Measured from the heal until no
// data message crossed any link for IDLE_MS: bytes, data messages and round trips (per
// link, max over the three links; see proxy.mjs), and the time to the last message.
import { Cluster } from './cluster.mjs'
import { setup } from './partition-heal.mjs'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
/** Quiet time after which the links count as idle (--quick: 500 ms). */
export const IDLE_MS = process.argv.includes('--quick') ? 500 : 1000
/** Longer than automerge-repo's 500 ms client retry, so every system has a dial held at the heal. */
export const CUT_MS = 800
/** dru's heartbeat (a ping frame per link per tick) stretched to 30 s so "idle" can be seen. */
export const DRU_RECONNECT_SYNC = { heartbeatMs: 30_000 }

/** Sets up one cluster with `docs` equal documents; `measure()` runs one cut/heal round. */
export async function reconnectCluster({ system, docs, onCluster }) {
  const cluster = new Cluster({
    system,
    extra: system === 'dru' ? { drusync: DRU_RECONNECT_SYNC, cacheDocs: 1_000 } : {},
  })
  onCluster?.(cluster)
  await cluster.start()
  await setup(cluster, system, docs)
  const heads = await cluster.converge({ everyMs: 100 })
  if (heads[0].documents !== undefined && heads[0].documents !== docs)
    throw new Error(`setup: ${heads[0].documents} documents, expected ${docs}`)
  cluster.resetCounters()
  await cluster.idle({ idleMs: IDLE_MS, everyLink: false })
  return {
    cluster,
    async measure() {
      cluster.cut()
      await sleep(CUT_MS)
      cluster.resetCounters()
      const t0 = performance.now()
      cluster.heal()
      const last = await cluster.idle({ idleMs: IDLE_MS })
      const wire = cluster.wire()
      const after = await cluster.call('heads')
      if (!after.every((h) => h.digest === after[0].digest)) throw new Error('replicas differ after the reconnect')
      return {
        bytes: wire.bytes,
        messages: wire.messages,
        roundTrips: wire.roundTrips,
        ms: last - t0,
        control: wire.control,
      }
    },
  }
}
