import { createPrivateKey, createPublicKey } from 'node:crypto'
import { Rng } from './rng.js'

// PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

/**
 * An Ed25519 key pair (PEM) derived from a seed, so a simulation's signatures — and with
 * them its logs — are the same byte for byte on every run. For tests only: a real DRU's key
 * comes from `generateKeys()` or `openssl genpkey -algorithm ed25519`.
 */
export function seededKeys(seed: number): { privateKey: string; publicKey: string } {
  const rng = new Rng(seed)
  const raw = Buffer.alloc(32)
  for (let i = 0; i < 32; i++) raw[i] = rng.int(256)
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, raw]), format: 'der', type: 'pkcs8' })
  return {
    privateKey: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString(),
  }
}
