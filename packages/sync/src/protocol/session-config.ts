import type { KeyObject } from 'node:crypto'
import type { ErrorCode, ReplicaLog, TreeEntry, VersionVector } from '@dru/core'
import type { PeerLifecycle, ReportFrame, SnapshotFrame, TreeReportFrame } from '../frames.js'
import type { Logger } from '../logger.js'
import type { PeerProtocol } from './peer-protocol.js'
import type { SharedCompression } from '../shared-compression.js'
import type { RouteBook } from './route-book.js'

/**
 * What a {@link PeerProtocol} is given and what it calls: its configuration, the wire its
 * bytes leave by, and the owner's hooks. Types only; the node, the WebSocket transport and
 * the simulation each fill them in their own way.
 */

/** The caps one session works within (see limits.ts for the defaults and why). */
export interface SessionLimits {
  readonly maxFrameBytes: number
  readonly maxBatchBytes: number
  readonly maxUnackedBytes: number
  /** Unacknowledged bytes of third parties' origins the peer may get elsewhere (default DEFAULT_FORWARD_WINDOW_BYTES). */
  readonly forwardWindowBytes?: number
  readonly heartbeatMs: number
  readonly heartbeatTimeoutMs: number
  readonly preAuthMaxFrameBytes: number
  readonly handshakeTimeoutMs: number
  readonly framesPerSecond: number
  readonly frameBurst: number
  readonly costlyFramesPerSecond: number
  readonly costlyFrameBurst: number
  /** Least time between refresh probes (default REFRESH_MIN_INTERVAL_MS; the simulation shortens it). */
  readonly refreshIntervalMs?: number
}

/** Document snapshots for bootstraps (the node passes its documents). */
export interface SnapshotSource {
  /** Stored snapshots in doc id order after `after`, about `maxBytes` long; `next` undefined at the end. */
  page(after: string, maxBytes: number): { docs: SnapshotFrame['docs']; next: string | undefined }
  /** The change bytes a snapshot carries; MALFORMED when the bytes are not an Automerge document. */
  changesOf(docId: string, bytes: Uint8Array): Uint8Array[]
}

/**
 * Our document-digest Merkle tree, for peers' deep verification walks (the node passes its
 * documents). Answers are as of the last refresh, which a deep probe triggers.
 */
export interface TreeSource {
  /** The hashes of the children of node `index` at `level` (below the leaves). */
  children(level: number, index: number): Uint8Array[]
  /** The documents of one leaf bucket, sorted by id. */
  bucket(index: number): TreeEntry[]
}

/**
 * A protocol bug planted on purpose, for tests only: the protocol-level convergence
 * property must fail when one is set (test/convergence/protocol.test.ts). The node never
 * sets it.
 *
 * - `lack-off-by-one`: the sender's check of whether the peer lacks anything is off by
 *   one, so a peer missing a single event of an origin looks up to date and is sent
 *   nothing until that origin's next event.
 */
export type ProtocolPlant = 'lack-off-by-one'

/** What a session is given. The log is the port; nothing here is a socket. */
export interface ProtocolConfig {
  readonly log: ReplicaLog
  readonly druId: string
  /** What this DRU tells its peers about itself in each heartbeat (its lifecycle state), if anything. */
  readonly announce?: () => PeerLifecycle
  readonly secret: string
  readonly privateKey: KeyObject
  /** Every member's public key (ours included): membership and authorship. */
  readonly publicKeys: ReadonlyMap<string, KeyObject>
  readonly limits: SessionLimits
  readonly logger: Logger
  readonly now: () => number
  /** Without it this DRU can neither serve nor take a bootstrap. */
  readonly snapshots?: SnapshotSource | undefined
  /** Our materialised state digest, for deep probes (absent: answered with null). */
  readonly describe?: (() => { digest: string; documents: number }) | undefined
  /** Our digest tree, for peers' tree probes (absent: answered with nothing, so every node differs). */
  readonly tree?: TreeSource | undefined
  /**
   * Which session brings this DRU each origin, shared by all of its sessions (one per DRU).
   * Without it the session announces no routes (its peers forward it everything), but it
   * still honours the routes its peers announce.
   */
  readonly routes?: RouteBook | undefined
  /**
   * Compresses sealed frames once for all of this DRU's sessions (one per DRU, see
   * shared-compression.ts). Without it each session compresses its own frames.
   */
  readonly compression?: SharedCompression | undefined
  /** Tests only: a planted bug (see {@link ProtocolPlant}). */
  readonly plant?: ProtocolPlant | undefined
}

/** Where a session's bytes go: a socket, or a simulated link. */
export interface Wire {
  send(bytes: Uint8Array): void
  /** Ends the connection (idempotent). */
  close(code: string, message: string): void
  /** Bytes queued and not yet written (0 when unknown). */
  readonly bufferedAmount: number
}

export type Admission =
  { readonly ok: true } | { readonly ok: false; readonly code: ErrorCode; readonly message: string }

/** What the node decides and learns about sessions (registry, acks, quarantine). All optional. */
export interface ProtocolHooks {
  /** After the peer proved the secret and its key: keep this session? (duplicates, quarantine, decommission) */
  admit?(p: PeerProtocol): Admission
  /** The peer acknowledged holding `vv` durably. */
  acked?(p: PeerProtocol, vv: VersionVector): void
  /**
   * The peer proved it holds `vv` by sending it (signed events, stored here): as good as an
   * ack, so it counts toward "caught up" and semi-sync, and the peer need not ack it back.
   */
  holds?(p: PeerProtocol, vv: VersionVector): void
  /** A batch of `events` events arrived and was stored, `duplicates` of them held already (counters that outlive the session). */
  received?(p: PeerProtocol, events: number, duplicates: number): void
  quarantine?(peerId: string, code: string, message: string): void
  /** The peer's heartbeat announced its lifecycle state (display only). */
  announced?(p: PeerProtocol, lifecycle: PeerLifecycle): void
  reported?(p: PeerProtocol, report: ReportFrame): void
  treeReported?(p: PeerProtocol, report: TreeReportFrame): void
  /** May this session bootstrap us now (one bootstrap at a time per DRU)? Default yes. */
  claimBootstrap?(p: PeerProtocol): boolean
  releaseBootstrap?(p: PeerProtocol): void
  bootstrapped?(p: PeerProtocol, info: { docs: number; events: number }): void
  violation?(p: PeerProtocol, code: string, message: string): void
  closed?(p: PeerProtocol, reason: { code: string; message: string }): void
}

export type SessionRole = 'dialer' | 'acceptor'
