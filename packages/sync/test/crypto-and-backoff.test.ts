import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import {
  authProof,
  backoffDelay,
  MAX_TIMER_MS,
  generateKeys,
  identityProof,
  identityProofValid,
  parsePrivateKey,
  parsePublicKey,
  proofMatches,
  signerFor,
  verifyEventSignature,
  type Transcript,
} from '../src/index.js'

const RUNS = Number(process.env.DRU_PROPERTY_RUNS ?? 0) || 200

describe('handshake proofs', () => {
  const n1 = new Uint8Array(32).fill(1)
  const n2 = new Uint8Array(32).fill(2)
  const secret = 'a-cluster-secret-of-some-length'
  const k1 = new Uint8Array(32).fill(4)
  const k2 = new Uint8Array(32).fill(5)
  const t: Transcript = {
    prover: 'a',
    verifier: 'b',
    proverOrigin: 'a/7',
    proverNonce: n1,
    verifierNonce: n2,
    proverKey: k1,
    verifierKey: k2,
  }
  const variants: Array<[string, Transcript]> = [
    ['reflection', { ...t, prover: 'b', verifier: 'a' }],
    ['a replay under a fresh nonce', { ...t, verifierNonce: new Uint8Array(32).fill(3) }],
    ['swapped nonces', { ...t, proverNonce: n2, verifierNonce: n1 }],
    ['another origin claimed', { ...t, proverOrigin: 'a/8' }],
    ['a relay swapping in its own ephemeral key', { ...t, verifierKey: new Uint8Array(32).fill(6) }],
    ['swapped ephemeral keys', { ...t, proverKey: k2, verifierKey: k1 }],
  ]
  it('the HMAC verifies only with the same secret, direction, origin and nonces', () => {
    const p = authProof(secret, t)
    expect(proofMatches(authProof(secret, t), p)).toBe(true)
    expect(proofMatches(authProof('another-secret-of-some-length', t), p)).toBe(false)
    for (const [name, v] of variants) expect(proofMatches(authProof(secret, v), p), name).toBe(false)
    expect(proofMatches(p.subarray(0, 31), p)).toBe(false)
  })
  it("the identity signature verifies only with the prover's key and the same transcript", () => {
    const ka = generateKeys()
    const kb = generateKeys()
    const sig = identityProof(parsePrivateKey(ka.privateKey), t)
    expect(identityProofValid(parsePublicKey(ka.publicKey), t, sig)).toBe(true)
    // A member holding the secret but another key cannot prove a's identity.
    expect(identityProofValid(parsePublicKey(kb.publicKey), t, sig)).toBe(false)
    for (const [name, v] of variants) expect(identityProofValid(parsePublicKey(ka.publicKey), v, sig), name).toBe(false)
    expect(identityProofValid(parsePublicKey(ka.publicKey), t, new Uint8Array(64))).toBe(false)
  })
})

describe('event signatures', () => {
  it('sign/verify over the hash, refusing other keys and other hashes', () => {
    const k1 = generateKeys()
    const k2 = generateKeys()
    const hash = 'ab'.repeat(32)
    const sig = signerFor(k1.privateKey)(hash)
    expect(sig.byteLength).toBe(64)
    expect(verifyEventSignature(hash, sig, parsePublicKey(k1.publicKey))).toBe(true)
    expect(verifyEventSignature(hash, sig, parsePublicKey(k2.publicKey))).toBe(false)
    expect(verifyEventSignature('cd'.repeat(32), sig, parsePublicKey(k1.publicKey))).toBe(false)
    expect(verifyEventSignature(hash, new Uint8Array(64), parsePublicKey(k1.publicKey))).toBe(false)
  })
  it('rejects non-Ed25519 keys as CONFIG_INVALID', () => {
    expect(() => signerFor('not a key')).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }))
    expect(() => parsePublicKey('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----')).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    )
  })
})

describe('backoff', () => {
  it('grows exponentially, stays within [ceiling*(1-jitter), ceiling] and never exceeds maxMs', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100 }), fc.double({ min: 0, max: 0.9999, noNaN: true }), (attempt, r) => {
        const d = backoffDelay(attempt, () => r, { baseMs: 100, maxMs: 5000, jitter: 0.5 })
        const ceiling = Math.min(5000, 100 * 2 ** attempt)
        expect(d).toBeGreaterThanOrEqual(Math.floor(ceiling * 0.5))
        expect(d).toBeLessThanOrEqual(ceiling)
      }),
      { seed: 3, numRuns: RUNS },
    )
    const noJitter = (n: number) => backoffDelay(n, () => 0.5, { baseMs: 100, maxMs: 10_000, jitter: 0 })
    expect([0, 1, 2, 3, 10].map(noJitter)).toEqual([100, 200, 400, 800, 10_000])
    // The defaults: back within a second after a heal, however long the peer refused dials.
    expect(backoffDelay(40, () => 0.999)).toBeLessThanOrEqual(1_000)
    expect(backoffDelay(0, () => 0)).toBe(50)
  })
  it('never hands out a delay a Node timer cannot hold (it would fire after 1 ms)', () => {
    const month = 30 * 24 * 3600 * 1000
    expect(backoffDelay(40, () => 0.999, { baseMs: month, maxMs: month, jitter: 0 })).toBe(MAX_TIMER_MS)
    expect(backoffDelay(0, () => 0.5, { baseMs: 1_000, maxMs: month, jitter: 0 })).toBe(1_000)
  })
  it('uses the injected randomness (different draws spread the delays)', () => {
    expect(backoffDelay(3, () => 0)).not.toBe(backoffDelay(3, () => 0.99))
  })
})
