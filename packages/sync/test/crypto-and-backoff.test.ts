import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { authProof, backoffDelay, generateKeys, parsePublicKey, proofMatches, signerFor, verifyEventSignature } from '../src/index.js'

const RUNS = Number(process.env.DRU_PROPERTY_RUNS ?? 0) || 200

describe('handshake proofs', () => {
  const n1 = new Uint8Array(32).fill(1)
  const n2 = new Uint8Array(32).fill(2)
  const secret = 'a-cluster-secret-of-some-length'
  it('verify only with the same secret, direction and nonces', () => {
    const p = authProof(secret, 'a', 'b', n1, n2)
    expect(proofMatches(authProof(secret, 'a', 'b', n1, n2), p)).toBe(true)
    expect(proofMatches(authProof('another-secret-of-some-length', 'a', 'b', n1, n2), p)).toBe(false)
    expect(proofMatches(authProof(secret, 'b', 'a', n1, n2), p)).toBe(false) // reflection
    expect(proofMatches(authProof(secret, 'a', 'b', n1, new Uint8Array(32).fill(3)), p)).toBe(false) // replay under a fresh nonce
    expect(proofMatches(authProof(secret, 'a', 'b', n2, n1), p)).toBe(false)
    expect(proofMatches(p.subarray(0, 31), p)).toBe(false)
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
    expect(() => parsePublicKey('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----')).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }))
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
  })
  it('uses the injected randomness (different draws spread the delays)', () => {
    expect(backoffDelay(3, () => 0)).not.toBe(backoffDelay(3, () => 0.99))
  })
})
