import { describe, expect, it } from 'vitest'
// @ts-expect-error plain .mjs module shared with the harness (no type declarations)
import { check } from './checker.mjs'

/**
 * Mutant controls for the chaos checker: a clean two-DRU history passes, and each
 * invariant, broken in one copy of the dumps, is reported under its own name.
 */
type Dump = {
  id: string
  origin: string
  state: string
  fingerprint: { vv: Record<string, number>; heads: Record<string, string> }
  digest: string
  docs: Record<string, Record<string, string>>
  events: Array<[string, number, string]>
  effects: Array<[string, number, number]>
  verify: { ok: boolean; code?: string; message?: string }
  maxRssKiB: number
}
type Violation = { invariant: string; message: string }

const w = (type: string, token: string, dru: string, acks = 0, time = 1) => ({
  process: `client-${dru}`,
  type,
  f: 'write',
  value: { dru, doc: 'd', token, acks },
  time,
})
function clean(): { history: unknown[]; dumps: Dump[] } {
  const history = [
    w('invoke', 't1', 'a'),
    w('ok', 't1', 'a'),
    w('invoke', 't2', 'b', 1),
    w('ok', 't2', 'b', 1),
    w('invoke', 't3', 'b'),
    w('fail', 't3', 'b'),
    w('invoke', 't4', 'a'),
    w('info', 't4', 'a'),
  ]
  const events: Array<[string, number, string]> = [
    ['a/1', 1, 'h-a1'],
    ['b/1', 1, 'h-b1'],
  ]
  const base = {
    state: 'active',
    fingerprint: { vv: { 'a/1': 1, 'b/1': 1 }, heads: { 'a/1': 'h-a1', 'b/1': 'h-b1' } },
    digest: 'same',
    docs: { d: { t1: 'a', t2: 'b' } },
    events,
    verify: { ok: true },
    maxRssKiB: 100_000,
  }
  return {
    history,
    dumps: [
      { ...base, id: 'a', origin: 'a/1', effects: [['b/1', 1, 1]] },
      { ...base, id: 'b', origin: 'b/1', effects: [['a/1', 1, 1]] },
    ],
  }
}
const kinds = (r: { violations: Violation[] }) => [...new Set(r.violations.map((v) => v.invariant))]

