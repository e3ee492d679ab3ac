import type { KeyObject } from 'node:crypto'
import { DEFAULT_BATCH_BYTES, DruError, parseDruId, type PeerBook, type ReplicaLog } from '@dru/core'
import type { BackoffOptions } from './backoff.js'
import type { PeerLifecycle } from './frames.js'
import {
  COSTLY_FRAME_BURST,
  COSTLY_FRAMES_PER_SECOND,
  DEFAULT_FORWARD_WINDOW_BYTES,
  DEFAULT_MAX_FRAME_BYTES,
  FRAME_BURST,
  FRAMES_PER_SECOND,
  HANDSHAKE_TIMEOUT_MS,
  PRE_AUTH_MAX_FRAME_BYTES,
  SHARED_COMPRESSION_BATCHES,
} from './limits.js'
import { silentLogger, type Logger } from './logger.js'
import { RouteBook } from './protocol/route-book.js'
import { SharedCompression } from './shared-compression.js'
import type { ProtocolConfig, SessionLimits, SnapshotSource, TreeSource } from './protocol/session-config.js'
import { parsePrivateKey, parsePublicKey } from './signatures.js'
import type { ListenerCaps } from './transport/ws-listener.js'

/**
 * What `startSync` is given, and the one place it is checked: every error is a
 * CONFIG_INVALID (or the id and key parsers' own codes) that names its field.
 */

/** Default window of bytes sent but not yet acknowledged, per peer (8 MiB). */
export const DEFAULT_MAX_UNACKED_BYTES = 8 << 20
/** Default heartbeat interval: a ping when the link is otherwise idle. */
export const DEFAULT_HEARTBEAT_MS = 1000
/** Default silence after which a connection is declared dead (a blackholed link stays "open" otherwise). */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 5000
/** Shortest accepted cluster secret. */
export const MIN_SECRET_LENGTH = 16

export interface PeerConfig {
  readonly id: string
  /** `ws://host:port`; omit for a peer that only dials us. */
  readonly url?: string
}

export interface SyncOptions {
  /** The event log (the port; `EventStore` implements it) and where peers are remembered. */
  readonly log: ReplicaLog & PeerBook
  /** Our DRU id (must equal the log's). */
  readonly druId: string
  /** What this DRU tells its peers in each heartbeat: its lifecycle state, for their operators' views. */
  readonly announce?: () => PeerLifecycle
  /** Where to accept peers; omit to only dial. Port 0 picks a free port. */
  readonly listen?: { host?: string; port?: number }
  /** Peers we dial (they may dial us too: one session per pair is kept). */
  readonly peers?: readonly PeerConfig[]
  /** Cluster credential, at least 16 characters. */
  readonly secret: string
  /**
   * Ed25519 keys in PEM: our private key (PKCS#8) and every member's public key (SPKI),
   * ours included. A DRU id without a public key is not a member: it cannot connect and
   * its events are refused. Each side signs the handshake with its key.
   */
  readonly keys: { privateKey: string | KeyObject; publicKeys: Readonly<Record<string, string | KeyObject>> }
  /**
   * TLS (PEM strings). With `cert` and `key` the server listens as `wss://`; `ca` is the
   * authority we trust when dialing `wss://` peers (defaults to the system store). The
   * handshake runs inside TLS as well.
   */
  readonly tls?: { cert?: string; key?: string; ca?: string | string[] }
  readonly heartbeatMs?: number
  readonly heartbeatTimeoutMs?: number
  readonly maxFrameBytes?: number
  readonly maxBatchBytes?: number
  readonly maxUnackedBytes?: number
  /**
   * Bytes of third parties' events (written neither by us nor by the peer) a session has
   * unacknowledged at once while the peer may get them by another path (default 256 KiB,
   * DEFAULT_FORWARD_WINDOW_BYTES): what a race between two paths can cost per origin.
   */
  readonly forwardWindowBytes?: number
  /** Per-session rate limits (defaults in limits.ts). */
  readonly rates?: Partial<
    Pick<SessionLimits, 'framesPerSecond' | 'frameBurst' | 'costlyFramesPerSecond' | 'costlyFrameBurst'>
  >
  /** The listener's caps on connections and handshakes (defaults in limits.ts). */
  readonly listenerCaps?: Partial<ListenerCaps>
  readonly backoff?: BackoffOptions
  readonly logger?: Logger
  readonly now?: () => number
  /** Uniform [0, 1) source for backoff jitter. */
  readonly random?: () => number
  /**
   * Our materialised state digest, for peers' deep verification probes (the node passes
   * its documents' cluster digest). Without it, deep probes are answered with null.
   */
  readonly describe?: () => { digest: string; documents: number }
  /** Our document-digest tree, for peers' deep verification walks (the node passes its documents'). */
  readonly tree?: TreeSource
  /** Document snapshots, to bootstrap a peer below our compaction base and to be bootstrapped. */
  readonly snapshots?: SnapshotSource
  /** DRU ids removed from the cluster (`dru decommission`): never dialed, sessions refused. */
  readonly decommissioned?: readonly string[]
}

/** Options after validation: what every session is given, and the peers to dial. */
export interface ResolvedSyncOptions {
  readonly config: ProtocolConfig
  readonly peers: ReadonlyArray<{ readonly id: string; readonly url: string | null }>
  readonly decommissioned: readonly string[]
}

const positive = (value: unknown, field: string, fallback: number): number => {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new DruError('CONFIG_INVALID', `${field} must be a positive number`, { details: { field } })
  }
  return value
}

