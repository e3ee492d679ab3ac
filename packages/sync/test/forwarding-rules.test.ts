import { describe, expect, it } from 'vitest'
import { FORWARD_GRACE_HEARTBEATS, RouteBook, type RoutedSession } from '../src/index.js'
import { Forwarding } from '../src/protocol/forwarding.js'

// When c forwards b's origin to a, one rule at a time, on a clock we move by hand. Seen cross
// process after a heal (bench:topologies, mesh of 3): sessions opened more than a heartbeat
// apart on a loaded machine and c forwarded whole origins that a got from b directly.

const HEARTBEAT = 100
const members = new Map(['a', 'b', 'c', 'd', 'e'].map((id) => [id, {}]))

function setup(bNeighbours: string[]) {
  let now = 0
  const book = new RouteBook()
  const b: RoutedSession = { peerId: 'b', peerOrigin: 'b/1', peerNeighbours: new Set(bNeighbours), routesChanged() {} }
  book.opened(b)
  const toA = new Forwarding({
    druId: 'c',
    peerId: () => 'a',
    publicKeys: members,
    routes: book,
    heartbeatMs: HEARTBEAT,
    now: () => now,
  })
  toA.started()
  return { toA, book, at: (ms: number) => (now = ms) }
}

const ours = { 'b/1': 10, 'c/1': 5 }

describe('forwarding rules: what c holds back from a', () => {
  it('waits for a peer without routes until the grace, not one heartbeat (its other session may open late)', () => {
    const { toA, at } = setup([])
    at(HEARTBEAT * 1.5)
    expect([...toA.heldBack(ours, {})]).toEqual(['b/1'])
    // Past the grace a peer with no other session gets it (a line's end is not starved).
    at(HEARTBEAT * FORWARD_GRACE_HEARTBEATS + 1)
    expect([...toA.heldBack(ours, {})]).toEqual([])
  })

  it('holds an origin its live writer brings us for the grace, though the peer says it has no other path (the writer’s session with it may open a backoff later)', () => {
    const { toA, at } = setup([])
    toA.onRoutes({}, [], 'c/1')
    at(HEARTBEAT * 1.5)
    expect([...toA.heldBack(ours, {})]).toEqual(['b/1'])
    // A line's far end still gets it, a grace after its first vv.
    at(HEARTBEAT * FORWARD_GRACE_HEARTBEATS + 1)
    expect([...toA.heldBack(ours, {})]).toEqual([])
  })

  it('forwards after one heartbeat an origin whose writer does not bring it to us (a dead origin), to a peer with no other path', () => {
    const { toA, at, book } = setup([])
    const d: RoutedSession = { peerId: 'd', peerOrigin: 'd/1', peerNeighbours: new Set(), routesChanged() {} }
    book.opened(d)
    book.delivered(d, ['e/1'])
    toA.onRoutes({}, [], 'c/1')
    at(HEARTBEAT * 1.5)
    expect([...toA.heldBack({ 'e/1': 4 }, {})]).toEqual([])
  })

  it('holds an origin whose supplier says it has a session with the peer (split horizon from the supplier’s side)', () => {
    const { toA, at } = setup(['a'])
    toA.onRoutes({}, [], 'c/1')
    at(HEARTBEAT * 1.5)
    expect([...toA.heldBack(ours, {})]).toEqual(['b/1'])
    // Within the grace only: a supplier that claims a link it does not serve costs a delay.
    at(HEARTBEAT * 1.5 + HEARTBEAT * FORWARD_GRACE_HEARTBEATS + 1)
    expect([...toA.heldBack(ours, {})]).toEqual([])
  })

  it('never caps or holds our own origin or the peer’s; caps every third party’s', () => {
    const { toA } = setup(['a'])
    expect(toA.capped('c/1')).toBe(false)
    expect(toA.capped('a/7')).toBe(false)
    expect(toA.capped('b/1')).toBe(true)
  })
})
