import type { SessionLimits } from '../../src/index.js'

/**
 * Session limits for unit tests that drive a PeerProtocol frame by frame: frames and windows
 * small enough to reach their caps, real timeouts, and rates high enough that only a test
 * about rates meets them (it overrides them).
 */
export const unitLimits: SessionLimits = {
  maxFrameBytes: 1 << 20,
  maxBatchBytes: 64 << 10,
  maxUnackedBytes: 1 << 20,
  heartbeatMs: 1000,
  heartbeatTimeoutMs: 5000,
  preAuthMaxFrameBytes: 4096,
  handshakeTimeoutMs: 5000,
  framesPerSecond: 1e9,
  frameBurst: 1e9,
  costlyFramesPerSecond: 1e9,
  costlyFrameBurst: 1e9,
}