/** Checks `options` field by field and applies the defaults; throws on the first bad field. */
export function resolveSyncOptions(options: SyncOptions): ResolvedSyncOptions {
  if (!options || typeof options !== 'object')
    throw new DruError('CONFIG_INVALID', 'startSync() needs an options object')
  const druId = parseDruId(options.druId, 'druId')
  if (options.log.druId !== druId) {
    throw new DruError('CONFIG_INVALID', `druId ${druId} does not match the log's ${options.log.druId}`, {
      details: { field: 'druId' },
    })
  }
  if (typeof options.secret !== 'string' || options.secret.length < MIN_SECRET_LENGTH) {
    throw new DruError('CONFIG_INVALID', `secret must be a string of at least ${MIN_SECRET_LENGTH} characters`, {
      details: { field: 'secret' },
    })
  }
  if (!options.keys || typeof options.keys.publicKeys !== 'object' || options.keys.publicKeys === null) {
    throw new DruError('CONFIG_INVALID', 'keys must be { privateKey, publicKeys: { [druId]: publicKeyPem } }', {
      details: { field: 'keys' },
    })
  }
  const privateKey = parsePrivateKey(options.keys.privateKey)
  const keys = new Map<string, KeyObject>()
  for (const [id, pem] of Object.entries(options.keys.publicKeys)) {
    keys.set(parseDruId(id, `keys.publicKeys.${id}`), parsePublicKey(pem, `keys.publicKeys.${id}`))
  }
  const heartbeatMs = positive(options.heartbeatMs, 'heartbeatMs', DEFAULT_HEARTBEAT_MS)
  const maxFrameBytes = positive(options.maxFrameBytes, 'maxFrameBytes', DEFAULT_MAX_FRAME_BYTES)
  const maxBatchBytes = positive(options.maxBatchBytes, 'maxBatchBytes', DEFAULT_BATCH_BYTES)
  if (maxBatchBytes * 2 > maxFrameBytes) {
    throw new DruError(
      'CONFIG_INVALID',
      'maxBatchBytes must be at most half of maxFrameBytes (a batch may run on to the next signed event)',
      {
        details: { field: 'maxBatchBytes' },
      },
    )
  }
  const heartbeatTimeoutMs = positive(
    options.heartbeatTimeoutMs,
    'heartbeatTimeoutMs',
    Math.max(DEFAULT_HEARTBEAT_TIMEOUT_MS, heartbeatMs * 3),
  )
  const limits: SessionLimits = {
    heartbeatMs,
    heartbeatTimeoutMs,
    maxFrameBytes,
    maxBatchBytes,
    maxUnackedBytes: positive(options.maxUnackedBytes, 'maxUnackedBytes', DEFAULT_MAX_UNACKED_BYTES),
    forwardWindowBytes: positive(options.forwardWindowBytes, 'forwardWindowBytes', DEFAULT_FORWARD_WINDOW_BYTES),
    preAuthMaxFrameBytes: PRE_AUTH_MAX_FRAME_BYTES,
    handshakeTimeoutMs: Math.min(HANDSHAKE_TIMEOUT_MS, heartbeatTimeoutMs),
    framesPerSecond: positive(options.rates?.framesPerSecond, 'rates.framesPerSecond', FRAMES_PER_SECOND),
    frameBurst: positive(options.rates?.frameBurst, 'rates.frameBurst', FRAME_BURST),
    costlyFramesPerSecond: positive(
      options.rates?.costlyFramesPerSecond,
      'rates.costlyFramesPerSecond',
      COSTLY_FRAMES_PER_SECOND,
    ),
    costlyFrameBurst: positive(options.rates?.costlyFrameBurst, 'rates.costlyFrameBurst', COSTLY_FRAME_BURST),
  }
  const config: ProtocolConfig = {
    log: options.log,
    druId,
    secret: options.secret,
    privateKey,
    publicKeys: keys,
    limits,
    logger: options.logger ?? silentLogger,
    now: options.now ?? Date.now,
    snapshots: options.snapshots,
    describe: options.describe,
    ...(options.announce ? { announce: options.announce } : {}),
    tree: options.tree,
    routes: new RouteBook(),
    compression: new SharedCompression(SHARED_COMPRESSION_BATCHES * maxBatchBytes),
  }
  const decommissioned = (options.decommissioned ?? []).map((id) => parseDruId(id, 'decommissioned[]'))
  const peers: Array<{ id: string; url: string | null }> = []
  const seen = new Set<string>()
  for (const p of options.peers ?? []) {
    const id = parseDruId(p?.id, 'peers[].id')
    if (id === druId)
      throw new DruError('CONFIG_INVALID', 'peers must not include this DRU itself', { details: { field: 'peers' } })
    if (seen.has(id)) throw new DruError('CONFIG_INVALID', `peers lists ${id} twice`, { details: { field: 'peers' } })
    seen.add(id)
    if (!keys.has(id))
      throw new DruError('CONFIG_INVALID', `peer ${id} has no public key in keys.publicKeys`, {
        details: { field: 'peers' },
      })
    if (p.url !== undefined && (typeof p.url !== 'string' || !/^wss?:\/\//.test(p.url))) {
      throw new DruError('CONFIG_INVALID', `peers[${id}].url must be a ws:// or wss:// URL`, {
        details: { field: 'peers' },
      })
    }
    peers.push({ id, url: p.url ?? null })
  }
  return { config, peers, decommissioned }
}
