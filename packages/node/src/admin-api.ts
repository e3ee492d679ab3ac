import type { ErrorCode, LifecycleState } from '@dru/core'

/**
 * The admin API's wire contract: the JSON bodies the admin HTTP server sends, the progress
 * lines of streamed operations, and the HTTP status of each error code. Both sides use it:
 * the server (`admin-http.ts` and its routes) and the `dru` CLI, which imports it as
 * `@dru/node/admin-api` without loading the runtime.
 *
 * Only types and one pure table live here. Fields added after a field's first release are
 * optional, so a CLI still reads an older DRU.
 *
 * @module
 */

/** One peer as `/status` shows it. */
export interface PeerStatusJson {
  readonly id: string
  readonly url?: string
  /** A sync session is up. */
  readonly connected: boolean
  /** ISO time the connection last went up or down, if known. */
  readonly since?: string | null
  /** ISO time of the last frame from the peer, if any. */
  readonly lastSeen?: string | null
  /**
   * The peer's lifecycle state and since when (ISO), as it announced them in its latest
   * heartbeat: current while connected, the last heard otherwise. Display only.
   */
  readonly lifecycle?: { readonly state: string; readonly since: string }
  /** Events not yet exchanged with the peer, both directions together. */
  readonly lagEvents: number
  /** Age in seconds of the oldest event not yet exchanged, or null when nothing is pending or unknown. */
  readonly lagSeconds: number | null
  /** e.g. `member`, `quarantined`, `decommissioned`. */
  readonly membership?: string
  /** Counters of the current (or last) session. */
  readonly bytesIn?: number
  readonly bytesOut?: number
  readonly eventsIn?: number
  readonly duplicatesIn?: number
  /** Documents received as snapshots (bootstrap), when any. */
  readonly snapshotDocsIn?: number
  /** Why the peer is quarantined (`at` in ms since the epoch), when it is. */
  readonly quarantine?: { readonly code: string; readonly message: string; readonly at: number }
  /** Why the last session or dial ended, when one did. */
  readonly lastError?: { readonly code: string; readonly message: string }
  /** The same DRU id connected from several processes at once (each origin listed). */
  readonly identityConflict?: { readonly origins: readonly string[] }
  /** Frames refused as PROTOCOL_VIOLATION or RATE_LIMITED since start, when any. */
  readonly violations?: number
}

/** Body of `GET /status`. */
export interface StatusJson {
  readonly id: string
  /** Current writer origin, `<id>/<incarnation>`. */
  readonly origin: string
  readonly state: LifecycleState
  /** ISO time the current state was entered. */
  readonly since: string
  /** Readiness weight in percent: 0 unless active, then ramping to 100 (the `ramp` config). */
  readonly readyWeight?: number
  /** Short fingerprint digest plus the version vector (and heads, if the source adds them). */
  readonly fingerprint: {
    readonly digest: string
    readonly vv: Readonly<Record<string, number>>
    readonly heads?: Readonly<Record<string, string>>
    /** Origins folded whole into snapshots, summarised (the digest covers them too). */
    readonly retired?: { readonly count: number; readonly digest: string }
  }
  readonly peers: readonly PeerStatusJson[]
  readonly conflictsOpen: number
  /** Conflicts resolved so far, by who settled them (`policy`, `operator`, `replicated`, `local-change`). */
  readonly conflictsResolved?: Readonly<Record<string, number>>
  /** False while a restored DRU refuses writes until its own origin is back. */
  readonly writable?: boolean
  /** Stored remote events whose clock ran beyond maxClockSkewMs. */
  readonly skewedEvents?: number
  /** What proved this DRU started from an old copy of its database, if anything did (`at` in ms). */
  readonly staleCopy?: { readonly origin: string; readonly recovered: number; readonly at: number }
  /** Events handlers still owe and dead letters, when a handler is registered or anything is owed. */
  readonly inbox?: InboxSummaryJson
  /** Documents whose snapshot cannot be loaded: reading them fails with DOCUMENT_ISOLATED (present when any). */
  readonly isolatedDocuments?: {
    readonly count: number
    readonly docs: ReadonlyArray<{ docId: string; reason: string; at: string }>
  }
  /** Stored changes Automerge refuses to apply, skipped on every DRU alike (present when any). */
  readonly rejectedChanges?: {
    readonly count: number
    readonly latest: ReadonlyArray<{ origin: string; seq: number; docId: string; reason: string; at: string }>
  }
  /** Events stored, the compaction base (compacted away) and the floor a compaction would use now. */
  readonly log?: {
    readonly events: number
    readonly base: Readonly<Record<string, number>>
    readonly floor: Readonly<Record<string, number>>
  }
}

/** What one side lacks of one origin, against one peer. */
export interface OriginGapJson {
  readonly origin: string
  /** Highest contiguous seq we hold. */
  readonly local: number
  /** Highest contiguous seq the peer holds (as last reported or acknowledged). */
  readonly remote: number
  /** Events the peer holds that we lack: max(0, remote - local). */
  readonly weLack: number
  /** Events we hold that the peer lacks: max(0, local - remote). */
  readonly theyLack: number
}

