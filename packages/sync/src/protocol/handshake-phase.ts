import type { KeyObject } from 'node:crypto'
import { DruError, parseOrigin } from '@dru/core'
import { PROTOCOL_VERSION, type AuthFrame, type HelloFrame } from '../frames.js'
import { FrameSeal, newEphemeralKey, type EphemeralKey } from '../frame-seal.js'
import { authProof, identityProof, identityProofValid, proofMatches, type Transcript } from '../handshake.js'
import type { ProtocolConfig, SessionRole } from './session-config.js'

/** Who we are, for the handshake. */
export interface HandshakeIdentity {
  readonly druId: string
  readonly origin: string
  readonly secret: string
  readonly privateKey: KeyObject
  /** Every member's public key: who may connect, and whose signature proves whom. */
  readonly publicKeys: ReadonlyMap<string, KeyObject>
}

/** Who a session's config says we are. The origin is read from the log when used, never copied. */
export function handshakeIdentity(
  config: Pick<ProtocolConfig, 'druId' | 'secret' | 'privateKey' | 'publicKeys' | 'log'>,
): HandshakeIdentity {
  return {
    druId: config.druId,
    secret: config.secret,
    privateKey: config.privateKey,
    publicKeys: config.publicKeys,
    get origin() {
      return config.log.origin
    },
  }
}

/** The peer as its hello presented it (proven only once its auth checks out). */
export interface PeerHello {
  readonly druId: string
  readonly origin: string
}

/**
 * One session's handshake state: our ephemeral key (also our challenge), the peer's from its hello,
 * and the frame seal both derive. It checks the peer's hello and auth, builds our auth, and
 * seals and opens frames once each side's auth is through. No I/O: the session sends what
 * this returns.
 */
export class HandshakeState {
  readonly #me: HandshakeIdentity
  readonly #ephemeral: EphemeralKey = newEphemeralKey()
  /** Our challenge: the ephemeral public key, fresh and random for every session (protocol 7). */
  readonly #nonce = this.#ephemeral.publicRaw
  #peer: { druId: string; origin: string; nonce: Uint8Array; key: Uint8Array } | undefined
  #seal: FrameSeal | undefined
  /** Our frames are sealed once our auth is sent. */
  sealOut = false
  /** The peer's frames must be sealed once its auth arrived. */
  sealIn = false

  constructor(me: HandshakeIdentity) {
    this.#me = me
  }

  /** Our hello. */
  hello(): HelloFrame {
    return {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      druId: this.#me.druId,
      origin: this.#me.origin,
      key: this.#ephemeral.publicRaw,
    }
  }

  /**
   * Checks the peer's hello (protocol, membership, the peer a dialer expects, an origin of
   * its own) and derives the seal. Returns our auth frame; throws PROTOCOL_VERSION,
   * UNKNOWN_PEER or INVALID_FRAME.
   */
  acceptHello(hello: HelloFrame, role: SessionRole, expectedPeer: string | undefined): AuthFrame {
    const me = this.#me
    if (hello.protocol !== PROTOCOL_VERSION) {
      throw new DruError(
        'PROTOCOL_VERSION',
        `peer speaks protocol ${hello.protocol}, this DRU speaks ${PROTOCOL_VERSION}`,
      )
    }
    if (hello.druId === me.druId || !me.publicKeys.has(hello.druId)) {
      throw new DruError('UNKNOWN_PEER', `DRU id ${JSON.stringify(hello.druId)} is not a member of this cluster`)
    }
    if (role === 'dialer' && hello.druId !== expectedPeer) {
      throw new DruError('UNKNOWN_PEER', `dialed ${expectedPeer} but ${hello.druId} answered`)
    }
    if (parseOrigin(hello.origin).druId !== hello.druId) {
      throw new DruError('INVALID_FRAME', `hello.origin ${hello.origin} does not belong to ${hello.druId}`)
    }
    // The peer's challenge is its ephemeral key (see frames.ts HelloFrame).
    this.#peer = { druId: hello.druId, origin: hello.origin, nonce: hello.key!, key: hello.key! }
    this.#seal = new FrameSeal({
      me: me.druId,
      peer: hello.druId,
      myNonce: this.#nonce,
      peerNonce: hello.key!,
      myKey: this.#ephemeral,
      peerKey: hello.key!,
      secret: me.secret,
    })
    const t: Transcript = {
      prover: me.druId,
      verifier: hello.druId,
      proverOrigin: me.origin,
      proverNonce: this.#nonce,
      verifierNonce: hello.key!,
      proverKey: this.#ephemeral.publicRaw,
      verifierKey: hello.key!,
    }
    return { type: 'auth', hmac: authProof(me.secret, t), sig: identityProof(me.privateKey, t) }
  }

  /**
   * Checks the peer's proofs of the cluster secret and of its own key, over both hellos.
   * From here on the peer's frames must be sealed, whatever the outcome. Throws AUTH_FAILED.
   */
  verifyAuth(hmac: Uint8Array, sig: Uint8Array): void {
    this.sealIn = true
    const me = this.#me
    const peer = this.#peer!
    const t: Transcript = {
      prover: peer.druId,
      verifier: me.druId,
      proverOrigin: peer.origin,
      proverNonce: peer.nonce,
      verifierNonce: this.#nonce,
      proverKey: peer.key,
      verifierKey: this.#ephemeral.publicRaw,
    }
    if (!proofMatches(authProof(me.secret, t), hmac)) {
      throw new DruError('AUTH_FAILED', 'the challenge response does not prove the cluster secret')
    }
    if (!identityProofValid(me.publicKeys.get(peer.druId)!, t, sig)) {
      throw new DruError('AUTH_FAILED', `the handshake is not signed with ${peer.druId}'s key`)
    }
  }

  /** Seals one of our frames (only once {@link sealOut}). */
  seal(bytes: Uint8Array): Uint8Array {
    return this.#seal!.seal(bytes)
  }

  /** Opens one of the peer's frames (only once {@link sealIn}); throws when the seal is wrong. */
  open(bytes: Uint8Array): Uint8Array {
    return this.#seal!.open(bytes)
  }
}
