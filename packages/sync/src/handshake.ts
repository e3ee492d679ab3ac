import { createHmac, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto'
import { Packr } from 'msgpackr'

/**
 * The proofs of the handshake. Each side sends a fresh random challenge in its `hello` (its
 * ephemeral X25519 public key, new for every session; protocols before 7 sent a separate
 * random nonce beside it); each then proves two things bound to who proves to whom, the
 * origin it writes as and both challenges:
 *
 * - the cluster secret, with an HMAC-SHA256 (membership of the connection);
 * - its own DRU id, with an Ed25519 signature by that DRU's key (identity).
 *
 * Binding the direction stops a reflected proof, the verifier's fresh challenge a replayed one,
 * and the signature a member that would claim another member's id: the secret is shared
 * by every member, the key is not. Both proofs also cover both sides' ephemeral X25519
 * keys, so the session key derived from them (frame-seal.ts) belongs to these two ends: a
 * relay that swapped a key would break the proofs.
 */

const packr = new Packr({ useRecords: false })
const HMAC_DOMAIN = 'dru/auth/7'
const SIG_DOMAIN = 'dru/auth-sig/7'

/** What both proofs cover. */
export interface Transcript {
  readonly prover: string
  readonly verifier: string
  /** The origin the prover announced in its hello (it writes as this one). */
  readonly proverOrigin: string
  /** Each side's fresh challenge: since protocol 7, its ephemeral public key (the same bytes as the keys below). */
  readonly proverNonce: Uint8Array
  readonly verifierNonce: Uint8Array
  /** The ephemeral X25519 public keys each side announced in its hello. */
  readonly proverKey: Uint8Array
  readonly verifierKey: Uint8Array
}

function bytes(domain: string, t: Transcript): Uint8Array {
  return packr.pack([
    domain,
    t.prover,
    t.verifier,
    t.proverOrigin,
    t.proverNonce,
    t.verifierNonce,
    t.proverKey,
    t.verifierKey,
  ])
}

/** The HMAC `prover` sends to `verifier` under the cluster secret. */
export function authProof(secret: string, t: Transcript): Uint8Array {
  return createHmac('sha256', secret).update(bytes(HMAC_DOMAIN, t)).digest()
}

/** Constant-time check of a received HMAC. */
export function proofMatches(expected: Uint8Array, received: Uint8Array): boolean {
  return expected.byteLength === received.byteLength && timingSafeEqual(expected, received)
}

/** The prover's Ed25519 signature over the transcript with its own private key. */
export function identityProof(privateKey: KeyObject, t: Transcript): Uint8Array {
  return sign(null, bytes(SIG_DOMAIN, t), privateKey)
}

/** True when `sig` is the prover's signature over the transcript. Never throws. */
export function identityProofValid(publicKey: KeyObject, t: Transcript, sig: Uint8Array): boolean {
  try {
    return verify(null, bytes(SIG_DOMAIN, t), publicKey, sig)
  } catch {
    return false
  }
}