/** Gaps against one peer. */
export interface PeerGapsJson {
  readonly peer: string
  readonly connected: boolean
  /** Totals over `origins`. */
  readonly weLack: number
  readonly theyLack: number
  /** Only origins where a side lacks something need be listed. */
  readonly origins: readonly OriginGapJson[]
}

/** Body of `GET /gaps`. */
export interface GapsJson {
  readonly peers: readonly PeerGapsJson[]
}

/** One peer's verification result. */
export interface PeerVerifyJson {
  readonly peer: string
  readonly reachable: boolean
  /** Fingerprints (and, when deep, document digests) equal; null when unreachable. */
  readonly equal: boolean | null
  readonly remoteDigest?: string
  /** Origins with the same seq but different heads: a fork or corruption. */
  readonly divergentOrigins?: readonly string[]
  /** Deep check only: the peer's state digest and document count (null when it cannot tell). */
  readonly remoteStateDigest?: string | null
  readonly remoteDocuments?: number | null
  /** Events of this DRU's own origins (any incarnation) the peer holds and we lack. */
  readonly ownEventsLacking?: number
  /** Deep check only: the logs are equal (when not, documents are not compared: catch up first). */
  readonly logsEqual?: boolean
  /** Deep check only: documents whose materialised digests differ (at most 1,000 listed; see `differingDocuments`). */
  readonly docsDiffering?: readonly string[]
  /** The same documents with both sides' digests and sorted heads (null: that side lacks the document). */
  readonly differences?: readonly DocumentDifferenceJson[]
  /** How many documents differ (exact). */
  readonly differingDocuments?: number
  /** What the walk of the digest tree cost: round trips (the deep probe included) and bytes of tree frames. */
  readonly tree?: { readonly roundTrips: number; readonly bytes: number }
  readonly error?: string
}

/** A document's state on one side of a deep verify. */
export interface DocumentSideJson {
  /** sha256 of sorted heads and canonical JSON, or `isolated` when it cannot be materialised. */
  readonly digest: string
  readonly heads: readonly string[]
}

/** One document whose materialised state differs between this DRU and a peer. */
export interface DocumentDifferenceJson {
  readonly docId: string
  readonly local: DocumentSideJson | null
  readonly remote: DocumentSideJson | null
}

/** Body of `POST /repair` (request: `{"docs": ["id", …]}`, 1 to 1,000 ids). */
export interface RepairJson {
  /** Documents were rebuilt and no reachable peer still differs on any of them. */
  readonly ok: boolean
  /** Peers whose log differs from ours: nothing was repaired (catch up first). */
  readonly logsDiffer: readonly string[]
  readonly repaired: ReadonlyArray<{
    readonly docId: string
    readonly before: DocumentSideJson | null
    readonly after: DocumentSideJson | null
    /** Changes of the old snapshot no event or folded envelope proves: dropped. */
    readonly droppedChanges: number
    /** Changes kept from the old snapshot because compaction folded them. */
    readonly foldedChanges: number
    /** Events of the document in the log, replayed. */
    readonly logEvents: number
  }>
  /** The deep verify run after the repair. */
  readonly verify?: VerifyJson
  /** Repaired documents some reachable peer still holds differently. */
  readonly stillDiffering: readonly string[]
}

/** Body of `POST /verify`. */
export interface VerifyJson {
  /** True when every reachable peer compared equal (the source decides how unreachable peers count). */
  readonly ok: boolean
  readonly deep: boolean
  readonly local: {
    readonly digest: string
    /** Deep check only: documents digested and the root of the Merkle tree over their digests. */
    readonly documents?: number
    readonly stateDigest?: string
    /** Documents that cannot be materialised (present when any): a local fault. */
    readonly isolatedDocuments?: number
    readonly isolated?: readonly string[]
  }
  readonly peers: readonly PeerVerifyJson[]
}

/** One value of a conflicted field. */
export interface ConflictValueJson {
  readonly origin: string
  readonly value: unknown
  readonly hlc?: string | null
  readonly opId?: string
}

/** A conflict as the admin API shows it. */
export interface ConflictJson {
  readonly id: number | string
  readonly docId: string
  readonly path: ReadonlyArray<string | number>
  readonly values: readonly ConflictValueJson[]
  /** Wall-clock ms. */
  readonly detectedAt: number
  readonly status: 'open' | 'resolved'
  readonly resolution?: unknown
  readonly resolvedAt?: number
  readonly resolvedBy?: string
}

/** Body of `POST /conflicts/:id/resolve`. */
export interface ResolveJson {
  readonly id: number | string
  readonly status: 'resolved'
  /** The event that carries the resolution, if the write changed anything. */
  readonly event?: { readonly origin: string; readonly seq: number }
}

