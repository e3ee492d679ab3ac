import { afterEach, describe, expect, it } from 'vitest'
import { generateKeys, startSync, type SyncNode, type SyncOptions } from '../src/index.js'
import { SignedLog } from './helpers/signed-log.js'

const ka = generateKeys()
const kb = generateKeys()
const publicKeys = { a: ka.publicKey, b: kb.publicKey }
const SECRET = 'unit-test-secret-0123456789'
const open: Array<{ close(): unknown }> = []
afterEach(async () => {
  for (const x of open.splice(0).reverse()) await x.close()
})

function store(id: string): SignedLog {
  const s = new SignedLog(id, id === 'a' ? ka.privateKey : kb.privateKey)
  open.push(s)
  return s
}

async function node(opts: Partial<SyncOptions> & { log: SignedLog; druId: string }): Promise<SyncNode> {
  const n = await startSync({
    secret: SECRET,
    keys: { privateKey: opts.druId === 'a' ? ka.privateKey : kb.privateKey, publicKeys },
    listen: { port: 0 },
    ...opts,
  })
  open.push(n)
  return n
}

describe('startSync configuration', () => {
  it.each<[string, (s: SignedLog) => Partial<SyncOptions>]>([
    ['a short secret', () => ({ secret: 'short' })],
    ["a druId other than the store's", () => ({ druId: 'b' })],
    ['a peer without a public key', () => ({ peers: [{ id: 'c', url: 'ws://127.0.0.1:1' }] })],
    ['ourselves as a peer', () => ({ peers: [{ id: 'a', url: 'ws://127.0.0.1:1' }] })],
    ['a non-ws peer url', () => ({ peers: [{ id: 'b', url: 'http://127.0.0.1:1' }] })],
    ['a bad private key', () => ({ keys: { privateKey: 'nope', publicKeys } })],
    ['a bad public key', () => ({ keys: { privateKey: ka.privateKey, publicKeys: { ...publicKeys, b: 'nope' } } })],
    ['a negative heartbeat', () => ({ heartbeatMs: -1 })],
    ['a batch larger than half a frame', () => ({ maxFrameBytes: 1000, maxBatchBytes: 600 })],
    ['tls cert without key', () => ({ tls: { cert: 'x' } })],
  ])('refuses %s with CONFIG_INVALID', async (_name, bad) => {
    const s = store('a')
    await expect(
      startSync({
        log: s,
        druId: 'a',
        secret: SECRET,
        keys: { privateKey: ka.privateKey, publicKeys },
        listen: { port: 0 },
        ...bad(s),
      }),
    ).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
    })
  })
})

describe('SyncNode in one process', () => {
  it('refuses to send a frame over maxFrameBytes (a huge commit): FRAME_TOO_LARGE at the sender, nothing half-sent', async () => {
    const sa = store('a')
    const sb = store('b')
    const limits = { maxFrameBytes: 64 * 1024, maxBatchBytes: 16 * 1024 }
    const a = await node({ log: sa, druId: 'a', ...limits })
    const big = sa.commit('doc', new Uint8Array(100 * 1024).fill(7))
    const b = await node({ log: sb, druId: 'b', ...limits, peers: [{ id: 'a', url: `ws://127.0.0.1:${a.port}` }] })
    const down = new Promise<{ code: string }>((resolve) => a.on('peer-down', (_id, reason) => resolve(reason)))
    expect((await down).code).toBe('FRAME_TOO_LARGE')
    expect(sb.vv()[big.origin]).toBeUndefined()
    // Refused before sending: the 100 KiB batch never went on the wire.
    expect(a.peerStatus()[0]!.bytesOut).toBeLessThan(limits.maxFrameBytes)
    // b learns why from the error frame a sends before closing.
    for (let i = 0; i < 100 && b.peerStatus()[0]!.lastError?.code !== 'FRAME_TOO_LARGE'; i++)
      await new Promise((r) => setTimeout(r, 20))
    expect(b.peerStatus()[0]!.lastError?.code).toBe('FRAME_TOO_LARGE')
  })

  it('syncs two in-memory stores, reports status, and settles waitForAcks', async () => {
    const sa = store('a')
    const sb = store('b')
    const a = await node({ log: sa, druId: 'a' })
    const b = await node({ log: sb, druId: 'b', peers: [{ id: 'a', url: `ws://127.0.0.1:${a.port}` }] })
    const ups: string[] = []
    a.on('peer-up', (id) => ups.push(id))
    const e = sa.commit('doc', new Uint8Array([1, 2, 3]))
    await a.waitForAcks(e, 1, 5000)
    expect(sb.vv()[e.origin]).toBe(1)
    expect(ups).toEqual(['b'])
    const st = a.peerStatus()[0]!
    expect(st).toMatchObject({ id: 'b', connected: true, quarantined: false, lag: 0 })
    expect(st.ackedVv[e.origin]).toBe(1)
    expect(b.peerStatus()[0]!.theirVv[e.origin]).toBe(1)
    // Acked vectors are persisted in the store's peers table (within the 200 ms flush).
    await new Promise((r) => setTimeout(r, 300))
    expect(sa.peer('b')?.ackedVv[e.origin]).toBe(1)
  })

  it('waitForAcks: validates arguments, resolves at once for k = 0, and close() rejects pending waits with CLOSED', async () => {
    const sa = store('a')
    const a = await node({ log: sa, druId: 'a' })
    const e = sa.commit('doc', new Uint8Array([1]))
    await expect(a.waitForAcks({ origin: e.origin, seq: 0 }, 1, 100)).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
    await expect(a.waitForAcks(e, -1, 100)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await a.waitForAcks(e, 0, 100)
    await expect(a.waitForAcks(e, 1, 50)).rejects.toMatchObject({ code: 'ACK_TIMEOUT', details: { acked: 0, k: 1 } })
    const pending = a.waitForAcks(e, 1, 10_000)
    await a.close()
    await expect(pending).rejects.toMatchObject({ code: 'CLOSED' })
  })
})
