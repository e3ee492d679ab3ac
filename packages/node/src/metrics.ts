import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { LIFECYCLE_STATES, type LifecycleState, type LifecycleTransition } from '@dru/core'

/** Options for {@link createMetrics}. */
export interface MetricsOptions {
  /** Also export process metrics (CPU, RSS, event-loop lag, GC). Default false. */
  readonly processMetrics?: boolean
  /** Constant labels on every series, e.g. `{ dru: 'eu-west-1' }`. */
  readonly labels?: Readonly<Record<string, string>>
}

/**
 * The typed metric handles of one DRU, on a registry of its own.
 *
 * Each DRU gets its own {@link Registry} (never prom-client's global one) so that
 * several DRUs in one process, as in tests, never share or clash on series.
 */
export interface DruMetrics {
  /** The registry holding every series below. */
  readonly registry: Registry
  /** Content type of {@link DruMetrics.render}'s output (Prometheus text 0.0.4). */
  readonly contentType: string
  /** Events committed to the log; `source` is `local` (our writes) or `remote` (ingested). */
  readonly eventsCommitted: Counter<'source'>
  /** Remote events stored and merged into documents, exactly once each (a failed handler owes its own: {@link inboxPending}). */
  readonly eventsApplied: Counter
  /** Remote events received that we already held (deduplicated, not re-applied). */
  readonly duplicates: Counter
  /** Wire bytes sent to each peer. */
  readonly bytesSent: Counter<'peer'>
  /** Wire bytes received from each peer. */
  readonly bytesReceived: Counter<'peer'>
  /** 1 while a session with the peer is up, else 0. */
  readonly peerConnected: Gauge<'peer'>
  /** Events the peer holds that we lack plus events we hold that it has not acknowledged. */
  readonly lagEvents: Gauge<'peer' | 'direction'>
  /** Age in seconds of the oldest event not yet exchanged with the peer (HLC-based). */
  readonly lagSeconds: Gauge<'peer'>
  /** 1 for the current lifecycle state, 0 for the others (set via {@link DruMetrics.setLifecycleState}). */
  readonly lifecycleState: Gauge<'state'>
  /** Lifecycle edges taken. */
  readonly lifecycleTransitions: Counter<'from' | 'to'>
  /** Conflicts waiting for review. */
  readonly conflictsOpen: Gauge
  /** Readiness weight in percent (see the `ramp` config). */
  readonly readyWeight: Gauge
  /** Conflicts resolved, by who settled them. */
  readonly conflictsResolved: Gauge<'by'>
  /** Forks seen (two events claiming one `(origin, seq)`), by the peer that offered them. */
  readonly forks: Counter<'peer'>
  /** Peers quarantined (fork or forgery). */
  readonly quarantines: Counter<'peer'>
  /** Bootstraps from a peer's document snapshots (we were below its compaction base). */
  readonly bootstraps: Counter<'peer'>
  /** Events folded into document snapshots and deleted from the log by compaction. */
  readonly compactedEvents: Counter
  /** Events stored in the log now (set when metrics are scraped). */
  readonly logEvents: Gauge
  /** Events at or below the compaction floor, the sum of its vector (set when scraped): it rises as every member acknowledges. */
  readonly compactionFloorEvents: Gauge
  /** Events this DRU holds above the compaction floor: some member has not acknowledged them yet (set when scraped). */
  readonly compactionHeldBackEvents: Gauge
  /** Remote clocks found ahead of ours beyond the configured bound. */
  readonly clockSkewAlarms: Counter<'peer'>
  /** Seconds from a local change call to its durable commit. */
  readonly commitLatency: Histogram
  /**
   * Frames refused because the session's state or the peer's role did not allow them
   * (PROTOCOL_VIOLATION) or came too fast (RATE_LIMITED); `peer` is empty before authentication.
   */
  readonly protocolViolations: Counter<'peer' | 'code'>
  /** Times two processes were connected under one DRU id (each writes its own incarnation). */
  readonly identityConflicts: Counter<'peer'>
  /** Times this DRU learned, from signed events of its own earlier writes, that it started from an old copy. */
  readonly staleCopies: Counter
  /** Inbound sync connections held now, and those still in their handshake (set when scraped). */
  readonly syncConnections: Gauge<'state'>
  /** Inbound sync connections refused by the listener's caps (set when scraped). */
  readonly syncConnectionsRefused: Gauge
  /** Documents whose history cannot be materialised (reads fail with DOCUMENT_ISOLATED). */
  readonly isolatedDocuments: Gauge
  readonly changesRejected: Gauge
  /** Events an event handler still owes (retrying, or waiting behind an earlier event of their document), by handler. */
  readonly inboxPending: Gauge<'handler'>
  /** Dead letters (retries used up; an operator must retry or skip them), by handler. */
  readonly inboxDeadLetters: Gauge<'handler'>
  /** 1 when the handler is registered in this process, 0 when it owes events without being registered. */
  readonly inboxHandlerRegistered: Gauge<'handler'>
  /** Event handler calls that threw (at ingest and on retries), by handler. */
  readonly inboxHandlerFailures: Counter<'handler'>
  /** Retries run, by handler and outcome (`done` or `failed`). */
  readonly inboxRetries: Counter<'handler' | 'outcome'>
  /** Events that became dead letters, by handler. */
  readonly inboxDeadLettered: Counter<'handler'>
  /** Sets the inbox gauges from per-handler counts (handlers absent from `counts` drop to no series). */
  setInboxCounts(
    counts: ReadonlyArray<{ handler: string; registered: boolean; pending: number; waiting: number; dead: number }>,
  ): void
  /** Sets the lifecycle gauge: 1 for `state`, 0 for every other state. */
  setLifecycleState(state: LifecycleState): void
  /** Counts the edge and moves the state gauge: pass it as `createLifecycle({ onTransition })`'s callback. */
  recordTransition(t: LifecycleTransition): void
  /** Everything in Prometheus text exposition format. */
  render(): Promise<string>
}

