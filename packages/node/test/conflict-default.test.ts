import { describe, expect, it } from 'vitest'
import { fingerprintDigest } from '@dru/core'
import { LinkProxy } from '@dru/testkit'
import { generateKeys, openDru, runtimeOf, type Dru, type DruConfig } from '../src/index.js'
import { closedAfterEach, until } from './fixtures/wait.js'

// The default (keep-visible) settles a conflict with the value every DRU already shows and
// writes nothing; newest-hlc-wins writes the newest value on every DRU; both are journaled
// (both values, writers, the winner, resolvedBy: policy, /status and the gauge); manual leaves
// the same conflict open for an operator.

const cleanups = closedAfterEach()

type Order = { status?: string }

/** Two DRUs over one cuttable link; `a`'s clock runs 10 s behind `b`'s. */
async function pair(extra: Partial<DruConfig> = {}): Promise<{ a: Dru; b: Dru; link: LinkProxy }> {
  const keys = { a: generateKeys(), b: generateKeys() }
  const publicKeys = { a: keys.a.publicKey, b: keys.b.publicKey }
  const common = {
    path: ':memory:',
    secret: 'conflict-default-secret-0123456789',
    sync: { heartbeatMs: 100, heartbeatTimeoutMs: 800, startupGraceMs: 300 },
    ...extra,
  }
  const b = await openDru({
    ...common,
    id: 'b',
    listen: { host: '127.0.0.1', port: 0 },
    keys: { privateKey: keys.b.privateKey, publicKeys },
    admin: { host: '127.0.0.1', port: 0 },
  })
  cleanups.push(() => b.close())
  const link = await LinkProxy.start({ target: runtimeOf(b).network!.sync.port })
  cleanups.push(() => link.close())
  const a = await openDru({
    ...common,
    id: 'a',
    peers: [{ id: 'b', url: link.url }],
    keys: { privateKey: keys.a.privateKey, publicKeys },
    now: () => Date.now() - 10_000,
  })
  cleanups.push(() => a.close())
  await until('both active', () => a.state() === 'active' && b.state() === 'active')
  return { a, b, link }
}

/** Both write `order-1.status` while cut off: a first (by its clock), b 10 s later. */
async function concurrentWrites(a: Dru, b: Dru, link: LinkProxy): Promise<void> {
  await a.change<Order>('order-1', (d) => {
    d.status = 'placed'
  })
  await until('b has order-1', () => b.get('order-1') !== undefined)
  link.cut()
  await until('a isolated', () => a.state() === 'isolated')
  await a.change<Order>('order-1', (d) => {
    d.status = 'cancelled'
  })
  await b.change<Order>('order-1', (d) => {
    d.status = 'shipped'
  })
  link.heal()
}

describe('conflict policies and the journal', () => {
  it('the default keeps the value every DRU shows, writes nothing, and journals both values and writers', async () => {
    const { a, b, link } = await pair()
    await concurrentWrites(a, b, link)
    await until(
      'both hold both writes',
      () => fingerprintDigest(a.fingerprint()) === fingerprintDigest(b.fingerprint()),
    )
    const before = a.store.count()
    const settled = (d: Dru) => d.conflicts.list('open').length === 0 && d.conflicts.list('resolved').length === 1
    await until('the conflict recorded and resolved on both', () => settled(a) && settled(b))
    const shown = a.get<Order>('order-1')!.status
    expect(['cancelled', 'shipped']).toContain(shown)
    for (const d of [a, b]) {
      expect(d.get<Order>('order-1')).toEqual({ status: shown })
      const [c] = d.conflicts.list('resolved')
      expect(c).toMatchObject({ docId: 'order-1', path: ['status'], resolvedBy: 'policy', resolution: shown })
      expect(c!.values.map((v) => [v.value, v.origin.split('/')[0]]).sort()).toEqual([
        ['cancelled', 'a'],
        ['shipped', 'b'],
      ])
      expect(d.conflicts.counts()).toEqual({ open: 0, resolved: { policy: 1 } })
    }
    // Nothing was written to settle it: the logs hold only the application's three writes.
    await new Promise((r) => setTimeout(r, 300))
    expect(a.store.count()).toBe(before)
    expect(fingerprintDigest(a.fingerprint())).toBe(fingerprintDigest(b.fingerprint()))
  })

  it('newest-hlc-wins settles a conflict the same way on both DRUs and journals both values and writers', async () => {
    const { a, b, link } = await pair({ conflictPolicy: 'newest-hlc-wins' })
    await concurrentWrites(a, b, link)
    const settled = (d: Dru) => d.conflicts.list('open').length === 0 && d.conflicts.list('resolved').length === 1
    await until('the conflict resolved on both', () => settled(a) && settled(b))
    for (const d of [a, b]) {
      expect(d.get<Order>('order-1')).toEqual({ status: 'shipped' })
      const [c] = d.conflicts.list('resolved')
      expect(c).toMatchObject({ docId: 'order-1', path: ['status'], resolvedBy: 'policy', resolution: 'shipped' })
      expect(c!.values.map((v) => [v.value, v.origin.split('/')[0]]).sort()).toEqual([
        ['cancelled', 'a'],
        ['shipped', 'b'],
      ])
      expect(d.conflicts.counts()).toEqual({ open: 0, resolved: { policy: 1 } })
    }
    // Visible to operators without the API: /status and the gauge.
    const admin = runtimeOf(b).admin!.url
    const status = (await (await fetch(`${admin}/status`)).json()) as { conflictsResolved: Record<string, number> }
    expect(status.conflictsResolved).toEqual({ policy: 1 })
    expect(await (await fetch(`${admin}/metrics`)).text()).toMatch(
      /^dru_conflicts_resolved\{[^}]*by="policy"[^}]*\} 1$/m,
    )
  })

  it('manual leaves the same conflict open for an operator', async () => {
    const { a, b, link } = await pair({ conflictPolicy: 'manual' })
    await concurrentWrites(a, b, link)
    await until('the conflict recorded on both', () => [a, b].every((d) => d.conflicts.list('open').length === 1))
    await new Promise((r) => setTimeout(r, 300))
    for (const d of [a, b]) expect(d.conflicts.counts()).toEqual({ open: 1, resolved: {} })
  })
})
