import type { DruEvent, FoldedEnvelope, LifecycleState, LogSummary, TreeEntry, VersionVector } from '@dru/core'

/**
 * The wire frames of the dru peer protocol (version 7): one interface per frame, the
 * {@link Frame} union and the {@link FrameType} names. Types only; the bytes are
 * frame-codec.ts, and whether a frame is allowed *now* is protocol/session-rules.ts.
 */

export {
  PROTOCOL_VERSION,
  DEFAULT_MAX_FRAME_BYTES,
  HMAC_BYTES,
  MAX_ORIGINS,
  MAX_ERROR_MESSAGE,
  MAX_SNAPSHOT_DOCS,
  MAX_TREE_NODES,
  MAX_TREE_DOCS,
} from './limits.js'

export interface HelloFrame {
  readonly type: 'hello'
  readonly protocol: number
  readonly druId: string
  readonly origin: string
  /**
   * Ephemeral X25519 public key for the session's frame seal (since protocol 4; absent in a
   * hello of another version). Fresh and random for every session, it is also the side's
   * handshake challenge (since protocol 7; before, a separate 32-byte nonce was sent too).
   */
  readonly key?: Uint8Array
}
/** Proof of the cluster secret (HMAC) and of the DRU's own key (Ed25519 over the handshake). */
export interface AuthFrame {
  readonly type: 'auth'
  readonly hmac: Uint8Array
  readonly sig: Uint8Array
}
/**
 * What the sender holds: the live origins' fingerprint with each one's compaction base, and
 * the retired origins' summary. `full` frames (answers to `expand`) list retired origins too.
 * On the wire (since protocol 7) a summary with no retired origins
 * carries only its count, 0 (the digest of nothing is a constant).
 */
export interface VvFrame {
  readonly type: 'vv'
  readonly summary: LogSummary
  /** Per listed origin, its compaction base seq (absent: none). */
  readonly bases: VersionVector
  readonly full: boolean
}
export interface EventsFrame {
  readonly type: 'events'
  readonly batch: readonly DruEvent[]
}
/**
 * What the receiver durably holds of the origins the sender holds (deltas allowed: merged by
 * max). `withVv` (since protocol 7): and everything the ack's sender named in its latest vv,
 * of the origins the receiver holds, each up to the receiver's head — so the ack that answers
 * a peer's vv is a flag, not a copy of our own vv.
 */
export interface AckFrame {
  readonly type: 'ack'
  readonly vv: VersionVector
  readonly withVv?: true
}
/**
 * The origins the sender currently receives by another session than this one (from their
 * writer directly, or from the peer that first brought them), each with how far it holds
 * it, and the DRUs it has sessions with (its neighbours): the receiver holds back the
 * origins named, and those it got from one of the sender's neighbours (that neighbour
 * sends them to the sender too), while the sender's copy keeps advancing (protocol 6; see
 * docs/PROTOCOL.md "Forwarding").
 */
export interface RoutesFrame {
  readonly type: 'routes'
  readonly vv: VersionVector
  readonly neighbours: readonly string[]
}
/**
 * A heartbeat. It also tells the peer the sender's lifecycle state and since when (ms), for
 * operators' views only: a claim about itself that no decision of the receiver depends on.
 */
export interface PingFrame {
  readonly type: 'ping'
  readonly n: number
  readonly state?: PeerLifecycle
}

/** A DRU's lifecycle state as it announces it in its heartbeats. */
export interface PeerLifecycle {
  readonly name: LifecycleState
  readonly since: number
}
export interface PongFrame {
  readonly type: 'pong'
  readonly n: number
}
export interface ErrorFrame {
  readonly type: 'error'
  readonly code: string
  readonly message: string
}
/** Asks the peer for its current summary (and, when `deep`, its materialised state digest). */
export interface ProbeFrame {
  readonly type: 'probe'
  readonly id: number
  readonly deep: boolean
}
/** Answer to a probe. */
export interface ReportFrame {
  readonly type: 'report'
  readonly id: number
  readonly summary: LogSummary
  readonly stateDigest: string | null
  readonly documents: number | null
}
/**
 * Asks the peer about nodes of its document-digest Merkle tree (core's merkle-tree.ts), as of
 * its last deep probe: below the leaves (`level` < TREE_LEVELS) the children's hashes of each
 * node; at the leaves (`level` = TREE_LEVELS) the documents of each bucket.
 */
export interface TreeProbeFrame {
  readonly type: 'tree-probe'
  readonly id: number
  readonly level: number
  readonly nodes: readonly number[]
}
/** Answer to a tree probe: `hashes` (16 per node asked, in order) or `docs` (every document of the buckets asked). */
export interface TreeReportFrame {
  readonly type: 'tree-report'
  readonly id: number
  readonly hashes: readonly Uint8Array[]
  readonly docs: readonly TreeEntry[]
}
/** Asks for a `full` vv frame (our retired summaries differ). */
export interface ExpandFrame {
  readonly type: 'expand'
}
/** Asks the peer to bootstrap us: we lack events it folded into snapshots. */
export interface BootstrapFrame {
  readonly type: 'bootstrap'
}
/** Document snapshots of a bootstrap: containers of change bytes, proven by `folded` envelopes. */
export interface SnapshotFrame {
  readonly type: 'snapshot'
  readonly docs: ReadonlyArray<{ readonly docId: string; readonly bytes: Uint8Array }>
}
/** Envelopes of folded events, per origin consecutive, runs ending at signed events. */
export interface FoldedFrame {
  readonly type: 'folded'
  readonly envelopes: readonly FoldedEnvelope[]
}
/** Ends a bootstrap. */
export interface BootstrapEndFrame {
  readonly type: 'bootstrap-end'
}

export type Frame =
  | HelloFrame
  | AuthFrame
  | VvFrame
  | EventsFrame
  | AckFrame
  | RoutesFrame
  | PingFrame
  | PongFrame
  | ErrorFrame
  | ProbeFrame
  | ReportFrame
  | TreeProbeFrame
  | TreeReportFrame
  | ExpandFrame
  | BootstrapFrame
  | SnapshotFrame
  | FoldedFrame
  | BootstrapEndFrame

export const FrameType = {
  hello: 'hello',
  auth: 'auth',
  vv: 'vv',
  events: 'events',
  ack: 'ack',
  routes: 'routes',
  ping: 'ping',
  pong: 'pong',
  error: 'error',
  probe: 'probe',
  report: 'report',
  treeProbe: 'tree-probe',
  treeReport: 'tree-report',
  expand: 'expand',
  bootstrap: 'bootstrap',
  snapshot: 'snapshot',
  folded: 'folded',
  bootstrapEnd: 'bootstrap-end',
} as const
export type FrameType = (typeof FrameType)[keyof typeof FrameType]

/** Every frame type, for tables and property tests. */
export const FRAME_TYPES: readonly FrameType[] = Object.values(FrameType)
