/**
 * @module @dru/sync — dru's peer protocol over WebSocket: mutual HMAC handshake under the
 * cluster secret, fingerprint exchange, bounded streaming of what each side lacks (with
 * forwarding of third-party origins), Ed25519-verified authorship, durable acks for
 * semi-sync writes, heartbeats and reconnect with backoff. See docs/PROTOCOL.md.
 */
export { startSync, DEFAULT_MAX_UNACKED_BYTES, DEFAULT_HEARTBEAT_MS, DEFAULT_HEARTBEAT_TIMEOUT_MS, MIN_SECRET_LENGTH } from './sync-node.js'
export type { SyncOptions, SyncNode, SyncEvents, PeerConfig, PeerStatus, QuarantineInfo, ProbeResult } from './sync-node.js'
export { signerFor, generateKeys, verifyEventSignature, parsePrivateKey, parsePublicKey } from './signatures.js'
export { backoffDelay } from './backoff.js'
export type { BackoffOptions } from './backoff.js'
export {
  encodeFrame,
  decodeFrame,
  eventToWire,
  PROTOCOL_VERSION,
  NONCE_BYTES,
  HMAC_BYTES,
  MAX_ORIGINS,
  MAX_ERROR_MESSAGE,
  DEFAULT_MAX_FRAME_BYTES,
  FrameType,
} from './frames.js'
export type { Frame, HelloFrame, AuthFrame, VvFrame, EventsFrame, AckFrame, PingFrame, PongFrame, ErrorFrame, ProbeFrame, ReportFrame } from './frames.js'
export { authProof, proofMatches, newNonce } from './handshake.js'
export { QUARANTINE_CODES } from './session.js'
export type { SnapshotSource } from './session.js'
export type { Logger } from './logger.js'
export { silentLogger } from './logger.js'
