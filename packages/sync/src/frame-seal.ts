import {
  createHmac,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto'
import { Packr } from 'msgpackr'
import { DruError } from '@dru/core'

/**
 * Every frame after a side's `auth` is sealed: a 16-byte tag (HMAC-SHA256, truncated) over
 * a per-direction frame counter and the frame's bytes, under a key only the two
 * authenticated ends can compute. The key comes from an X25519 exchange of ephemeral keys
 * announced in the `hello`s (and covered by both sides' proofs) mixed with the cluster
 * secret, so whoever relays the handshake between two members (a stranger or another
 * member) can pass frames on but cannot inject, alter, replay, reorder or drop one unseen.
 * Confidentiality is TLS's job (`tls` in the config), not this one's.
 */

/** Bytes of an X25519 public key on the wire. */
export const EPHEMERAL_KEY_BYTES = 32
/** Bytes of the tag appended to a sealed frame. */
export const SEAL_TAG_BYTES = 16

const packr = new Packr({ useRecords: false })
// DER prefix of an X25519 SubjectPublicKeyInfo; the raw 32-byte key follows it.
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex')
const KDF_INFO = 'dru/frame-seal/4'

/** This side's key pair for one session's exchange. */
export interface EphemeralKey {
  readonly publicRaw: Uint8Array
  readonly privateKey: KeyObject
}

export function newEphemeralKey(): EphemeralKey {
  const { publicKey, privateKey } = generateKeyPairSync('x25519')
  const der = publicKey.export({ format: 'der', type: 'spki' })
  return { publicRaw: new Uint8Array(der.subarray(der.byteLength - EPHEMERAL_KEY_BYTES)), privateKey }
}

/** Who sealed what for whom: each direction gets its own key. */
export interface SealContext {
  readonly me: string
  readonly peer: string
  readonly myNonce: Uint8Array
  readonly peerNonce: Uint8Array
  readonly myKey: EphemeralKey
  readonly peerKey: Uint8Array
  readonly secret: string
}

/** Seals what this side sends and opens what it receives, for one session. */
export class FrameSeal {
  readonly #sendKey: Buffer
  readonly #receiveKey: Buffer
  #sent = 0n
  #received = 0n

  constructor(c: SealContext) {
    let peerPublic: KeyObject
    try {
      peerPublic = createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, c.peerKey]), format: 'der', type: 'spki' })
    } catch (cause) {
      throw new DruError('INVALID_FRAME', 'hello.key is not an X25519 public key', { cause })
    }
    let shared: Buffer
    try {
      shared = diffieHellman({ privateKey: c.myKey.privateKey, publicKey: peerPublic })
    } catch (cause) {
      // OpenSSL refuses a low-order point (an all-zero shared secret).
      throw new DruError('AUTH_FAILED', 'the key exchange failed (a degenerate ephemeral key)', { cause })
    }
    const derive = (
      from: string,
      fromNonce: Uint8Array,
      fromKey: Uint8Array,
      to: string,
      toNonce: Uint8Array,
      toKey: Uint8Array,
    ): Buffer =>
      Buffer.from(
        hkdfSync('sha256', shared, c.secret, packr.pack([KDF_INFO, from, to, fromNonce, toNonce, fromKey, toKey]), 32),
      )
    this.#sendKey = derive(c.me, c.myNonce, c.myKey.publicRaw, c.peer, c.peerNonce, c.peerKey)
    this.#receiveKey = derive(c.peer, c.peerNonce, c.peerKey, c.me, c.myNonce, c.myKey.publicRaw)
  }

  /** The frame's bytes with their tag appended (the next counter value of this direction). */
  seal(frame: Uint8Array): Uint8Array {
    const tag = tagOf(this.#sendKey, this.#sent++, frame)
    const out = new Uint8Array(frame.byteLength + SEAL_TAG_BYTES)
    out.set(frame, 0)
    out.set(tag, frame.byteLength)
    return out
  }

  /** The frame's bytes, once its tag proves it is the peer's next frame; AUTH_FAILED otherwise. */
  open(sealed: Uint8Array): Uint8Array {
    if (sealed.byteLength < SEAL_TAG_BYTES) throw tampered()
    const frame = sealed.subarray(0, sealed.byteLength - SEAL_TAG_BYTES)
    const tag = sealed.subarray(sealed.byteLength - SEAL_TAG_BYTES)
    if (!timingSafeEqual(tagOf(this.#receiveKey, this.#received, frame), tag)) throw tampered()
    this.#received++
    return frame
  }
}

function tagOf(key: Buffer, counter: bigint, frame: Uint8Array): Buffer {
  const n = Buffer.alloc(8)
  n.writeBigUInt64BE(counter)
  return createHmac('sha256', key).update(n).update(frame).digest().subarray(0, SEAL_TAG_BYTES)
}

function tampered(): DruError {
  return new DruError(
    'AUTH_FAILED',
    "a frame does not carry the session's seal: it was injected, altered, replayed or reordered on the way",
  )
}
