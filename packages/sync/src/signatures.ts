import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto'
import { DruError } from '@dru/core'

/**
 * Ed25519 authorship of hash chains. A store opened with `sign: signerFor(privateKey)`
 * signs the hash of its newest own event, once for every commit since the last signature
 * (shortly after they commit, and always before they are read for sending: see the store's
 * deferred-signing.ts); because each event's hash covers its `prev`, one valid signature on
 * a run's last event vouches for the whole run back to an already-trusted head. Keys are PEM
 * strings (PKCS#8 private, SPKI public).
 */

// Domain separation: this key signs nothing but event hashes.
const DOMAIN = Buffer.from('dru/event-sig/1\0')

function message(hash: string): Buffer {
  return Buffer.concat([DOMAIN, Buffer.from(hash, 'hex')])
}

/** Parses a PEM Ed25519 private key; CONFIG_INVALID when it is not one. */
export function parsePrivateKey(pem: string | KeyObject, field = 'keys.privateKey'): KeyObject {
  try {
    const key = typeof pem === 'string' ? createPrivateKey(pem) : pem
    if (key.type !== 'private' || key.asymmetricKeyType !== 'ed25519') throw new Error('not an Ed25519 private key')
    return key
  } catch (cause) {
    throw new DruError(
      'CONFIG_INVALID',
      `${field} must be an Ed25519 private key in PEM (PKCS#8): ${(cause as Error).message}`,
      { cause, details: { field } },
    )
  }
}

/** Parses a PEM Ed25519 public key; CONFIG_INVALID when it is not one. */
export function parsePublicKey(pem: string | KeyObject, field = 'keys.publicKeys'): KeyObject {
  try {
    const key = typeof pem === 'string' ? createPublicKey(pem) : pem
    if (key.type !== 'public' || key.asymmetricKeyType !== 'ed25519') throw new Error('not an Ed25519 public key')
    return key
  } catch (cause) {
    throw new DruError(
      'CONFIG_INVALID',
      `${field} must be an Ed25519 public key in PEM (SPKI): ${(cause as Error).message}`,
      { cause, details: { field } },
    )
  }
}

/** The `sign` option for `EventStore.open`: signs an event hash with this DRU's key. */
export function signerFor(privateKey: string | KeyObject): (hash: string) => Uint8Array {
  const key = parsePrivateKey(privateKey)
  return (hash) => sign(null, message(hash), key)
}

/** True when `sig` is `publicKey`'s signature over the event hash. Never throws. */
export function verifyEventSignature(hash: string, sig: Uint8Array, publicKey: KeyObject): boolean {
  try {
    return verify(null, message(hash), publicKey, sig)
  } catch {
    return false
  }
}

/** A fresh Ed25519 key pair as PEM strings (for setup scripts and tests). */
export function generateKeys(): { privateKey: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  return {
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  }
}
