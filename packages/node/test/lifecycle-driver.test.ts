import { describe, expect, it } from 'vitest'
import type { LifecycleTransition } from '@dru/core'
import { LifecycleDriver, assessPeers } from '../src/lifecycle-driver.js'

function driver(peerCount: number, opts: { grace?: number; slack?: number } = {}) {
  let now = 1_000
  const edges: LifecycleTransition[] = []
  const d = new LifecycleDriver({
    peerCount,
    startupGraceMs: opts.grace ?? 500,
    slackEvents: opts.slack ?? 0,
    now: () => now,
    onTransition: (t) => edges.push(t),
  })
  return { d, edges, advance: (ms: number) => (now += ms), path: () => edges.map((e) => e.to) }
}

const up = { id: 'b', connected: true }
const down = { id: 'b', connected: false, theirVv: {}, ackedVv: {} }

describe('assessPeers', () => {
  it('counts what reachable peers hold that we lack and what they have not acknowledged', () => {
    const a = assessPeers({ 'a/1': 5, 'b/1': 2 }, [
      { ...up, theirVv: { 'b/1': 4 }, ackedVv: { 'a/1': 3 } },
      { ...down, id: 'c', theirVv: { 'c/1': 9 } },
    ])
    expect(a).toEqual({ reachable: 1, weLack: 2, theyLack: 4 })
  })

  it('does not count retired origins (folded into snapshots, never acknowledged again) as lacking at the peer', () => {
    const ours = { 'a/1': 5, 'old/1': 40 }
    const peer = { ...up, theirVv: {}, ackedVv: { 'a/1': 5 } }
    expect(assessPeers(ours, [peer]).theyLack).toBe(40)
    expect(assessPeers(ours, [peer], { 'a/1': 5 })).toEqual({ reachable: 1, weLack: 0, theyLack: 0 })
  })
})

describe('LifecycleDriver', () => {
  it('a standalone DRU is active at once', () => {
    const { d } = driver(0)
    expect(d.lifecycle.state()).toBe('active')
  })

  it('waits the startup grace before declaring itself isolated, even in restore mode', () => {
    const { d, advance, path } = driver(1)
    d.restorePending()
    d.observe(assessPeers({}, [down]))
    expect(d.lifecycle.state()).toBe('catching-up')
    advance(499)
    d.observe(assessPeers({}, [down]))
    expect(d.lifecycle.state()).toBe('catching-up')
    advance(1)
    d.observe(assessPeers({}, [down]))
    expect(path()).toEqual(['catching-up', 'isolated'])
    expect(d.restoring).toBe(true)
  })

  it('goes through catching-up and verifying to active, and only verification ends a restore', () => {
    const { d, path } = driver(1)
    d.restorePending()
    d.observe(assessPeers({ 'a/1': 2 }, [{ ...up, theirVv: { 'b/1': 3 }, ackedVv: {} }]))
    expect(d.lifecycle.state()).toBe('catching-up') // we lack b's 3 events, b lacks our 2
    d.observe(assessPeers({ 'a/1': 2, 'b/1': 3 }, [{ ...up, theirVv: { 'b/1': 3 }, ackedVv: { 'a/1': 2, 'b/1': 3 } }]))
    expect(d.lifecycle.state()).toBe('verifying')
    expect(d.restoring).toBe(true)
    d.verified(false)
    expect(d.lifecycle.state()).toBe('catching-up')
    d.observe(assessPeers({ 'a/1': 2, 'b/1': 3 }, [{ ...up, theirVv: { 'b/1': 3 }, ackedVv: { 'a/1': 2, 'b/1': 3 } }]))
    d.verified(true)
    expect(path()).toEqual(['catching-up', 'verifying', 'catching-up', 'verifying', 'active'])
    expect(d.restoring).toBe(false)
  })

  it('an active DRU that loses every peer becomes isolated, and comes back through catch-up', () => {
    const { d, advance, path } = driver(1)
    d.observe(assessPeers({}, [{ ...up, theirVv: {}, ackedVv: {} }]))
    d.verified(true)
    advance(10_000)
    d.observe(assessPeers({}, [down]))
    expect(d.lifecycle.state()).toBe('isolated')
    d.observe(assessPeers({}, [{ ...up, theirVv: {}, ackedVv: {} }]))
    expect(path()).toEqual(['catching-up', 'verifying', 'active', 'isolated', 'catching-up', 'verifying'])
  })

  it('tolerates live unacknowledged events up to the slack, never a missing one', () => {
    const { d } = driver(1, { slack: 3 })
    d.observe(assessPeers({ 'a/1': 3 }, [{ ...up, theirVv: {}, ackedVv: {} }]))
    expect(d.lifecycle.state()).toBe('verifying')
    const lagging = driver(1, { slack: 3 })
    lagging.d.observe(assessPeers({}, [{ ...up, theirVv: { 'b/1': 1 }, ackedVv: {} }]))
    expect(lagging.d.lifecycle.state()).toBe('catching-up')
  })
})
