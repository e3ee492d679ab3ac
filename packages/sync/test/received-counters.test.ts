import { afterEach, describe, expect, it } from 'vitest'
import { SimNetwork } from '@dru/testkit'
import { generateKeys, startSync, type SyncNode } from '../src/index.js'
import { SignedLog } from './helpers/signed-log.js'

// What forwarding costs is counted over every session, not the open ones: a duplicate race
// often ends with the session that lost it closing, and counting only open sessions once read
// received ÷ needed = 1.000 beside 20,000 duplicates (bench:sync's heal).

const keys = { a: generateKeys(), b: generateKeys() }
const publicKeys = { a: keys.a.publicKey, b: keys.b.publicKey }
const SECRET = 'received-counter-secret-012345678'
const open: Array<{ close(): unknown }> = []
afterEach(async () => {
  for (const x of open.splice(0).reverse()) await x.close()
})

async function dialer(log: SignedLog, port: number): Promise<SyncNode> {
  const a = await startSync({
    log,
    druId: 'a',
    secret: SECRET,
    keys: { privateKey: keys.a.privateKey, publicKeys },
    peers: [{ id: 'b', url: `ws://127.0.0.1:${port}` }],
  })
  await new Promise<void>((resolve) => (a.peerStatus()[0]?.connected ? resolve() : a.once('peer-up', () => resolve())))
  return a
}

describe('events received, counted over every session', () => {
  it('a peer status keeps what closed sessions received (eventsInTotal), beside the current session (eventsIn)', async () => {
    const la = new SignedLog('a', keys.a.privateKey)
    const lb = new SignedLog('b', keys.b.privateKey)
    open.push(la, lb)
    const b = await startSync({
      log: lb,
      druId: 'b',
      secret: SECRET,
      keys: { privateKey: keys.b.privateKey, publicKeys },
      listen: { port: 0 },
    })
    open.push(b)
    const first = await dialer(la, b.port)
    for (let i = 1; i <= 5; i++) await first.waitForAcks(la.commit('doc', new Uint8Array([i])), 1, 5_000)
    await first.close()
    // A second session from the same peer: its counters start over, the peer's do not.
    const second = await dialer(la, b.port)
    open.push(second)
    for (let i = 6; i <= 8; i++) await second.waitForAcks(la.commit('doc', new Uint8Array([i])), 1, 5_000)
    const status = b.peerStatus().find((p) => p.id === 'a')!
    expect(status.eventsIn).toBe(3)
    expect(status.eventsInTotal).toBe(8)
    expect(status.duplicatesInTotal).toBe(0)
  })

  it('the simulation counts per link over closed sessions too (receivedByLink sums to received)', async () => {
    const net = await SimNetwork.create({ size: 2, seed: 3, exchange: 'protocol' })
    try {
      await net.drus[0]!.change('doc', (d) => (d.x = 1))
      net.settle()
      net.cut(0, 1)
      await net.drus[0]!.change('doc', (d) => (d.x = 2))
      net.heal(0, 1)
      net.settle()
      const links = net.receivedByLink()
      const total = net.received()
      expect(links.find((l) => l.to === 1 && l.from === 0)?.events).toBe(2)
      expect(links.reduce((n, l) => n + l.events, 0)).toBe(total.events.reduce((n, e) => n + e, 0))
    } finally {
      await net.close()
    }
  })
})
