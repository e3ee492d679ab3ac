import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  LIFECYCLE_SIGNALS,
  LIFECYCLE_STATES,
  LifecycleSignal as G,
  LifecycleState as S,
  createLifecycle,
  isLifecycleSignal,
  isLifecycleState,
  isReady,
  transition,
  type LifecycleSignal,
  type LifecycleState,
  type LifecycleTransition,
} from '../src/index.js'

const runs = Number(process.env.DRU_PROPERTY_RUNS ?? 300)
const signalArb = fc.constantFrom(...LIFECYCLE_SIGNALS)

describe('lifecycle transition table', () => {
  it.each<[LifecycleState, LifecycleSignal, LifecycleState]>([
    // the normal start: starting -> catching-up -> verifying -> active
    [S.STARTING, G.PEERS_REACHABLE, S.CATCHING_UP],
    [S.CATCHING_UP, G.CAUGHT_UP, S.VERIFYING],
    [S.VERIFYING, G.VERIFIED, S.ACTIVE],
    // standalone DRU: nobody to verify against
    [S.STARTING, G.NO_PEERS, S.ACTIVE],
    // every peer decommissioned: standalone from any state
    [S.ISOLATED, G.LAST_PEER_REMOVED, S.ACTIVE],
    [S.CATCHING_UP, G.LAST_PEER_REMOVED, S.ACTIVE],
    [S.VERIFYING, G.LAST_PEER_REMOVED, S.ACTIVE],
    [S.STARTING, G.LAST_PEER_REMOVED, S.ACTIVE],
    [S.ACTIVE, G.LAST_PEER_REMOVED, S.ACTIVE],
    // partition: active -> isolated, and back only through catch-up
    [S.ACTIVE, G.ALL_PEERS_LOST, S.ISOLATED],
    [S.ISOLATED, G.PEERS_REACHABLE, S.CATCHING_UP],
    [S.CATCHING_UP, G.ALL_PEERS_LOST, S.ISOLATED],
    [S.VERIFYING, G.ALL_PEERS_LOST, S.ISOLATED],
    [S.STARTING, G.ALL_PEERS_LOST, S.ISOLATED],
    // differences send us back to catching up
    [S.VERIFYING, G.VERIFY_FAILED, S.CATCHING_UP],
    [S.VERIFYING, G.GAP_FOUND, S.CATCHING_UP],
    [S.ACTIVE, G.GAP_FOUND, S.CATCHING_UP],
    [S.ACTIVE, G.VERIFY_FAILED, S.CATCHING_UP],
    // restore: own origin must come back before anything else
    [S.STARTING, G.RESTORE_PENDING, S.CATCHING_UP],
    [S.ACTIVE, G.RESTORE_PENDING, S.CATCHING_UP],
    // ignored signals leave the state alone
    [S.ISOLATED, G.VERIFIED, S.ISOLATED],
    [S.ISOLATED, G.CAUGHT_UP, S.ISOLATED],
    [S.ISOLATED, G.NO_PEERS, S.ISOLATED],
    [S.CATCHING_UP, G.VERIFIED, S.CATCHING_UP],
    [S.STARTING, G.VERIFIED, S.STARTING],
    [S.STARTING, G.CAUGHT_UP, S.STARTING],
    [S.ACTIVE, G.PEERS_REACHABLE, S.ACTIVE],
    [S.ACTIVE, G.VERIFIED, S.ACTIVE],
  ])('%s + %s -> %s', (from, signal, to) => {
    expect(transition(from, signal)).toBe(to)
  })

  it('is ready only when active', () => {
    expect(LIFECYCLE_STATES.filter(isReady)).toEqual([S.ACTIVE])
  })

  it('recognises exactly its states and signals', () => {
    for (const s of LIFECYCLE_STATES) expect(isLifecycleState(s)).toBe(true)
    for (const g of LIFECYCLE_SIGNALS) expect(isLifecycleSignal(g)).toBe(true)
    for (const bad of ['ready', '', 'ACTIVE', 3, null, undefined, {}]) {
      expect(isLifecycleState(bad)).toBe(false)
      expect(isLifecycleSignal(bad)).toBe(false)
    }
  })

  it('walks random signal sequences without breaking the lifecycle laws', () => {
    fc.assert(
      fc.property(fc.array(signalArb, { maxLength: 60 }), (signals) => {
        let state: LifecycleState = S.STARTING
        let sawVerifyingSinceIsolated = false
        for (const signal of signals) {
          const next = transition(state, signal)
          expect(isLifecycleState(next)).toBe(true)
          if (next !== state) {
            // active only through verifying (or a standalone start)
            if (next === S.ACTIVE) {
              expect(
                state === S.VERIFYING ||
                  (state === S.STARTING && signal === G.NO_PEERS) ||
                  signal === G.LAST_PEER_REMOVED,
              ).toBe(true)
            }
            // verifying only after catching up
            if (next === S.VERIFYING) expect(state).toBe(S.CATCHING_UP)
            // isolated is left only to catching-up, and only when a peer is back
            if (state === S.ISOLATED && signal !== G.LAST_PEER_REMOVED) {
              expect(next).toBe(S.CATCHING_UP)
              expect(signal).toBe(G.PEERS_REACHABLE)
            }
            // losing every peer always isolates
            if (signal === G.ALL_PEERS_LOST) expect(next).toBe(S.ISOLATED)
          }
          if (signal === G.ALL_PEERS_LOST) expect(next).toBe(S.ISOLATED)
          // after isolation, ready again only after a fresh verification
          if (next === S.ISOLATED) sawVerifyingSinceIsolated = false
          if (next === S.VERIFYING) sawVerifyingSinceIsolated = true
          if (state === S.ISOLATED && next === S.ACTIVE && signal !== G.LAST_PEER_REMOVED)
            expect.unreachable('isolated -> active')
          if (next === S.ACTIVE && state !== S.ACTIVE && state !== S.STARTING && signal !== G.LAST_PEER_REMOVED) {
            expect(sawVerifyingSinceIsolated).toBe(true)
          }
          state = next
        }
      }),
      { numRuns: runs, seed: 51 },
    )
  })

  it('is a function of (state, signal): replaying the same signals gives the same states', () => {
    fc.assert(
      fc.property(fc.array(signalArb, { maxLength: 40 }), (signals) => {
        const walk = () =>
          signals.reduce<LifecycleState[]>((acc, g) => [...acc, transition(acc.at(-1)!, g)], [S.STARTING])
        expect(walk()).toEqual(walk())
      }),
      { numRuns: runs, seed: 52 },
    )
  })
})

