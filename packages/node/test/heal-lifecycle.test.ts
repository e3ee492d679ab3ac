import { describe, expect, it } from 'vitest'
import { LinkProxy } from '@dru/testkit'
import { generateKeys, openDru, runtimeOf, type Dru } from '../src/index.js'
import { closedAfterEach, until } from './fixtures/wait.js'

// After a heal with no further writes, every DRU must reach `active`: "caught up" needs each
// peer to acknowledge what we hold, and a peer that got those events straight from their
// origin (not from us) used to never say so. slackEvents 0 makes one missing ack visible.

const cleanups = closedAfterEach()

describe('lifecycle after a heal', () => {
  it('a DRU cut off from both peers while one of them wrote becomes active again, and so do its peers', async () => {
    const ids = ['a', 'b', 'c'] as const
    const keys = Object.fromEntries(ids.map((id) => [id, generateKeys()]))
    const publicKeys = Object.fromEntries(ids.map((id) => [id, keys[id]!.publicKey]))
    // One proxy per directed link, so c can be cut off from both sides at once.
    const links: Array<{ from: string; to: string; proxy: LinkProxy }> = []
    for (const from of ids)
      for (const to of ids) if (from !== to) links.push({ from, to, proxy: await LinkProxy.start() })
    cleanups.push(() => Promise.all(links.map((l) => l.proxy.close())))
    const drus: Record<string, Dru> = {}
    for (const id of ids) {
      const dru = await openDru({
        id,
        path: ':memory:',
        listen: { host: '127.0.0.1', port: 0 },
        peers: links.filter((l) => l.from === id).map((l) => ({ id: l.to, url: l.proxy.url })),
        secret: 'heal-lifecycle-secret-0123456789',
        keys: { privateKey: keys[id]!.privateKey, publicKeys },
        sync: { heartbeatMs: 100, heartbeatTimeoutMs: 800, startupGraceMs: 300, slackEvents: 0 },
      })
      cleanups.push(() => dru.close())
      drus[id] = dru
      for (const l of links) if (l.to === id) l.proxy.retarget(runtimeOf(dru).network!.sync.port)
    }
    const allActive = () => ids.every((id) => drus[id]!.state() === 'active')
    await until('all active', allActive, 20_000)

    for (const l of links) if (l.from === 'c' || l.to === 'c') l.proxy.cut()
    await until('c isolated', () => drus.c!.state() === 'isolated', 10_000)
    for (let i = 0; i < 40; i++)
      await drus.a!.change(`order-${i}`, (d: { n?: number }) => {
        d.n = i
      })
    for (const l of links) if (l.from === 'c' || l.to === 'c') l.proxy.heal()

    await until('c holds a’s writes', () => drus.c!.get('order-39') !== undefined, 20_000)
    await until('every DRU active again', allActive, 20_000).catch((err: Error) => {
      const lag = ids.map((id) => `${id}: ${drus[id]!.state()}`).join(', ')
      throw new Error(`${err.message} (${lag})`)
    })
    expect(ids.map((id) => drus[id]!.state())).toEqual(['active', 'active', 'active'])
  })
})
