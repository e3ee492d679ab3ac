import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { pack } from '@dru/core'
import { Cluster, sleep } from '../procedures/cluster.js'
import { Ledger, assertNoFork, metric, rssOf } from './harness.js'
import { authFor, connectRaw, helloAs } from './raw-peer.js'

// Role: a stranger. It can reach a DRU's sync port but holds no cluster secret and no
// member key. Real DRU processes a and b sync through proxies; the stranger talks to a's
// sync port directly. Whatever it sends, a and b keep replicating, nothing they hold
// changes, and the stranger is dropped with a typed reason.

const IDS = ['a', 'b']
const MiB = 2 ** 20
let c: Cluster
let ledger: Ledger

beforeAll(async () => {
  c = await Cluster.create(IDS)
  await Promise.all(IDS.map((id) => c.start(id)))
  await c.waitConverged(IDS)
  ledger = new Ledger(c)
})

afterAll(async () => {
  await c?.dispose()
})

const port = () => c.unit('a').listenPort

describe('hostile role: stranger (no secret, no key)', () => {
  it('cannot quarantine or decommission a member by sending an error frame in its name', async () => {
    await ledger.around(IDS, 'forged-decommission', async () => {
      const s = await connectRaw(port())
      s.send(helloAs('b'))
      s.send({ type: 'error', code: 'DECOMMISSIONED', message: 'b is out (forged)' })
      await s.closed
      const st = await c.status('a')
      const b = st.peers.find((p) => p.id === 'b')!
      expect(b.membership ?? 'member').toBe('member')
      expect((b as { quarantined?: boolean }).quarantined ?? false).toBe(false)
      // The forged frame left nothing behind: b, restarted, is admitted at once.
      await c.kill('b', 'SIGTERM')
      await c.start('b')
      await c.waitConverged(IDS)
    })
  })

  it('gets a typed refusal for garbage, text, HTTP and oversized messages before the handshake; the DRU keeps serving', async () => {
    const violationsBefore = await metric(c, 'a', 'dru_protocol_violations_total')
    await ledger.around(IDS, 'pre-auth-garbage', async () => {
      const refusals: string[] = []
      for (const send of [
        new Uint8Array([0xc1, 0xff, 0x00]),
        'hello',
        pack(['gossip', 1]),
        pack(['hello', 3, 'b', 'b/1', new Uint8Array(6000)]),
      ]) {
        const s = await connectRaw(port())
        s.send(send)
        const err = await s.next('error').catch(() => undefined)
        await s.closed
        refusals.push(err?.code ?? s.closeReason())
      }
      expect(refusals).toEqual(['MALFORMED', 'MALFORMED', 'INVALID_FRAME', 'FRAME_TOO_LARGE'])
      // 30 MiB in one message: refused from its header, the connection dropped.
      const big = await connectRaw(port())
      big.send(new Uint8Array(30 * MiB))
      await big.closed
      expect([1006, 1009]).toContain(big.closeCode())
      // Plain HTTP and raw bytes on the sync port: an answer or a close, never a hang.
      const http = await fetch(`http://127.0.0.1:${port()}/status`).then((r) => r.status)
      expect(http).toBeGreaterThanOrEqual(400)
      await new Promise<void>((resolve) => {
        const sock = net.connect(port(), '127.0.0.1', () => sock.write('\x00\x01GARBAGE\r\n\r\n'))
        sock.on('error', () => resolve())
        sock.on('close', () => resolve())
      })
    })
    expect(await metric(c, 'a', 'dru_protocol_violations_total')).toBe(violationsBefore) // strangers are refused, not counted as peers
  })

  it('without the secret, cannot authenticate as a member, whatever it claims', async () => {
    await ledger.around(IDS, 'wrong-secret', async () => {
      const s = await connectRaw(port())
      const theirs = await s.next('hello')
      const hello = helloAs('b')
      s.send(hello)
      // A fresh key of its own and a guessed secret: both wrong.
      const { generateKeys } = await import('@dru/sync')
      s.send(authFor(hello, theirs, 'a', 'not-the-cluster-secret!!', generateKeys().privateKey))
      expect((await s.next('error')).code).toBe('AUTH_FAILED')
      await s.closed
      const st = await c.status('a')
      expect(st.peers.find((p) => p.id === 'b')!.connected).toBe(true)
    })
  })

  it("relaying two members' handshakes gets it nowhere: the relayed session is sealed, so its injected ack and error frames are refused and change nothing", async () => {
    // a is cut off, so b's only session "with a" is the one the stranger relays.
    c.cut('a')
    await c.waitFor(
      'b sees a down',
      async () => (await c.status('b')).peers.find((p) => p.id === 'a')?.connected === false,
    )
    const relay = async () => {
      const toA = await connectRaw(c.unit('a').listenPort)
      const toB = await connectRaw(c.unit('b').listenPort)
      const [helloA, helloB] = await Promise.all([toA.next('hello'), toB.next('hello')])
      toB.send(helloA) // to b we are a, to a we are b: origins, nonces and keys untouched
      toA.send(helloB)
      const [authA, authB] = await Promise.all([toA.next('auth'), toB.next('auth')])
      toB.send(authA)
      toA.send(authB)
      // b opened a session it believes is with a (the relay passes the proofs on), sealed for a.
      await c.waitFor(
        'b sees "a" connected through the relay',
        async () => (await c.status('b')).peers.find((p) => p.id === 'a')?.connected === true,
      )
      await c.waitFor("b's sealed frames reach the relay", () => toB.opaque.length > 0)
      return { toA, toB }
    }
    const acked = c.write('b', 'relay-semi-sync', { k: 1 }, '?acks=1&timeoutMs=2000')
    const first = await relay()
    const bOrigin = (await c.status('b')).origin
    first.toB.send({ type: 'ack', vv: { [bOrigin]: 1_000 } }) // without the seal
    await first.toB.closed
    expect(first.toB.closeReason()).toBe('AUTH_FAILED')
    first.toA.ws.close()
    const w = await acked
    expect(`${w.status} ${String(w.body.code)}`).toBe('504 ACK_TIMEOUT') // nobody acknowledged in a's name

    const second = await relay()
    second.toB.send({ type: 'error', code: 'DECOMMISSIONED', message: 'a is out (relayed)' })
    await second.toB.closed
    second.toA.ws.close()
    const a = (await c.status('b')).peers.find((p) => p.id === 'a') as { membership?: string; quarantined?: boolean }
    expect(a.membership ?? 'member').toBe('member')
    expect(a.quarantined ?? false).toBe(false)
    expect(await metric(c, 'b', 'dru_identity_conflicts_total')).toBe(0)
    c.heal('a')
    await c.waitConverged(IDS)
    await ledger.around(IDS, 'after-relay', async () => undefined)
  })

  it("8 concurrent 30 MiB messages and 1,000 idle sockets raise the DRU's RSS by at most 32 MiB, while b's writes keep reaching it", async () => {
    const pid = c.unit('a').child!.pid!
    await sleep(500)
    const baseline = Math.max(...(await samples(pid, 10, 20)))
    let peak = baseline
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 20)
    const honest: Array<Promise<unknown>> = []
    let writing = true
    const writer = (async () => {
      while (writing) {
        honest.push(ledger.write('b', 'during-attack'))
        await sleep(100)
      }
    })()
    try {
      const floods = Array.from(
        { length: 8 },
        () =>
          new Promise<void>((resolve) => {
            const w = new WebSocket(`ws://127.0.0.1:${port()}`, { perMessageDeflate: false })
            w.on('error', () => resolve())
            w.once('unexpected-response', () => resolve())
            w.once('open', () => w.send(Buffer.alloc(30 * MiB, 7)))
            w.once('close', () => resolve())
          }),
      )
      const idle: Array<net.Socket | WebSocket> = []
      const opened = Array.from(
        { length: 1000 },
        (_, i) =>
          new Promise<void>((resolve) => {
            if (i % 2 === 0) {
              const s = net.connect(port(), '127.0.0.1')
              s.on('error', () => resolve())
              s.once('connect', () => resolve())
              s.once('close', () => resolve())
              idle.push(s)
            } else {
              const w = new WebSocket(`ws://127.0.0.1:${port()}`, { perMessageDeflate: false })
              w.on('error', () => resolve())
              w.once('open', () => resolve())
              w.once('unexpected-response', () => resolve())
              idle.push(w)
            }
          }),
      )
      await Promise.all([...floods, ...opened])
      await sleep(1_000)
      for (const s of idle) s instanceof WebSocket ? s.terminate() : s.destroy()
    } finally {
      writing = false
      await writer
      clearInterval(sampler)
    }
    await Promise.all(honest)
    await ledger.everywhere(IDS)
    const grew = peak - baseline
    if (process.env.DRU_HOSTILE_VERBOSE) console.log(`RSS +${(grew / MiB).toFixed(1)} MiB, ${ledger.count} tokens`)
    expect(grew, `RSS ${(baseline / MiB).toFixed(1)} -> peak ${(peak / MiB).toFixed(1)} MiB`).toBeLessThanOrEqual(
      32 * MiB,
    )
    expect(await metric(c, 'a', 'dru_sync_connections_refused')).toBeGreaterThan(0)
  }, 60_000)

  it('leaves no fork and one set of events in every database file', async () => {
    await ledger.everywhere(IDS)
    await assertNoFork(
      c,
      IDS.map((id) => c.unit(id).dbPath),
    )
  })
})

async function samples(pid: number, n: number, everyMs: number): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    out.push(rssOf(pid))
    await sleep(everyMs)
  }
  return out
}
