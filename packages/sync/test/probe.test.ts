import { afterEach, describe, expect, it } from 'vitest'
import { DruError } from '@dru/core'
import { generateKeys, startSync, type SyncNode } from '../src/index.js'
import { SignedLog } from './helpers/signed-log.js'

const open: Array<{ close(): unknown }> = []
afterEach(async () => {
  while (open.length) await open.pop()!.close()
})

describe('verification probes', () => {
  it("returns the peer's current fingerprint and, when deep, its state digest; a missing peer is NOT_FOUND", async () => {
    const ids = ['a', 'b'] as const
    const keys = { a: generateKeys(), b: generateKeys() }
    const publicKeys = { a: keys.a.publicKey, b: keys.b.publicKey }
    const stores = Object.fromEntries(ids.map((id) => [id, new SignedLog(id, keys[id].privateKey)]))
    const secret = 'probe-test-secret-0123456789'
    const b: SyncNode = await startSync({
      log: stores.b!,
      druId: 'b',
      listen: { host: '127.0.0.1', port: 0 },
      secret,
      keys: { privateKey: keys.b.privateKey, publicKeys },
      describe: () => ({ digest: 'd'.repeat(64), documents: 3 }),
    })
    open.push(stores.a!, stores.b!)
    open.unshift(b)
    stores.b!.commit('doc', new Uint8Array([1, 2, 3]))
    const a: SyncNode = await startSync({
      log: stores.a!,
      druId: 'a',
      peers: [{ id: 'b', url: `ws://127.0.0.1:${b.port}` }],
      secret,
      keys: { privateKey: keys.a.privateKey, publicKeys },
    })
    open.unshift(a)
    await expect(a.probe('nobody')).rejects.toMatchObject({ code: 'NOT_FOUND' })
    const deadline = Date.now() + 10_000
    while (!a.peerStatus()[0]?.connected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    const shallow = await a.probe('b')
    expect(shallow.summary).toEqual(stores.b!.summary())
    expect(shallow.stateDigest).toBeNull()
    const deep = await a.probe('b', { deep: true })
    expect(deep).toMatchObject({ stateDigest: 'd'.repeat(64), documents: 3 })
    // b has no describe(): a deep probe of a is answered with null, not an error.
    const reverse = await b.probe('a', { deep: true })
    expect(reverse.stateDigest).toBeNull()
    expect(reverse.summary.live.vv).toEqual(stores.a!.vv())
    await a.close()
    await expect(b.probe('a', { timeoutMs: 1_000 })).rejects.toBeInstanceOf(DruError)
  })
})
