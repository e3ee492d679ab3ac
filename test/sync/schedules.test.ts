import { afterEach, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { equalFingerprints } from '@dru/core'
import { EventStore } from '@dru/store-sqlite'
import { generateKeys, signerFor, startSync, type SyncNode } from '@dru/sync'
import { LinkProxy } from '@dru/testkit'

/**
 * Convergence under arbitrary partition schedules: three DRUs in this process (in-memory
 * logs, real WebSockets on loopback through TCP proxies), a random sequence of writes,
 * cuts (reset, blackhole, or byte loss inside a live connection) and heals; after a final heal all fingerprints are equal and
 * every event was applied exactly once at every DRU.
 */

const RUNS = Number(process.env.DRU_PROPERTY_RUNS ?? 0) || 6
const IDS = ['a', 'b', 'c'] as const
const LINKS = [
  ['a', 'b'],
  ['a', 'c'],
  ['b', 'c'],
] as const
const pairs = Object.fromEntries(IDS.map((id) => [id, generateKeys()]))
const publicKeys = Object.fromEntries(IDS.map((id) => [id, pairs[id]!.publicKey]))

type Step =
  | { kind: 'write'; at: number; n: number }
  | { kind: 'cut'; link: number; how: 'cut' | 'blackhole' | 'drop' }
  | { kind: 'heal'; link: number }
  | { kind: 'wait'; ms: number }

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant('write' as const),
    at: fc.integer({ min: 0, max: 2 }),
    n: fc.integer({ min: 1, max: 40 }),
  }),
  fc.record({
    kind: fc.constant('cut' as const),
    link: fc.integer({ min: 0, max: 2 }),
    how: fc.constantFrom('cut' as const, 'blackhole' as const, 'drop' as const),
  }),
  fc.record({ kind: fc.constant('heal' as const), link: fc.integer({ min: 0, max: 2 }) }),
  fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 150 }) }),
)

const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

async function run(steps: Step[]): Promise<void> {
  const stores = IDS.map((id) =>
    EventStore.open({ path: ':memory:', druId: id, sign: signerFor(pairs[id]!.privateKey) }),
  )
  const effects = stores.map(() => new Map<string, number>())
  stores.forEach((s, i) =>
    s.onIngest(
      'effects',
      (e) => void effects[i]!.set(`${e.origin}#${e.seq}`, (effects[i]!.get(`${e.origin}#${e.seq}`) ?? 0) + 1),
    ),
  )
  const proxies = await Promise.all(LINKS.map(() => LinkProxy.start()))
  const nodes: SyncNode[] = []
  try {
    for (const [i, id] of IDS.entries()) {
      const peers = LINKS.flatMap(([x, y], l) => (x === id ? [{ id: y, url: proxies[l]!.url }] : []))
      nodes.push(
        await startSync({
          log: stores[i]!,
          druId: id,
          listen: { port: 0 },
          peers,
          secret: 'schedule-test-secret-012345',
          keys: { privateKey: pairs[id]!.privateKey, publicKeys },
          heartbeatMs: 50,
          heartbeatTimeoutMs: 300,
          backoff: { baseMs: 20, maxMs: 100 },
        }),
      )
    }
    LINKS.forEach(([, y], l) => (proxies[l]!.target = nodes[IDS.indexOf(y)]!.port))
    let written = 0
    for (const s of steps) {
      if (s.kind === 'write') {
        stores[s.at]!.transact((tx) => {
          for (let k = 0; k < s.n; k++) tx.append(`doc-${k % 5}`, new Uint8Array([s.at, k, written & 255]))
        })
        written += s.n
      } else if (s.kind === 'cut') proxies[s.link]!.set(s.how)
      else if (s.kind === 'heal') proxies[s.link]!.set('pass')
      else await new Promise((r) => setTimeout(r, s.ms))
    }
    for (const p of proxies) p.set('pass')
    const deadline = Date.now() + 15_000
    while (
      !stores.every((s) => equalFingerprints(s.fingerprint(), stores[0]!.fingerprint()) && s.count() === written)
    ) {
      if (Date.now() > deadline) {
        throw new Error(
          `no convergence: counts ${stores.map((s) => s.count())} of ${written}; status ${JSON.stringify(nodes.map((n) => n.peerStatus().map((p) => [p.id, p.connected, p.lastError?.code])))}`,
        )
      }
      await new Promise((r) => setTimeout(r, 20))
    }
    stores.forEach((s, i) => {
      const own = s.vv()[s.origin] ?? 0
      expect(effects[i]!.size).toBe(written - own)
      expect([...effects[i]!.values()].every((n) => n === 1)).toBe(true)
      expect(nodes[i]!.peerStatus().every((p) => !p.quarantined)).toBe(true)
    })
  } finally {
    for (const n of nodes) await n.close()
    for (const p of proxies) await p.close()
    for (const s of stores) s.close()
  }
}

describe('convergence under random partition schedules', () => {
  it('three DRUs converge, each remote event applied exactly once, whatever the schedule', async () => {
    await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 5, maxLength: 25 }), run), {
      seed: 20261125,
      numRuns: RUNS,
      endOnFailure: true,
    })
  }, 120_000)
})
