import { createPrivateKey, createPublicKey } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { countMissing, type VersionVector } from '@dru/core'
import { PeerProtocol, RouteBook, generateKeys, silentLogger, type ProtocolConfig } from '../src/index.js'
import { unitLimits } from './helpers/limits.js'
import { SignedLog } from './helpers/signed-log.js'

// A peer that compacts every origin while a session is open holds them only folded: its
// summary (in a vv, or in the report to a refresh probe) gives them as a retired digest, not a
// vector. If both sides got a third DRU's events by other paths, neither has told the other it
// holds them; the refresh probe exists for that, and must see through the digest, or the side
// that keeps those events live never learns the compacted peer holds them (it stays
// catching-up for ever). Found by the protocol convergence property (route liar, seed 19).

const SECRET = 'retired-acks-secret-0123456789'
const keys = { x: generateKeys(), m: generateKeys(), t: generateKeys() }
const publicKeys = new Map(Object.entries(keys).map(([id, k]) => [id, createPublicKey(k.publicKey)]))
const cleanups: Array<() => void> = []
afterEach(() => {
  while (cleanups.length) cleanups.pop()!()
})

function newLog(id: keyof typeof keys): SignedLog {
  const log = new SignedLog(id, keys[id].privateKey)
  cleanups.push(() => log.close())
  return log
}

/**
 * Two real sessions joined by in-memory queues, on a clock the test moves; `acked` merges each
 * side's acked hook. Both DRUs also have a session with `third` (not simulated: the test
 * ingests what it brings), and say so in their routes, so neither forwards its events.
 */
function connect(x: SignedLog, m: SignedLog, third: string) {
  const clock = { ms: 1_800_000_000_000 }
  const queues: [Uint8Array[], Uint8Array[]] = [[], []]
  const acked: [Record<string, number>, Record<string, number>] = [{}, {}]
  const make = (log: SignedLog, id: 'x' | 'm', side: 0 | 1): PeerProtocol => {
    const routes = new RouteBook()
    routes.opened({
      peerId: 't',
      peerOrigin: third,
      peerNeighbours: new Set(['x', 'm']),
      routesChanged: () => undefined,
    })
    const config: ProtocolConfig = {
      routes,
      log,
      druId: id,
      secret: SECRET,
      privateKey: createPrivateKey(keys[id].privateKey),
      publicKeys,
      limits: { ...unitLimits, heartbeatMs: 100, refreshIntervalMs: 100 },
      logger: silentLogger,
      now: () => clock.ms,
    }
    const record = (vv: VersionVector) => {
      for (const [o, s] of Object.entries(vv)) acked[side][o] = Math.max(acked[side][o] ?? 0, s)
    }
    return new PeerProtocol(
      config,
      { acked: (_s, vv) => record(vv), holds: (_s, vv) => record(vv) },
      { send: (b) => queues[side].push(b), close: () => undefined, bufferedAmount: 0 },
      side === 0 ? 'dialer' : 'acceptor',
      side === 0 ? 'm' : undefined,
    )
  }
  const ends = [make(x, 'x', 0), make(m, 'm', 1)] as const
  const deliver = () => {
    for (let pass = 0; pass < 50 && (queues[0].length > 0 || queues[1].length > 0); pass++) {
      for (const b of queues[0].splice(0)) ends[1].receive(b)
      for (const b of queues[1].splice(0)) ends[0].receive(b)
    }
  }
  /** `n` heartbeats: each side ticks and pumps, and every frame is delivered. */
  const run = (n: number) => {
    for (let i = 0; i < n; i++) {
      clock.ms += 100
      for (const end of ends) {
        end.tick()
        end.pump()
      }
      deliver()
    }
  }
  ends[0].start()
  ends[1].start()
  deliver()
  return { ends, acked, run }
}

describe('acknowledgements of origins a peer holds only folded', () => {
  it('a peer that compacted every origin during the session still acknowledges the third-party events both sides got elsewhere', () => {
    const x = newLog('x')
    const m = newLog('m')
    const t = newLog('t')
    x.commit('doc', new Uint8Array([1]))
    m.commit('doc', new Uint8Array([2]))
    const { ends, acked, run } = connect(x, m, t.origin)
    expect(ends.every((e) => e.isOpen)).toBe(true)
    run(5)
    expect(countMissing(x.vv(), acked[0])).toBe(0)

    // A third DRU's event reaches both by their sessions with it (neither forwards it: its
    // writer sends it to both); each acks what grew (the node's commit listener does), but
    // neither knows the other holds it, so no ack names it.
    const third = t.commit('doc', new Uint8Array([3]))
    for (const [log, end] of [
      [x, ends[0]],
      [m, ends[1]],
    ] as const) {
      log.ingest([third])
      end.ackNow()
    }
    // m folds everything: each origin's head is its base, so its summary lists none live.
    m.fold(m.vv())
    expect(m.summary().live.vv).toEqual({})
    expect(m.summary().retired.count).toBe(3)

    run(100)
    // x keeps t's event live: m must have acknowledged it, and nobody still needs to ask.
    expect(countMissing(x.summary().live.vv, acked[0])).toBe(0)
    expect(ends[0].refreshDue).toBe(false)
    expect(ends[1].refreshDue).toBe(false)
    expect(ends.every((e) => e.isOpen)).toBe(true)
  })
  it('two DRUs that had both folded an origin acknowledge its next events, which each got from its writer', () => {
    const x = newLog('x')
    const m = newLog('m')
    const t = newLog('t')
    const first = t.commit('doc', new Uint8Array([1]))
    for (const log of [x, m]) {
      log.ingest([first])
      log.fold(log.vv())
    }
    // Each names the other's retired origin (t#1) from its own log: held, never acknowledged.
    const { ends, acked, run } = connect(x, m, t.origin)
    run(5)
    expect(ends.every((e) => e.isOpen)).toBe(true)
    expect(x.summary().live.vv).toEqual({})

    // t writes again and both get it from t: t is live on both, past where they had folded it.
    const second = t.commit('doc', new Uint8Array([2]))
    for (const [log, end] of [
      [x, ends[0]],
      [m, ends[1]],
    ] as const) {
      log.ingest([second])
      end.ackNow()
    }
    expect(x.summary().live.vv).toEqual({ [t.origin]: 2 })

    run(100)
    expect(countMissing(x.summary().live.vv, acked[0])).toBe(0)
    expect(countMissing(m.summary().live.vv, acked[1])).toBe(0)
    expect(ends.some((e) => e.refreshDue)).toBe(false)
  })
})
