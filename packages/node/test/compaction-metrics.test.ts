import { afterEach, describe, expect, it } from 'vitest'
import { generateKeys } from '@dru/sync'
import { openDru, runtimeOf, type Dru } from '../src/index.js'

// dru_compaction_floor_events and dru_compaction_held_back_events, as a scrape sets them:
// the alert DruCompactionFloorHeldBack (deploy/prometheus/dru-alerts.yml) reads both. And a
// decommissioned peer leaves the per-peer gauges, which DruPeerDisconnected and the lag alerts read.

const open: Dru[] = []
afterEach(async () => {
  while (open.length) await open.pop()!.close()
})

async function metricsText(dru: Dru): Promise<string> {
  return await (await fetch(`${runtimeOf(dru).admin!.url}/metrics`)).text()
}

async function scrape(dru: Dru): Promise<Record<string, number>> {
  const text = await metricsText(dru)
  const value = (name: string): number => Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1])
  return { floor: value('dru_compaction_floor_events'), heldBack: value('dru_compaction_held_back_events') }
}

async function write(dru: Dru, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await dru.change(`doc-${i}`, (doc: Record<string, unknown>) => {
      doc.n = i
    })
  }
}

describe('compaction floor metrics', () => {
  it('a DRU without peers: every event is at the floor, none held back', async () => {
    const a = await openDru({ id: 'a', path: ':memory:', admin: { host: '127.0.0.1', port: 0 } })
    open.push(a)
    await write(a, 3)
    expect(await scrape(a)).toEqual({ floor: 3, heldBack: 0 })
  })

  it('a member that never acknowledged holds every event of ours above the floor', async () => {
    const keys = { a: generateKeys(), b: generateKeys() }
    // Nothing listens on port 9 (discard): b stays a member that has acknowledged nothing.
    const a = await openDru({
      id: 'a',
      path: ':memory:',
      admin: { host: '127.0.0.1', port: 0 },
      peers: [{ id: 'b', url: 'ws://127.0.0.1:9' }],
      secret: 'compaction-metrics-secret-0123',
      keys: { privateKey: keys.a.privateKey, publicKeys: { a: keys.a.publicKey, b: keys.b.publicKey } },
      allowWritesWhileRestoring: true,
    })
    open.push(a)
    await write(a, 4)
    expect(await scrape(a)).toEqual({ floor: 0, heldBack: 4 })
    expect(await metricsText(a)).toMatch(/^dru_peer_connected\{peer="b",dru="a"\} 0$/m)

    // Decommissioned: b no longer holds the floor, and its peer series are gone (no alert on a
    // peer that is down for good).
    a.decommission('b')
    expect(await scrape(a)).toEqual({ floor: 4, heldBack: 0 })
    expect(await metricsText(a)).not.toMatch(/^dru_peer_(connected|lag_events|lag_seconds)\{[^}]*peer="b"/m)
  })
})