/** Body of `POST /compact`. */
export interface CompactJson {
  /** The causal-stability floor used (min acknowledged VV over members). */
  readonly floor: Readonly<Record<string, number>>
  readonly eventsRemoved: number
  readonly docsSnapshotted: number
  readonly docsScanned?: number
  readonly durationMs?: number
  /** The log's base afterwards, events before and after, and who held the floor back. */
  readonly base?: Readonly<Record<string, number>>
  readonly eventsBefore?: number
  readonly eventsAfter?: number
  readonly waitingFor?: readonly string[]
  readonly heldBack?: readonly string[]
}

/** Body of `POST /peers/:id/unquarantine`. */
export interface UnquarantineJson {
  readonly peer: string
  /** False when the peer was not quarantined (nothing changed). */
  readonly lifted: boolean
}

/** One handler's entries in `/status` and `GET /inbox`. */
export interface InboxHandlerCountsJson {
  readonly handler: string
  /** Registered in this process (only then are its entries retried). */
  readonly registered: boolean
  readonly pending: number
  readonly waiting: number
  readonly dead: number
  readonly skipped?: number
}

/** `inbox` in `/status`. */
export interface InboxSummaryJson {
  /** Failed and scheduled for a retry. */
  readonly pending: number
  /** Waiting behind an earlier owed event of their document (handlers with order `document`). */
  readonly waiting: number
  /** Retries used up: `dru inbox retry` or `dru inbox skip` them. */
  readonly dead: number
  readonly handlers: readonly InboxHandlerCountsJson[]
}

/** One entry of the inbox (times in ms since the epoch). */
export interface InboxEntryJson {
  readonly id: number
  readonly handler: string
  readonly origin: string
  readonly seq: number
  readonly docId: string
  readonly state: 'pending' | 'waiting' | 'dead' | 'skipped'
  readonly attempts: number
  readonly firstFailedAt: number | null
  readonly lastFailedAt: number | null
  readonly nextAttemptAt: number | null
  readonly lastError: string | null
  /** `GET /inbox/:id` only. */
  readonly errorStack?: string | null
  readonly settledAt: number | null
  readonly note: string | null
  readonly registered: boolean
}

/** Body of `GET /inbox`. */
export interface InboxListJson {
  readonly counts: InboxSummaryJson & { readonly skipped: number }
  readonly entries: readonly InboxEntryJson[]
  /** Pass as `after` for the next page; absent on the last one. */
  readonly next?: number
}

/** Body of `POST /inbox/:id/retry`. */
export interface InboxRetryJson {
  readonly id: number
  /** `done`: the handler ran and its effects committed; `failed`: it threw again. */
  readonly outcome: 'done' | 'failed'
  readonly error?: string
  readonly entry?: InboxEntryJson
}

/** Body of `POST /inbox/retry-dead`. */
export interface InboxRequeueJson {
  /** Dead letters put back in line for one more try each. */
  readonly requeued: number
  readonly handler?: string
}

/** Body of `POST /inbox/forget`. */
export interface InboxForgetJson {
  readonly handler: string
  /** Entries of the handler dropped (owed, dead and skipped). */
  readonly dropped: number
}

/** Filter of `GET /inbox?state=`. */
export type InboxFilterJson = 'open' | 'pending' | 'waiting' | 'dead' | 'skipped' | 'all'

/** Body of `POST /decommission/:id`. */
export interface DecommissionJson {
  readonly id: string
  /** False when the id was already not a member. */
  readonly removed: boolean
  readonly floor?: Readonly<Record<string, number>>
  /** Members still holding the floor below our vector. */
  readonly waitingFor?: readonly string[]
}

/** Progress of a long operation, streamed as `{"progress": …}` lines. */
export interface OperationProgress {
  /** What is happening, e.g. `compare`, `snapshot`, `catch-up`. */
  readonly phase: string
  readonly done: number
  readonly total?: number
  /** What `done` counts, e.g. `events`, `docs`. */
  readonly unit?: string
}

/** Reports progress; cheap to call often (the server does not throttle). */
export type ProgressFn = (p: OperationProgress) => void

/** `'open'` (default), `'resolved'` or `'all'`. */
export type ConflictFilter = 'open' | 'resolved' | 'all'

/** HTTP status for each error code the admin API may answer with; unlisted codes get 500. */
const STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = {
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  DOCUMENT_ISOLATED: 409,
  NOT_WRITABLE: 503,
  MALFORMED: 400,
  INVALID_ARGUMENT: 400,
  CONFIG_INVALID: 400,
  NOT_FOUND: 404,
  FORK: 409,
  QUARANTINED: 409,
  NOT_SUPPORTED: 501,
  CLOSED: 503,
  DB_LOCKED: 503,
  ACK_TIMEOUT: 504,
  INVALID_VALUE: 400,
  STORAGE_FULL: 507,
}

/** The HTTP status the admin API answers for a DruError code. */
export function httpStatusForCode(code: ErrorCode): number {
  return STATUS_BY_CODE[code] ?? 500
}