describe('createLifecycle', () => {
  it('tracks state, since and reports each edge once', () => {
    let clock = 1_000
    const seen: LifecycleTransition[] = []
    const lc = createLifecycle({ now: () => clock, onTransition: (t) => seen.push(t) })
    expect(lc.state()).toBe(S.STARTING)
    expect(lc.since()).toBe(1_000)
    clock = 2_000
    expect(lc.signal(G.PEERS_REACHABLE)).toEqual({
      from: S.STARTING,
      to: S.CATCHING_UP,
      signal: G.PEERS_REACHABLE,
      at: 2_000,
    })
    clock = 3_000
    expect(lc.signal(G.VERIFIED)).toBeUndefined() // ignored: not verifying yet
    expect(lc.since()).toBe(2_000)
    lc.signal(G.CAUGHT_UP)
    clock = 4_000
    lc.signal(G.VERIFIED)
    expect(lc.state()).toBe(S.ACTIVE)
    expect(lc.since()).toBe(4_000)
    expect(seen.map((t) => `${t.from}>${t.to}`)).toEqual([
      'starting>catching-up',
      'catching-up>verifying',
      'verifying>active',
    ])
  })

  it('starts from a given state', () => {
    const lc = createLifecycle({ initial: S.ISOLATED, now: () => 5 })
    expect(lc.state()).toBe(S.ISOLATED)
    expect(lc.signal(G.CAUGHT_UP)).toBeUndefined()
    expect(lc.signal(G.PEERS_REACHABLE)?.to).toBe(S.CATCHING_UP)
  })
})
