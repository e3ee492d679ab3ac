// Workload 1: partition-heal. Three replicas (own processes) share `docs` documents; every
// link is cut; each replica writes `ops` changes; the links heal. Measured from the heal:
// time until all three hold identical state, bytes and messages on the wire (proxies),
// peak RSS (sampled in each replica, max over replicas) and CPU seconds (sum over replicas).
import { Cluster } from './cluster.mjs'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** dru's sync settings here: default 1 s heartbeat; the timeout (which also bounds a dial's
 * WebSocket handshake) raised so the dial the proxy holds during the partition is kept. */
export const DRU_PARTITION_SYNC = { heartbeatTimeoutMs: 600_000 }

/** A new DRU with peers refuses writes until it has caught up with one (restore rule). */
export async function waitActive(cluster) {
  for (;;) {
    const states = await cluster.call('state')
    if (states.every((s) => s === 'active')) return
    await sleep(50)
  }
}

/**
 * Links up and `docs` equal documents on all three. A new DRU with peers refuses writes
 * until it has caught up with one, so dru connects first; the others set up their
 * documents while their dials are held, then connect (and sync what they already share).
 */
export async function setup(cluster, system, docs) {
  if (system === 'dru') {
    cluster.heal()
    await cluster.connected()
    await waitActive(cluster)
    await cluster.setupDocs(docs)
  } else {
    await cluster.setupDocs(docs)
    cluster.heal()
    await cluster.connected()
  }
}

export async function partitionHeal({ system, docs, ops, seed, onCluster, exportEvents = false, topology }) {
  const cluster = new Cluster({ system, topology, extra: system === 'dru' ? { drusync: DRU_PARTITION_SYNC } : {} })
  onCluster?.(cluster)
  const phases = {}
  let tp = performance.now()
  const phase = (name) => {
    const now = performance.now()
    phases[name] = Math.round(now - tp)
    tp = now
  }
  await cluster.start()
  phase('start')
  const [a] = cluster.replicas
  // Setup (untimed): links up; documents created on a; the same documents on b and c.
  await setup(cluster, system, docs)
  await cluster.converge({ everyMs: 50 })
  phase('setup')
  await sleep(300)
  // Partition: every link cut; each replica writes its ops.
  cluster.cut()
  await sleep(100)
  const w0 = performance.now()
  await Promise.all(cluster.replicas.map((r) => r.call('write', { seed, count: ops, docs })))
  const writeMs = performance.now() - w0
  phase('write')
  const before = await cluster.call('heads')
  if (before.every((h) => h.digest === before[0].digest))
    throw new Error('replicas equal before the heal: the partition leaked')
  await cluster.call('mark')
  cluster.resetCounters()
  // Heal.
  const t0 = performance.now()
  cluster.heal()
  await cluster.converge({ everyMs: 20 })
  const headsMs = performance.now() - t0
  const content = await cluster.call('content')
  const ms = performance.now() - t0
  if (!content.every((x) => x.digest === content[0].digest))
    throw new Error(`materialised content differs: ${content.map((x) => x.digest.slice(0, 8)).join(' ')}`)
  const stats = await cluster.call('stats')
  const wire = cluster.wire()
  // Events received over sessions since the mark (dru reports them; other systems do not).
  const received = system === 'dru' ? await cluster.call('received') : undefined
  let events
  if (system === 'dru' && exportEvents) events = await a.call('exportEvents')
  phase('heal')
  await cluster.stop()
  phase('stop')
  if (process.env.BENCH_VERBOSE) console.log(system, ops, JSON.stringify(phases))
  return {
    ms,
    headsMs,
    writeMs,
    bytes: wire.bytes,
    messages: wire.messages,
    roundTrips: wire.roundTrips,
    peakRss: Math.max(...stats.map((s) => s.peakRss)),
    cpuSec: stats.reduce((n, s) => n + s.cpuSec, 0),
    documents: content[0].documents,
    events,
    received: received && {
      events: received.reduce((n, r) => n + r.events, 0),
      duplicates: received.reduce((n, r) => n + r.duplicates, 0),
      // Per replica, per peer: [events, duplicates] received since the mark.
      byReplica: received.map((r) => r.byPeer),
    },
  }
}
