import { DruError } from '@dru/core'
import { decodeFrame, encodeFrame } from '../frame-codec.js'
import { compressFrame, decompressFrame } from '../frame-compression.js'
import type { ErrorFrame, Frame } from '../frames.js'
import type { SharedCompression } from '../shared-compression.js'
import type { HandshakeState } from './handshake-phase.js'
import type { SessionLimits } from './session-config.js'

/**
 * One message of the peer, decoded: a frame to handle, or an `error` it sent without the
 * session's seal. The latter is the one unsealed frame still read after the peer's auth:
 * a peer that refused our auth (a wrong secret derives another seal key) says why in the
 * clear. It is a stranger's word: the session ends as for any unsealed frame, and keeps
 * what it says only as a claim.
 */
export type Incoming =
  | { readonly frame: Frame; readonly unsealed?: undefined }
  | { readonly unsealed: ErrorFrame; readonly frame?: undefined }

/**
 * Frames to wire bytes and back for one session: the size caps (small until the peer is
 * open, so nothing large is decoded before it proved itself), and the seal and compression
 * once each side's auth is through (see {@link HandshakeState}). No I/O: the session writes
 * and reads the bytes.
 */
export class SessionCodec {
  readonly #handshake: HandshakeState
  readonly #limits: SessionLimits
  readonly #compression: SharedCompression | undefined

  constructor(handshake: HandshakeState, limits: SessionLimits, compression: SharedCompression | undefined) {
    this.#handshake = handshake
    this.#limits = limits
    this.#compression = compression
  }

  /** One message of the peer; `open` once the session is. Throws MALFORMED, FRAME_TOO_LARGE, a seal error… */
  decode(bytes: Uint8Array, isBinary: boolean, open: boolean): Incoming {
    if (!isBinary)
      throw new DruError('MALFORMED', 'text frames are not part of the protocol; frames are binary msgpack')
    // Until the peer proves itself, only small handshake frames are decoded.
    const limit = open ? this.#limits.maxFrameBytes : this.#limits.preAuthMaxFrameBytes
    // After its auth, every frame of the peer must carry the session's seal.
    if (!this.#handshake.sealIn) return { frame: decodeFrame(bytes, limit) }
    let opened: Uint8Array
    try {
      opened = this.#handshake.open(bytes)
    } catch (err) {
      let clear: Frame | undefined
      try {
        clear = decodeFrame(bytes, this.#limits.preAuthMaxFrameBytes)
      } catch {
        throw err
      }
      if (clear.type !== 'error') throw err
      return { unsealed: clear }
    }
    return { frame: decodeFrame(decompressFrame(opened, limit), limit) }
  }

  /** Our frame as wire bytes; `open` once the session is. Throws FRAME_TOO_LARGE. */
  encode(frame: Frame, open: boolean): Uint8Array {
    const { maxFrameBytes } = this.#limits
    const bytes = encodeFrame(frame)
    // Never send what a peer with our limit must refuse.
    if (bytes.byteLength > maxFrameBytes) {
      throw new DruError(
        'FRAME_TOO_LARGE',
        `a ${frame.type} frame of ${bytes.byteLength} bytes exceeds maxFrameBytes ${maxFrameBytes}`,
      )
    }
    // An error before the peer is authenticated goes in the clear: it may not hold our seal key.
    const sealed = this.#handshake.sealOut && (open || frame.type !== 'error')
    // Only sealed frames are compressed: a peer decompresses nothing before it knows who sent it.
    return sealed ? this.#handshake.seal(this.#compression?.compress(bytes) ?? compressFrame(bytes)) : bytes
  }
}