describe('chaos checker', () => {
  it('passes a clean history (info writes may be absent)', () => {
    const { history, dumps } = clean()
    const r = check(history, dumps)
    expect(r.violations).toEqual([])
    expect(r.stats).toMatchObject({ ok: 2, okAcks1: 1, fail: 1, info: 1, remoteEventsApplied: 2 })
  })

  it('reports a lost ok write (I2 LOST)', () => {
    const { history, dumps } = clean()
    dumps[1]!.docs = { d: { t1: 'a' } }
    expect(kinds(check(history, dumps))).toContain('I2 LOST')
  })

  it('allows an acks:0 write lost with its restored disk, but never an acks:1 write', () => {
    const { history, dumps } = clean()
    history.push({
      process: 'nemesis',
      type: 'info',
      f: 'restore',
      value: { dru: 'b', copyAt: 0, before: 'b/1', after: 'b/2' },
      time: 5,
    })
    for (const d of dumps) d.docs = { d: { t1: 'a' } }
    const r = check(history, dumps)
    expect(r.violations.map((v: Violation) => v.message).join()).toContain('t2 (acks:1')
    history[2] = w('invoke', 't2', 'b', 0)
    history[3] = w('ok', 't2', 'b', 0)
    const r0 = check(history, dumps)
    expect(kinds(r0)).not.toContain('I2 LOST')
    expect(r0.stats.lostAllowed).toBe(1)
  })

  it('requires an ACK_TIMEOUT write (committed locally) to be present, unless its writer lost its disk', () => {
    const { history, dumps } = clean()
    history.push(w('invoke', 't5', 'a', 1), { ...w('info', 't5', 'a', 1), result: { code: 'ACK_TIMEOUT' } })
    const r = check(history, dumps)
    expect(r.violations.map((x: Violation) => x.message).join()).toContain('t5')
    expect(r.stats.committedUnacked).toBe(1)
    for (const d of dumps) d.docs.d!.t5 = 'a'
    expect(check(history, dumps).violations).toEqual([])
    for (const d of dumps) delete d.docs.d!.t5
    history.push({
      process: 'nemesis',
      type: 'info',
      f: 'lost-disk',
      value: { dru: 'a', copyAt: 0, before: 'a/1', after: 'a/2' },
      time: 9,
    })
    expect(kinds(check(history, dumps))).not.toContain('I2 LOST')
  })

  it('reports a failed write that is present (I2 PHANTOM) and a token nobody wrote', () => {
    const { history, dumps } = clean()
    for (const d of dumps) d.docs = { d: { t1: 'a', t2: 'b', t3: 'b', zz: 'x' } }
    const r = check(history, dumps)
    expect(r.violations.filter((v: Violation) => v.invariant === 'I2 PHANTOM')).toHaveLength(3) // t3 once, zz on each DRU
  })

  it('reports a handler run twice, a missed run and a run for an own event (I3 ONCE)', () => {
    for (const effects of [
      [['b/1', 1, 2]],
      [],
      [
        ['b/1', 1, 1],
        ['a/1', 1, 1],
      ],
    ] as Array<Array<[string, number, number]>>) {
      const { history, dumps } = clean()
      dumps[0]!.effects = effects
      expect(kinds(check(history, dumps))).toEqual(['I3 ONCE'])
    }
  })

  it('reports an effect without its event (I1 ORPHAN)', () => {
    const { history, dumps } = clean()
    dumps[0]!.effects.push(['c/1', 1, 1])
    expect(kinds(check(history, dumps))).toContain('I1 ORPHAN')
  })

  it('reports different documents, digests or fingerprints, and a DRU not active (I4, I8)', () => {
    const { history, dumps } = clean()
    dumps[1]!.docs = { d: { t1: 'a', t2: 'a' } }
    dumps[1]!.digest = 'other'
    dumps[1]!.state = 'catching-up'
    expect(kinds(check(history, dumps)).sort()).toEqual(['I4 CONVERGE', 'I8 LIVE'])
  })

  it('reports two hashes for one (origin, seq) (I5 FORK) and a hole in a chain (I9 VV)', () => {
    const { history, dumps } = clean()
    dumps[1]!.events = [
      ['a/1', 1, 'h-evil'],
      ['b/1', 1, 'h-b1'],
    ]
    expect(kinds(check(history, dumps))).toContain('I5 FORK')
    const c = clean()
    c.dumps[0]!.events = [
      ['a/1', 1, 'h-a1'],
      ['a/1', 3, 'h-a3'],
      ['b/1', 1, 'h-b1'],
    ]
    expect(kinds(check(c.history, c.dumps))).toContain('I9 VV')
  })

  it('reports an isolated DRU that still claims a connected peer (I10 OBSERVABLE)', () => {
    const { history, dumps } = clean()
    history.push({
      process: 'nemesis',
      type: 'info',
      f: 'observe-isolated',
      value: { dru: 'a', heldMs: 3000, state: 'isolated', connected: [] },
      time: 3,
    })
    expect(check(history, dumps).violations).toEqual([])
    history.push({
      process: 'nemesis',
      type: 'info',
      f: 'observe-isolated',
      value: { dru: 'a', heldMs: 3000, state: 'active', connected: ['b'] },
      time: 4,
    })
    expect(kinds(check(history, dumps))).toEqual(['I10 OBSERVABLE'])
  })

  it('reports a VV or an acked VV that went back within one process (I9 REGRESS), not across processes', () => {
    const { history, dumps } = clean()
    const sample = (
      pid: number,
      vv: Record<string, number>,
      acked: Record<string, Record<string, number>>,
      time: number,
    ) => ({
      process: 'monitor',
      type: 'info',
      f: 'vv',
      value: { dru: 'a', pid, vv, acked },
      time,
    })
    history.push(
      sample(1, { 'a/1': 3 }, { b: { 'a/1': 2 } }, 2),
      sample(1, { 'a/1': 4 }, { b: { 'a/1': 3 } }, 3),
      sample(2, { 'a/1': 1 }, {}, 4),
    )
    expect(check(history, dumps).violations).toEqual([])
    history.push(sample(2, { 'a/1': 0 }, {}, 5))
    expect(kinds(check(history, dumps))).toEqual(['I9 REGRESS'])
    const c = clean()
    c.history.push(sample(1, { 'a/1': 3 }, { b: { 'a/1': 2 } }, 2), sample(1, { 'a/1': 3 }, { b: { 'a/1': 1 } }, 3))
    expect(kinds(check(c.history, c.dumps))).toEqual(['I9 REGRESS'])
  })

  it('accepts a restore that came up under a fresh origin, and flags one that came up under an origin seen before', () => {
    const fresh = clean()
    fresh.history.push({
      process: 'nemesis',
      type: 'info',
      f: 'restore',
      value: { dru: 'b', copyAt: 0, before: 'b/1', after: 'b/98765' },
      time: 5,
    })
    expect(kinds(check(fresh.history, fresh.dumps))).toEqual([])
    const reused = clean()
    reused.history.push({
      process: 'monitor',
      type: 'ok',
      f: 'vv',
      value: { dru: 'b', pid: 1, vv: { 'a/1': 3, 'a/2': 1 }, acked: {} },
      time: 2,
    })
    reused.history.push({
      process: 'nemesis',
      type: 'info',
      f: 'restore',
      value: { dru: 'a', copyAt: 0, before: 'a/1', after: 'a/2' },
      time: 5,
    })
    expect(kinds(check(reused.history, reused.dumps))).toEqual(['I5 INCARNATION'])
  })

  it('reports a restore that kept its incarnation, a failed verifyLog and RSS over the bound', () => {
    const { history, dumps } = clean()
    history.push({
      process: 'nemesis',
      type: 'info',
      f: 'restore',
      value: { dru: 'b', copyAt: 0, before: 'b/7', after: 'b/7' },
      time: 5,
    })
    dumps[0]!.verify = { ok: false, code: 'CHAIN_BROKEN', message: 'x' }
    dumps[1]!.maxRssKiB = 900 * 1024
    expect(kinds(check(history, dumps, { rssBoundKiB: 512 * 1024 })).sort()).toEqual([
      'I5 INCARNATION',
      'I6 RSS',
      'VERIFY',
    ])
  })
})
