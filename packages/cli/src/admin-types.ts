/**
 * The admin API's JSON bodies as the CLI reads them. The server side defines them in
 * `@dru/node` (`admin-http.ts`); these mirror that wire contract, and every field
 * the DRU may omit is optional here so an older or newer DRU still renders.
 */

export interface PeerStatus {
  id: string
  url?: string
  connected: boolean
  since?: string | null
  lastSeen?: string | null
  lagEvents: number
  lagSeconds: number | null
  membership?: string
}

export interface Status {
  id: string
  origin?: string
  state: string
  since: string
  fingerprint: { digest: string; vv: Record<string, number>; heads?: Record<string, string> }
  peers: PeerStatus[]
  conflictsOpen: number
  writable?: boolean
  inbox?: InboxSummary
  log?: { events: number; base: Record<string, number>; floor: Record<string, number> }
}

export interface InboxHandlerCounts {
  handler: string
  registered: boolean
  pending: number
  waiting: number
  dead: number
  skipped?: number
}

export interface InboxSummary {
  pending: number
  waiting: number
  dead: number
  handlers: InboxHandlerCounts[]
}

export interface InboxEntry {
  id: number
  handler: string
  origin: string
  seq: number
  docId: string
  state: 'pending' | 'waiting' | 'dead' | 'skipped'
  attempts: number
  firstFailedAt: number | null
  lastFailedAt: number | null
  nextAttemptAt: number | null
  lastError: string | null
  errorStack?: string | null
  settledAt: number | null
  note: string | null
  registered: boolean
}

export interface InboxList {
  counts: InboxSummary & { skipped: number }
  entries: InboxEntry[]
  next?: number
}

export interface InboxRetry {
  id: number
  outcome: 'done' | 'failed'
  error?: string
  entry?: InboxEntry
}

export interface InboxRequeue {
  requeued: number
  handler?: string
}

export interface OriginGap {
  origin: string
  local: number
  remote: number
  weLack: number
  theyLack: number
}

export interface PeerGaps {
  peer: string
  connected: boolean
  weLack: number
  theyLack: number
  origins: OriginGap[]
}

export interface Gaps {
  peers: PeerGaps[]
}

export interface PeerVerify {
  peer: string
  reachable: boolean
  equal: boolean | null
  remoteDigest?: string
  divergentOrigins?: string[]
  docsDiffering?: string[]
  error?: string
}

export interface Verify {
  ok: boolean
  deep: boolean
  local: { digest: string; documents?: number }
  peers: PeerVerify[]
}

export interface ConflictValue {
  origin: string
  value: unknown
  hlc?: string | null
  opId?: string
}

export interface Conflict {
  id: number | string
  docId: string
  path: (string | number)[]
  values: ConflictValue[]
  detectedAt: number
  status: 'open' | 'resolved'
  resolution?: unknown
  resolvedAt?: number
  resolvedBy?: string
}

export interface Resolve {
  id: number | string
  status: 'resolved'
  event?: { origin: string; seq: number }
}

export interface Compact {
  floor: Record<string, number>
  eventsRemoved: number
  docsSnapshotted: number
  durationMs?: number
  base?: Record<string, number>
  eventsBefore?: number
  eventsAfter?: number
  waitingFor?: string[]
  heldBack?: string[]
}

export interface Decommission {
  id: string
  removed: boolean
  floor?: Record<string, number>
  waitingFor?: string[]
}
