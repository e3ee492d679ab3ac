import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { Packr } from 'msgpackr'
import { NONCE_BYTES } from './frames.js'

/**
 * The challenge-response of the handshake. Each side sends a fresh random nonce in its
 * `hello`; each then proves the cluster secret with an HMAC-SHA256 that binds who proves
 * to whom and both nonces. Binding the direction stops a reflected proof, and the
 * receiver's fresh nonce stops a replayed one.
 */

const packr = new Packr({ useRecords: false })
const DOMAIN = 'dru/auth/1'

/** A fresh handshake nonce. */
export function newNonce(random: (n: number) => Uint8Array = randomBytes): Uint8Array {
  return random(NONCE_BYTES)
}

/** The proof `prover` sends to `verifier`: HMAC(secret, [domain, prover, verifier, proverNonce, verifierNonce]). */
export function authProof(secret: string, prover: string, verifier: string, proverNonce: Uint8Array, verifierNonce: Uint8Array): Uint8Array {
  return createHmac('sha256', secret)
    .update(packr.pack([DOMAIN, prover, verifier, proverNonce, verifierNonce]))
    .digest()
}

/** Constant-time check of a received proof. */
export function proofMatches(expected: Uint8Array, received: Uint8Array): boolean {
  return expected.byteLength === received.byteLength && timingSafeEqual(expected, received)
}
