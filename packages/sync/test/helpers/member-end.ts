import { createPrivateKey } from 'node:crypto'
import {
  FrameSeal,
  PROTOCOL_VERSION,
  authProof,
  decodeFrame,
  decompressFrame,
  encodeFrame,
  identityProof,
  newEphemeralKey,
  type EphemeralKey,
  type Frame,
  type Transcript,
} from '../../src/index.js'

type Hello = Extract<Frame, { type: 'hello' }>

/**
 * A member's end of a session with a PeerProtocol under test, driven frame by frame: it
 * seals what it sends after its own auth and opens what the protocol sends after the
 * protocol's auth, as a real peer does. Everything else is up to the test.
 */
export class MemberEnd {
  readonly key: EphemeralKey = newEphemeralKey()
  #seal: FrameSeal | undefined
  #sealOut = false
  #sealIn = false
  theirHello: Hello | undefined

  constructor(
    readonly id: string,
    readonly origin: string,
    readonly secret: string,
    readonly verifier = 'x',
  ) {}

  /** Our handshake challenge: the ephemeral key (protocol 7). */
  get nonce(): Uint8Array {
    return this.key.publicRaw
  }

  hello(): Hello {
    return {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      druId: this.id,
      origin: this.origin,
      key: this.key.publicRaw,
    }
  }

  /** The auth frame for this exchange, signed with `privateKeyPem` (the member's, or a wrong one). */
  auth(privateKeyPem: string): Extract<Frame, { type: 'auth' }> {
    const theirs = this.#mustSeeHello()
    const t: Transcript = {
      prover: this.id,
      verifier: this.verifier,
      proverOrigin: this.origin,
      proverNonce: this.nonce,
      verifierNonce: theirs.key!,
      proverKey: this.key.publicRaw,
      verifierKey: theirs.key!,
    }
    return { type: 'auth', hmac: authProof(this.secret, t), sig: identityProof(createPrivateKey(privateKeyPem), t) }
  }

  /** Bytes to hand the protocol's `receive`: sealed once our auth went out. */
  encode(frame: Frame | Uint8Array): Uint8Array {
    const bytes = frame instanceof Uint8Array ? frame : encodeFrame(frame)
    const out = this.#sealOut ? this.#seal!.seal(bytes) : bytes
    if (!(frame instanceof Uint8Array) && frame.type === 'auth' && this.#seal) this.#sealOut = true
    return out
  }

  /** A frame the protocol sent (pass as its wire's `send`). */
  decode(bytes: Uint8Array): Frame {
    const frame = decodeFrame(this.#sealIn ? decompressFrame(this.#seal!.open(bytes), 1 << 30) : bytes, 1 << 30)
    if (frame.type === 'hello' && frame.key) {
      this.theirHello = frame
      this.#seal = new FrameSeal({
        me: this.id,
        peer: frame.druId,
        myNonce: this.nonce,
        peerNonce: frame.key,
        myKey: this.key,
        peerKey: frame.key,
        secret: this.secret,
      })
    }
    if (frame.type === 'auth' && this.#seal) this.#sealIn = true
    return frame
  }

  #mustSeeHello(): Hello {
    if (!this.theirHello) throw new Error('the protocol under test has not sent its hello yet')
    return this.theirHello
  }
}
