import { createPrivateKey, createPublicKey } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import {
  PeerProtocol,
  REFRESH_MAX_INTERVAL_MS,
  REFRESH_MIN_INTERVAL_MS,
  REFRESH_PROBE,
  generateKeys,
  silentLogger,
  type Frame,
  type SessionLimits,
} from '../src/index.js'
import { MemberEnd } from './helpers/member-end.js'
import { SignedLog } from './helpers/signed-log.js'

// A session that holds events its peer was never told of asks for the peer's summary with a
// refresh probe. Probes are costly frames the peer rate-limits (a few per second), so they come
// at most once a second, and while the answer changes nothing, twice as rarely each time; once
// the peer is known to hold everything, they stop.

const SECRET = 'refresh-probe-secret-0123456789'
const keys = { x: generateKeys(), m: generateKeys() }
const limits: SessionLimits = {
  maxFrameBytes: 1 << 20,
  maxBatchBytes: 64 << 10,
  maxUnackedBytes: 1 << 20,
  heartbeatMs: 100,
  heartbeatTimeoutMs: 5000,
  preAuthMaxFrameBytes: 4096,
  handshakeTimeoutMs: 5000,
  framesPerSecond: 1e9,
  frameBurst: 1e9,
  costlyFramesPerSecond: 5,
  costlyFrameBurst: 20,
}
const cleanups: Array<() => void> = []
afterEach(() => {
  while (cleanups.length) cleanups.pop()!()
})

describe('refresh probes', () => {
  it('come at most once a second, back off while nothing changes, and stop once the peer holds everything', () => {
    // x holds 4 events of its own but folded the first 3: a peer holding none cannot be
    // streamed them (it would have to ask for a bootstrap), so x stays "untold" about them.
    const x = new SignedLog('x', keys.x.privateKey)
    cleanups.push(() => x.close())
    for (let i = 0; i < 4; i++) x.commit(`doc-${i}`, new Uint8Array([i]))
    x.fold({ [x.origin]: 3 })
    let now = 1_700_000_000_000
    const end = new MemberEnd('m', 'm/1', SECRET)
    const out: Array<{ at: number; frame: Frame }> = []
    const protocol = new PeerProtocol(
      {
        log: x,
        druId: 'x',
        secret: SECRET,
        privateKey: createPrivateKey(keys.x.privateKey),
        publicKeys: new Map(Object.entries(keys).map(([id, k]) => [id, createPublicKey(k.publicKey)])),
        limits,
        logger: silentLogger,
        now: () => now,
      },
      {},
      { send: (b) => out.push({ at: now, frame: end.decode(b) }), close: () => undefined, bufferedAmount: 0 },
      'acceptor',
    )
    protocol.start()
    const send = (f: Frame) => protocol.receive(end.encode(f))
    send(end.hello())
    send(end.auth(keys.m.privateKey))
    const retired = x.summary().retired
    send({ type: 'vv', summary: { live: { vv: {}, heads: {} }, retired }, bases: {}, full: false })
    expect(protocol.isOpen).toBe(true)

    /** Runs the clock for `ms`, answering pings and refresh probes with `holds`' summary. */
    let holds: { vv: Record<string, number>; heads: Record<string, string> } = { vv: {}, heads: {} }
    const run = (ms: number) => {
      for (const stop = now + ms; now < stop;) {
        now += 50
        const seen = out.length
        protocol.tick()
        for (const { frame } of out.slice(seen)) {
          if (frame.type === 'ping') send({ type: 'pong', n: frame.n })
          if (frame.type === 'probe' && frame.id === REFRESH_PROBE)
            send({
              type: 'report',
              id: REFRESH_PROBE,
              summary: { live: holds, retired },
              stateDigest: null,
              documents: null,
            })
        }
      }
    }
    const probeTimes = () =>
      out.filter(({ frame }) => frame.type === 'probe' && frame.id === REFRESH_PROBE).map(({ at }) => at)

    run(90_000)
    const times = probeTimes()
    const gaps = times.slice(1).map((t, i) => t - times[i]!)
    expect(times.length).toBeGreaterThanOrEqual(4)
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(REFRESH_MIN_INTERVAL_MS)
    for (const g of gaps) expect(g).toBeLessThanOrEqual(REFRESH_MAX_INTERVAL_MS + 100)
    // Backing off: each gap at least the one before, up to the cap.
    for (let i = 1; i < gaps.length; i++) expect(gaps[i]!).toBeGreaterThanOrEqual(gaps[i - 1]!)
    // Within any one second, never more than one: far below the peer's costly-frame limit.
    expect(times.length).toBeLessThanOrEqual(Math.ceil(90_000 / REFRESH_MIN_INTERVAL_MS))
    expect(protocol.isOpen).toBe(true)

    // The peer now holds everything (it was bootstrapped elsewhere): one more answer, then silence.
    const live = x.summary().live
    holds = { vv: { ...live.vv }, heads: { ...live.heads } }
    run(REFRESH_MAX_INTERVAL_MS + 1_000)
    const after = probeTimes().length
    run(120_000)
    expect(probeTimes().length).toBe(after)
    expect(protocol.refreshDue).toBe(false)
  })
})
