/**
 * @module @dru/testkit — property-test dru and your own document schemas: a seeded
 * simulated network of in-process DRUs with cuttable, lossy, reordering links,
 * fast-check arbitraries for document operations and partition schedules, and
 * convergence assertions; and for multi-process tests, a loopback TCP link proxy and a
 * DRU in a child process driven over HTTP.
 */
export { SimNetwork } from './sim-network.js'
export type { SimOptions, FaultRates, RoundReport } from './sim-network.js'
export type { SessionLog, Received } from './sim-sessions.js'
export { seededKeys } from './seeded-keys.js'
export { Rng } from './rng.js'
export { applyOp, docOpArb, scalarArb } from './ops.js'
export type { DocOp, Scalar, OpArbOptions } from './ops.js'
export { scheduleArb, groupsArb, runSchedule } from './schedule.js'
export type { ScheduleStep } from './schedule.js'
export { assertConverged, ConvergenceError, jsonDiff } from './assert-converged.js'
export { MemoryLog } from './memory-log.js'
export { runReplicaLogContract } from './contracts/replica-log.js'
export type { ReplicaLogSetup, ReplicaLogUnderTest } from './contracts/replica-log.js'
export { LinkProxy } from './link-proxy.js'
export { countWithoutHeartbeats } from './heartbeat-free-count.js'
export type { LinkMode, LinkDirection, LinkTap, LinkProxyOptions } from './link-proxy.js'
export { DruProcess, DRU_CHILD } from './dru-process.js'
export type { DruPorts, DruProcessOptions, ControlResponse } from './dru-process.js'
export { ControlRoutes, statusForError } from './dru-control.js'
export type { ControlHandler, ControlRequest, DruChildPlugin } from './dru-control.js'
export { applyTopology, fullMesh, line, regions } from './topologies.js'
export type { Topology } from './topologies.js'
export { healAfterWrites } from './heal-workload.js'
export type { HealTraffic } from './heal-workload.js'
