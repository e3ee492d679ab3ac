import { afterEach, describe, expect, it } from 'vitest'
import type { VersionVector } from '@dru/core'
import { generateKeys, startSync, type SyncNode } from '../src/index.js'
import { SignedLog } from './helpers/signed-log.js'

// One ack per durable commit per session. The receiving protocol acks a batch right after
// ingest returns, and the node's commit listener then asks every session to ack what grew:
// for the session that brought the batch nothing grew, so it must send nothing more.

const keys = { a: generateKeys(), b: generateKeys() }
const publicKeys = { a: keys.a.publicKey, b: keys.b.publicKey }
const SECRET = 'ack-count-test-secret-0123456789'
const open: Array<{ close(): unknown }> = []
afterEach(async () => {
  for (const x of open.splice(0).reverse()) await x.close()
})

const settle = () => new Promise((r) => setTimeout(r, 50))

describe('acks', () => {
  it('N batches received over a real session are acknowledged by exactly N ack frames', async () => {
    const N = 12
    const la = new SignedLog('a', keys.a.privateKey)
    const lb = new SignedLog('b', keys.b.privateKey)
    open.push(la, lb)
    const b: SyncNode = await startSync({
      log: lb,
      druId: 'b',
      secret: SECRET,
      keys: { privateKey: keys.b.privateKey, publicKeys },
      listen: { port: 0 },
    })
    open.push(b)
    const a: SyncNode = await startSync({
      log: la,
      druId: 'a',
      secret: SECRET,
      keys: { privateKey: keys.a.privateKey, publicKeys },
      peers: [{ id: 'b', url: `ws://127.0.0.1:${b.port}` }],
    })
    open.push(a)
    const acks: VersionVector[] = []
    a.on('ack', (_peer, vv) => acks.push(vv))
    await new Promise<void>((resolve) =>
      a.peerStatus()[0]?.connected ? resolve() : a.once('peer-up', () => resolve()),
    )
    await settle()
    expect(acks).toEqual([])
    for (let i = 1; i <= N; i++) {
      // One commit, one batch: wait for its ack before the next, so commits never coalesce.
      const e = la.commit('doc', new Uint8Array([i]))
      await a.waitForAcks(e, 1, 5_000)
    }
    // Let the commit listener's scheduled acks (setImmediate) and anything late arrive.
    await settle()
    expect(lb.vv()[la.origin]).toBe(N)
    expect(acks).toHaveLength(N)
    expect(acks.map((vv) => vv[la.origin])).toEqual(Array.from({ length: N }, (_, i) => i + 1))
    expect(b.peerStatus()[0]!.eventsIn).toBe(N)
  })
})
