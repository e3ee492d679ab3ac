/**
 * @module @dru/sync — dru's peer protocol: a socket-free session state machine
 * (`PeerProtocol`: handshake under the cluster secret and each DRU's key, summary exchange,
 * bounded streaming of what each side lacks with forwarding of third-party origins,
 * Ed25519-verified authorship, durable acks, bootstraps with evidence), the WebSocket
 * transport that moves its bytes with caps before trust, and the node that dials, accepts
 * and keeps one session per pair of processes. See docs/PROTOCOL.md.
 */
export { startSync } from './sync-node.js'
export type { SyncNode, SyncEvents, PeerStatus, QuarantineInfo, ProbeResult, TreeProbeResult } from './sync-node.js'
export {
  DEFAULT_MAX_UNACKED_BYTES,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
  MIN_SECRET_LENGTH,
} from './sync-options.js'
export type { SyncOptions, PeerConfig } from './sync-options.js'
export { signerFor, generateKeys, verifyEventSignature, parsePrivateKey, parsePublicKey } from './signatures.js'
export { backoffDelay, MAX_TIMER_MS } from './backoff.js'
export type { BackoffOptions } from './backoff.js'
export { FrameType, FRAME_TYPES } from './frames.js'
export { encodeFrame, decodeFrame } from './frame-codec.js'
export { compressFrame, decompressFrame, COMPRESSED_FRAME_MARK, COMPRESS_MIN_SAVING } from './frame-compression.js'
export { SharedCompression, MAX_SHARED_FRAMES, MAX_SKIPPED_FRAMES } from './shared-compression.js'
export type {
  Frame,
  HelloFrame,
  AuthFrame,
  VvFrame,
  EventsFrame,
  AckFrame,
  PingFrame,
  PeerLifecycle,
  PongFrame,
  ErrorFrame,
  ProbeFrame,
  ReportFrame,
  TreeProbeFrame,
  TreeReportFrame,
  ExpandFrame,
  BootstrapFrame,
  SnapshotFrame,
  FoldedFrame,
  BootstrapEndFrame,
} from './frames.js'
export * as limits from './limits.js'
export {
  PROTOCOL_VERSION,
  MAX_TREE_NODES,
  DEFAULT_MAX_FRAME_BYTES,
  HMAC_BYTES,
  MAX_ORIGINS,
  FORWARD_GRACE_HEARTBEATS,
  DEFAULT_FORWARD_WINDOW_BYTES,
  MAX_ERROR_MESSAGE,
  MAX_EVENTS_PER_FRAME,
  PRE_AUTH_MAX_FRAME_BYTES,
} from './limits.js'
export { authProof, proofMatches, identityProof, identityProofValid } from './handshake.js'
export type { Transcript } from './handshake.js'
export { FrameSeal, newEphemeralKey, EPHEMERAL_KEY_BYTES, SEAL_TAG_BYTES } from './frame-seal.js'
export type { EphemeralKey, SealContext } from './frame-seal.js'
export { PeerProtocol } from './protocol/peer-protocol.js'
export { REFRESH_MAX_INTERVAL_MS, REFRESH_MIN_INTERVAL_MS, REFRESH_PROBE } from './protocol/refresh-schedule.js'
export { RouteBook } from './protocol/route-book.js'
export type { RoutedSession } from './protocol/route-book.js'
export type {
  ProtocolConfig,
  ProtocolHooks,
  ProtocolPlant,
  SessionLimits,
  SnapshotSource,
  TreeSource,
  Wire,
  Admission,
  SessionRole,
} from './protocol/session-config.js'
export { frameAllowed, COSTLY_FRAMES, QUARANTINE_CODES } from './protocol/session-rules.js'
export type { Phase, RuleState } from './protocol/session-rules.js'
export { setMaxPayload } from './transport/ws-session.js'
export type { Logger } from './logger.js'
export { silentLogger } from './logger.js'