/** Commit latency buckets (seconds): sub-millisecond local commits up to multi-second `acks: k` waits. */
export const COMMIT_LATENCY_BUCKETS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]

/** Creates a fresh registry with every dru metric (all names prefixed `dru_`). */
export function createMetrics(options: MetricsOptions = {}): DruMetrics {
  const registry = new Registry()
  if (options.labels) registry.setDefaultLabels({ ...options.labels })
  if (options.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'dru_' })
  const registers = [registry]

  const eventsCommitted = new Counter({
    name: 'dru_events_committed_total',
    help: 'Events committed to the log, by source (local writes or remote ingest).',
    labelNames: ['source'] as const,
    registers,
  })
  const eventsApplied = new Counter({
    name: 'dru_events_applied_total',
    help: 'Remote events stored and merged into documents (handlers that failed on some still owe them: dru_inbox_pending).',
    registers,
  })
  const duplicates = new Counter({
    name: 'dru_events_duplicate_total',
    help: 'Remote events received that were already held.',
    registers,
  })
  const bytesSent = new Counter({
    name: 'dru_sync_bytes_sent_total',
    help: 'Wire bytes sent, by peer.',
    labelNames: ['peer'] as const,
    registers,
  })
  const bytesReceived = new Counter({
    name: 'dru_sync_bytes_received_total',
    help: 'Wire bytes received, by peer.',
    labelNames: ['peer'] as const,
    registers,
  })
  const peerConnected = new Gauge({
    name: 'dru_peer_connected',
    help: '1 while a sync session with the peer is up.',
    labelNames: ['peer'] as const,
    registers,
  })
  const lagEvents = new Gauge({
    name: 'dru_peer_lag_events',
    help: 'Events not yet exchanged with the peer; direction=inbound (we lack) or outbound (peer lacks).',
    labelNames: ['peer', 'direction'] as const,
    registers,
  })
  const lagSeconds = new Gauge({
    name: 'dru_peer_lag_seconds',
    help: 'Age in seconds of the oldest event not yet exchanged with the peer.',
    labelNames: ['peer'] as const,
    registers,
  })
  const lifecycleState = new Gauge({
    name: 'dru_lifecycle_state',
    help: '1 for the current lifecycle state, 0 for the others.',
    labelNames: ['state'] as const,
    registers,
  })
  const lifecycleTransitions = new Counter({
    name: 'dru_lifecycle_transitions_total',
    help: 'Lifecycle state changes, by edge.',
    labelNames: ['from', 'to'] as const,
    registers,
  })
  const conflictsOpen = new Gauge({
    name: 'dru_conflicts_open',
    help: 'Concurrent edits waiting for review.',
    registers,
  })
  const readyWeight = new Gauge({
    name: 'dru_ready_weight',
    help: 'Share of traffic this DRU is ready for, in percent: 0 unless active, then ramping from ramp.startPercent to 100 over ramp.windowMs.',
    registers,
  })
  const conflictsResolved = new Gauge({
    name: 'dru_conflicts_resolved',
    help: 'Conflicts resolved so far, by who settled them: policy (the conflict policy, journaled), operator, replicated (a change from elsewhere), local-change.',
    labelNames: ['by'] as const,
    registers,
  })
  const forks = new Counter({
    name: 'dru_forks_total',
    help: 'Forks seen (two events with one (origin, seq)), by offering peer.',
    labelNames: ['peer'] as const,
    registers,
  })
  const quarantines = new Counter({
    name: 'dru_quarantines_total',
    help: 'Peers quarantined after a fork or forgery.',
    labelNames: ['peer'] as const,
    registers,
  })
  const clockSkewAlarms = new Counter({
    name: 'dru_clock_skew_alarms_total',
    help: 'Remote timestamps ahead of our clock beyond the configured bound, by peer.',
    labelNames: ['peer'] as const,
    registers,
  })
  const bootstraps = new Counter({
    name: 'dru_bootstraps_total',
    help: "Bootstraps from a peer's document snapshots (this DRU was below its compaction base).",
    labelNames: ['peer'] as const,
    registers,
  })
  const compactedEvents = new Counter({
    name: 'dru_compacted_events_total',
    help: 'Events folded into document snapshots and deleted from the log by compaction.',
    registers,
  })
  const logEvents = new Gauge({
    name: 'dru_log_events',
    help: 'Events stored in the log now (set when metrics are scraped).',
    registers,
  })
  // Two gauges rather than one: a floor that stops rising while events wait above it is
  // held back (a member stopped acknowledging); events above a rising floor are just in flight.
  const compactionFloorEvents = new Gauge({
    name: 'dru_compaction_floor_events',
    help: 'Events at or below the compaction floor (every member durably holds them); set when metrics are scraped.',
    registers,
  })
  const compactionHeldBackEvents = new Gauge({
    name: 'dru_compaction_held_back_events',
    help: 'Events held above the compaction floor because some member has not acknowledged them; set when metrics are scraped.',
    registers,
  })
  const commitLatency = new Histogram({
    name: 'dru_commit_latency_seconds',
    help: 'Seconds from a local change call to its durable commit.',
    buckets: [...COMMIT_LATENCY_BUCKETS],
    registers,
  })

  const protocolViolations = new Counter({
    name: 'dru_protocol_violations_total',
    help: 'Frames refused as PROTOCOL_VIOLATION or RATE_LIMITED, by peer (empty before authentication) and code.',
    labelNames: ['peer', 'code'] as const,
    registers,
  })
  const identityConflicts = new Counter({
    name: 'dru_identity_conflicts_total',
    help: 'Times two processes were connected under one DRU id.',
    labelNames: ['peer'] as const,
    registers,
  })
  const staleCopies = new Counter({
    name: 'dru_stale_copy_detected_total',
    help: "Times signed events of this DRU's own earlier writes proved it started from an old copy of its database.",
    registers,
  })
  const syncConnections = new Gauge({
    name: 'dru_sync_connections',
    help: 'Inbound sync connections held now: state=open (authenticated) or handshaking.',
    labelNames: ['state'] as const,
    registers,
  })
  const syncConnectionsRefused = new Gauge({
    name: 'dru_sync_connections_refused',
    help: 'Inbound sync connections refused by the listener caps since start.',
    registers,
  })

  const isolatedDocuments = new Gauge({
    name: 'dru_documents_isolated',
    help: 'Documents whose history cannot be materialised; reading them fails with DOCUMENT_ISOLATED.',
    registers,
  })

  const changesRejected = new Gauge({
    name: 'dru_changes_rejected',
    help: 'Stored changes Automerge refuses to apply (e.g. an operation on an object that does not exist); skipped on every DRU alike.',
    registers,
  })

  const inboxPending = new Gauge({
    name: 'dru_inbox_pending',
    help: 'Events an event handler still owes (retrying, or waiting behind an earlier event of their document), by handler.',
    labelNames: ['handler'] as const,
    registers,
  })
  const inboxDeadLetters = new Gauge({
    name: 'dru_inbox_dead_letters',
    help: 'Events whose handler failed every retry; they wait for an operator (dru inbox retry|skip), by handler.',
    labelNames: ['handler'] as const,
    registers,
  })
  const inboxHandlerRegistered = new Gauge({
    name: 'dru_inbox_handler_registered',
    help: 'Whether the handler is registered in this process (1) or owes events without being registered (0), by handler.',
    labelNames: ['handler'] as const,
    registers,
  })
  const inboxHandlerFailures = new Counter({
    name: 'dru_inbox_handler_failures_total',
    help: 'Event handler calls that threw (at ingest and on retries), by handler.',
    labelNames: ['handler'] as const,
    registers,
  })
  const inboxRetries = new Counter({
    name: 'dru_inbox_retries_total',
    help: 'Event handler retries, by handler and outcome (done or failed).',
    labelNames: ['handler', 'outcome'] as const,
    registers,
  })
  const inboxDeadLettered = new Counter({
    name: 'dru_inbox_dead_lettered_total',
    help: 'Events that became dead letters after their handler used up its retries, by handler.',
    labelNames: ['handler'] as const,
    registers,
  })
  const setInboxCounts: DruMetrics['setInboxCounts'] = (counts) => {
    inboxPending.reset()
    inboxDeadLetters.reset()
    inboxHandlerRegistered.reset()
    for (const c of counts) {
      inboxPending.set({ handler: c.handler }, c.pending + c.waiting)
      inboxDeadLetters.set({ handler: c.handler }, c.dead)
      inboxHandlerRegistered.set({ handler: c.handler }, c.registered ? 1 : 0)
    }
  }

  // Every state present from the start, so dashboards see zeros rather than gaps.
  const setLifecycleState = (state: LifecycleState): void => {
    for (const s of LIFECYCLE_STATES) lifecycleState.set({ state: s }, s === state ? 1 : 0)
  }
  setLifecycleState('starting')
  eventsCommitted.inc({ source: 'local' }, 0)
  eventsCommitted.inc({ source: 'remote' }, 0)

  return {
    registry,
    contentType: registry.contentType,
    eventsCommitted,
    eventsApplied,
    duplicates,
    bytesSent,
    bytesReceived,
    peerConnected,
    lagEvents,
    lagSeconds,
    lifecycleState,
    lifecycleTransitions,
    conflictsOpen,
    conflictsResolved,
    readyWeight,
    forks,
    quarantines,
    clockSkewAlarms,
    bootstraps,
    compactedEvents,
    logEvents,
    compactionFloorEvents,
    compactionHeldBackEvents,
    commitLatency,
    protocolViolations,
    identityConflicts,
    staleCopies,
    syncConnections,
    syncConnectionsRefused,
    isolatedDocuments,
    changesRejected,
    inboxPending,
    inboxDeadLetters,
    inboxHandlerRegistered,
    inboxHandlerFailures,
    inboxRetries,
    inboxDeadLettered,
    setInboxCounts,
    setLifecycleState,
    recordTransition(t) {
      lifecycleTransitions.inc({ from: t.from, to: t.to })
      setLifecycleState(t.to)
    },
    render: () => registry.metrics(),
  }
}
