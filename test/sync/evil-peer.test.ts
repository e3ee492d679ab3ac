import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { GENESIS_HASH, pack, type DruEvent } from '@dru/core'
import { PROTOCOL_VERSION, generateKeys, signerFor, type Frame } from '@dru/sync'
import {
  authFor,
  connectAsMember,
  connectRaw,
  handshakeAs,
  helloAs,
  signedChain,
  type HelloFrame,
  type RawPeer,
} from '../hostile/raw-peer.js'
import { DruProcess, killAll, SECRET, sameFp, tempDir, waitFor } from './helpers.js'

/**
 * A raw "evil peer" against a real DRU process (x) that also syncs with an honest peer (y).
 * The evil peer is a configured member holding the cluster secret and its own key, so
 * it can get past the handshake and try to forge, alter, reorder and replay.
 */

const evilKeys = generateKeys()
const xKeys = generateKeys()
const yKeys = generateKeys()
const publicKeys = { x: xKeys.publicKey, y: yKeys.publicKey, evil: evilKeys.publicKey }
const signEvil = signerFor(evilKeys.privateKey)
const MAX_FRAME = 1 << 20

let x: DruProcess
let y: DruProcess
let cleanup: () => void

beforeAll(async () => {
  const t = tempDir()
  cleanup = t.cleanup
  x = await DruProcess.start({
    id: 'x',
    path: `${t.dir}/x.db`,
    keys: { privateKey: xKeys.privateKey, publicKeys },
    maxFrameBytes: MAX_FRAME,
    maxBatchBytes: 256 << 10,
  })
  y = await DruProcess.start({
    id: 'y',
    path: `${t.dir}/y.db`,
    keys: { privateKey: yKeys.privateKey, publicKeys },
    peers: [{ id: 'x', url: `ws://127.0.0.1:${x.port}` }],
  })
  await y.call('write', { n: 20, perCommit: 4 })
  await x.call('write', { n: 5 })
  await waitFor('x and y in sync', async () => sameFp(await x.fp(), await y.fp()))
})

afterAll(async () => {
  await killAll()
  cleanup()
})

type Conn = RawPeer

const connect = (): Promise<Conn> => connectRaw(x.port)
const nonce = () => new Uint8Array(32).map(() => Math.floor(Math.random() * 256))
const evilHello = (over: Partial<HelloFrame> = {}): Frame => helloAs('evil', over)

/** Our auth frame (with `key`), for the transcript of this hello exchange. */
function authFrame(
  mine: HelloFrame,
  theirs: HelloFrame,
  secret = SECRET,
  key = evilKeys.privateKey,
): Extract<Frame, { type: 'auth' }> {
  return authFor(mine, theirs, 'x', secret, key)
}

/** Completes the handshake as the member "evil"; returns the open connection and our proofs. */
const authenticated = () =>
  connectAsMember(x.port, { id: 'evil', verifier: 'x', secret: SECRET, privateKey: evilKeys.privateKey })

/** x's own summary, as a member would echo it back (with a lie inserted by the caller). */
async function xSummary(): Promise<{ vv: Record<string, number>; heads: Record<string, string> }> {
  return (await x.fp()).fp
}

function vvFrame(fp: { vv: Record<string, number>; heads: Record<string, string> }): Frame {
  // An empty retired summary: neither side has compacted here.
  return {
    type: 'vv',
    summary: {
      live: fp,
      retired: { count: 0, digest: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' },
    },
    bases: {},
    full: false,
  }
}

function evilChain(origin: string, from: number, n: number, prev = GENESIS_HASH, wall = Date.now()): DruEvent[] {
  return signedChain(origin, from, n, evilKeys.privateKey, { prev, wall })
}

/** Raw events frame (bypasses our encoder's assumptions where a case needs to). */
const eventsFrame = (batch: DruEvent[]): Frame => ({ type: 'events', batch })

async function expectRefusal(c: Conn, code: string): Promise<void> {
  if (code === 'WS_1009') {
    // Before authentication the socket refuses a large message from its header and drops the
    // connection: no error frame; the client sees 1009 if the close frame left first, else 1006.
    await c.closed
    expect([1006, 1009]).toContain(c.closeCode())
    return
  }
  const err = (await c.next('error')) as Extract<Frame, { type: 'error' }>
  expect(err.code).toBe(code)
  await c.closed
}

type Case = [name: string, code: string, run: () => Promise<Conn>, quarantines?: boolean]

const cases: Case[] = [
  [
    'garbage bytes before hello',
    'MALFORMED',
    async () => {
      const c = await connect()
      c.send(new Uint8Array([0xc1, 0xff, 0x00]))
      return c
    },
  ],
  [
    'a text frame',
    'MALFORMED',
    async () => {
      const c = await connect()
      c.send('hello')
      return c
    },
  ],
  [
    'a large message from a stranger (refused by the socket from its header)',
    'WS_1009',
    async () => {
      const c = await connect()
      c.send(new Uint8Array(MAX_FRAME + 100))
      return c
    },
  ],
  [
    'a pre-authentication frame above the small pre-auth limit',
    'FRAME_TOO_LARGE',
    async () => {
      const c = await connect()
      c.send(pack(['hello', 3, 'evil', 'evil/1', new Uint8Array(6000)]))
      return c
    },
  ],
  [
    'an oversized frame from a member',
    'FRAME_TOO_LARGE',
    async () => {
      const c = await authenticated()
      c.send(new Uint8Array(MAX_FRAME + 100))
      return c
    },
  ],
  [
    'an unknown frame type',
    'INVALID_FRAME',
    async () => {
      const c = await connect()
      c.send(pack(['gossip', 1]))
      return c
    },
  ],
  [
    'hello with an extra field',
    'INVALID_FRAME',
    async () => {
      const c = await connect()
      c.send(pack(['hello', PROTOCOL_VERSION, 'evil', 'evil/1', nonce(), 'extra']))
      return c
    },
  ],
  [
    'a hello of protocol 3 (before sealed frames)',
    'PROTOCOL_VERSION',
    async () => {
      const c = await connect()
      c.send(pack(['hello', 3, 'evil', 'evil/1', nonce()]))
      return c
    },
  ],
  [
    // Refused by the shape walk before msgpack runs (frame-shape.ts), not by the decoder's stack.
    '100k-deep nested msgpack (refused before decoding, deeper than MAX_FRAME_DEPTH)',
    'INVALID_FRAME',
    async () => {
      const c = await authenticated()
      const b = new Uint8Array(100_001).fill(0x91)
      b[100_000] = 1
      c.send(b)
      return c
    },
  ],
  [
    'a hello of protocol 5 (the release before the compact events frame)',
    'PROTOCOL_VERSION',
    async () => {
      const c = await connect()
      c.send(evilHello({ protocol: 5 }))
      return c
    },
  ],
  [
    'a hello of protocol 6 (a nonce beside the key; an ack repeating each vv)',
    'PROTOCOL_VERSION',
    async () => {
      const c = await connect()
      c.send(pack(['hello', 6, 'evil', 'evil/1', nonce(), nonce()]))
      return c
    },
  ],
  [
    'a wrong protocol version',
    'PROTOCOL_VERSION',
    async () => {
      const c = await connect()
      c.send(evilHello({ protocol: 99 }))
      return c
    },
  ],
  [
    'an unknown DRU id',
    'UNKNOWN_PEER',
    async () => {
      const c = await connect()
      c.send(evilHello({ druId: 'mallory', origin: 'mallory/1' }))
      return c
    },
  ],
  [
    "the target's own DRU id",
    'UNKNOWN_PEER',
    async () => {
      const c = await connect()
      c.send(evilHello({ druId: 'x', origin: 'x/1' }))
      return c
    },
  ],
  [
    'a hello whose origin belongs to another DRU',
    'INVALID_FRAME',
    async () => {
      const c = await connect()
      c.send(evilHello({ origin: 'y/1' }))
      return c
    },
  ],
  [
    'auth before hello',
    'PROTOCOL_VIOLATION',
    async () => {
      const c = await connect()
      c.send({ type: 'auth', hmac: new Uint8Array(32), sig: new Uint8Array(64) })
      return c
    },
  ],
  [
    'a wrong secret',
    'AUTH_FAILED',
    async () => {
      const c = await connect()
      const theirs = (await c.next('hello')) as HelloFrame
      const h = evilHello() as HelloFrame
      c.send(h)
      c.send(authFrame(h, theirs, 'not-the-cluster-secret!!'))
      return c
    },
  ],
  [
    "a member claiming another member's id (the secret, but not y's key)",
    'AUTH_FAILED',
    async () => {
      const c = await connect()
      const theirs = (await c.next('hello')) as HelloFrame
      const h = evilHello({ druId: 'y', origin: 'y/1' }) as HelloFrame
      c.send(h)
      c.send(authFrame(h, theirs))
      return c
    },
  ],
  [
    'a replayed auth from an earlier session',
    'AUTH_FAILED',
    async () => {
      const old = await authenticated()
      old.ws.close()
      await old.closed
      const c = await connect()
      c.send(evilHello())
      c.send(old.auth)
      return c
    },
  ],
  [
    'events before the handshake completes',
    'PROTOCOL_VIOLATION',
    async () => {
      const c = await connect()
      c.send(evilHello())
      c.send(eventsFrame(evilChain('evil/1', 1, 2)))
      return c
    },
  ],
  [
    'a replayed hello after auth',
    'PROTOCOL_VIOLATION',
    async () => {
      const c = await authenticated()
      c.send(evilHello())
      return c
    },
  ],
  [
    'an ack with a negative seq',
    'INVALID_FRAME',
    async () => {
      const c = await authenticated()
      c.send(pack(['ack', [['evil/1', -4]]]))
      return c
    },
  ],
  [
    "an ack of x's own origin far beyond its head",
    'PROTOCOL_VIOLATION',
    async () => {
      const c = await authenticated()
      c.send({ type: 'ack', vv: { [x.origin]: 1_000_000 } })
      return c
    },
  ],
  [
    'an ack naming an origin x does not hold',
    'PROTOCOL_VIOLATION',
    async () => {
      const c = await authenticated()
      c.send({ type: 'ack', vv: { 'y/424242': 3 } })
      return c
    },
  ],
  [
    'a vv naming an origin whose DRU is not a member',
    'PROTOCOL_VIOLATION',
    async () => {
      const c = await authenticated()
      c.send(vvFrame({ vv: { 'mallory/1': 5 }, heads: { 'mallory/1': 'a'.repeat(64) } }))
      return c
    },
  ],
  [
    "a vv claiming x's own current origin beyond its head",
    'PROTOCOL_VIOLATION',
    async () => {
      const c = await authenticated()
      c.send(vvFrame({ vv: { [x.origin]: 999 }, heads: { [x.origin]: 'a'.repeat(64) } }))
      return c
    },
  ],
  [
    'a report nobody asked for',
    'PROTOCOL_VIOLATION',
    async () => {
      const c = await authenticated()
      c.send({
        type: 'report',
        id: 5,
        summary: { live: await xSummary(), retired: { count: 0, digest: 'a'.repeat(64) } },
        stateDigest: null,
        documents: null,
      })
      return c
    },
  ],
  [
    'a pong for a ping never sent',
    'PROTOCOL_VIOLATION',
    async () => {
      const c = await authenticated()
      c.send({ type: 'pong', n: 4_000_000_000 })
      return c
    },
  ],
  [
    'events of an origin without a public key',
    'UNKNOWN_ORIGIN',
    async () => {
      const c = await authenticated()
      c.send(eventsFrame(evilChain('stranger/1', 1, 3)))
      return c
    },
  ],
  [
    'events out of order within a batch',
    'OUT_OF_ORDER',
    async () => {
      const c = await authenticated()
      const ch = evilChain('evil/1', 1, 3)
      c.send(eventsFrame([ch[0]!, ch[2]!]))
      return c
    },
  ],
  [
    "events in y's name signed with evil's key (forged origin)",
    'BAD_SIGNATURE',
    async () => {
      const c = await authenticated()
      const fp = (await x.fp()).fp
      const yOrigin = Object.keys(fp.vv).find((o) => o.startsWith('y/'))!
      c.send(eventsFrame(evilChain(yOrigin, fp.vv[yOrigin]! + 1, 2, fp.heads[yOrigin])))
      return c
    },
    true,
  ],
  [
    'a run whose last event is unsigned',
    'BAD_SIGNATURE',
    async () => {
      const c = await authenticated()
      const ch = evilChain('evil/1', 1, 2)
      c.send(eventsFrame([ch[0]!, { ...ch[1]!, sig: undefined }].map((e) => (e.sig === undefined ? stripSig(e) : e))))
      return c
    },
    true,
  ],
  [
    // Protocol 6 sends no hashes: the altered change changes every recomputed hash after it,
    // so the run's signature no longer checks (before, the stated hash did not match).
    'an altered change under a valid signature',
    'BAD_SIGNATURE',
    async () => {
      const c = await authenticated()
      const ch = evilChain('evil/1', 1, 2)
      c.send(eventsFrame([{ ...ch[0]!, change: new Uint8Array([9, 9, 9]) }, ch[1]!]))
      return c
    },
    true,
  ],
  [
    "a fingerprint that contradicts x's copy of y (fork)",
    'FORK',
    async () => {
      const c = await authenticated()
      const fp = (await x.fp()).fp
      const yOrigin = Object.keys(fp.vv).find((o) => o.startsWith('y/'))!
      c.send(vvFrame({ vv: { [yOrigin]: fp.vv[yOrigin]! }, heads: { [yOrigin]: 'f'.repeat(64) } }))
      return c
    },
    true,
  ],
  [
    'document snapshots nobody asked for',
    'PROTOCOL_VIOLATION',
    async () => {
      const c = await authenticated()
      c.send({ type: 'snapshot', docs: [{ docId: 'doc', bytes: new Uint8Array([0x85, 0x6f, 0x4a, 0x83]) }] })
      return c
    },
  ],
  [
    'folded envelopes nobody asked for',
    'PROTOCOL_VIOLATION',
    async () => {
      const c = await authenticated()
      const e = evilChain('evil/1', 1, 1)[0]!
      c.send({
        type: 'folded',
        envelopes: [{ origin: e.origin, seq: 1, hlc: e.hlc, docId: 'doc', changeHash: new Uint8Array(32), sig: e.sig }],
      })
      return c
    },
  ],
  [
    'a bootstrap end nobody asked for',
    'PROTOCOL_VIOLATION',
    async () => {
      const c = await authenticated()
      c.send({ type: 'bootstrap-end' })
      return c
    },
  ],
  [
    'a snapshot frame with an empty document id',
    'INVALID_FRAME',
    async () => {
      const c = await authenticated()
      c.send(pack(['snapshot', [['', new Uint8Array(4)]]]))
      return c
    },
  ],
  [
    'events from an hour in the future',
    'CLOCK_SKEW',
    async () => {
      const c = await authenticated()
      c.send(eventsFrame(evilChain('evil/1', 1, 2, GENESIS_HASH, Date.now() + 3_600_000)))
      return c
    },
  ],
  [
    'an error frame from a stranger naming member y',
    'DECOMMISSIONED',
    async () => {
      const c = await connect()
      c.send(evilHello({ druId: 'y', origin: 'y/1' }))
      c.send({ type: 'error', code: 'DECOMMISSIONED', message: 'y is out (forged)' })
      // x closes without answering: the frame came from an unauthenticated connection.
      await c.closed
      return Object.assign(c, { next: async () => ({ type: 'error', code: 'DECOMMISSIONED', message: '' }) as Frame })
    },
  ],
]

function stripSig(e: DruEvent): DruEvent {
  const { sig: _sig, ...rest } = e
  return rest
}

describe('bad input from a raw evil peer', () => {
  it(`${cases.length} bad inputs: each a typed error frame and a close, the store unchanged, x still syncing with y`, async () => {
    expect(cases.length).toBeGreaterThanOrEqual(35)
    const before = await x.fp()
    const effectsBefore = await x.call('effects')
    for (const [name, code, run, quarantines] of cases) {
      const c = await run()
      try {
        await expectRefusal(c, code)
      } catch (err) {
        throw new Error(`case "${name}": ${(err as Error).message}`)
      }
      const st =
        await x.call<Array<{ id: string; quarantined: boolean; quarantine: { code: string } | null }>>('status')
      const evil = st.find((p) => p.id === 'evil')
      if (quarantines) {
        expect(evil?.quarantine?.code, name).toBe(code)
        // While quarantined, evil is refused even with the right secret and key (after it proved them,
        // so the refusal it gets is authentic).
        const again = await connect()
        await handshakeAs(again, { id: 'evil', verifier: 'x', secret: SECRET, privateKey: evilKeys.privateKey })
        await expectRefusal(again, 'QUARANTINED')
        await x.call('unquarantine', { peer: 'evil' })
      } else {
        expect(evil?.quarantined ?? false, name).toBe(false)
      }
      // Nothing a stranger or a lying member sends touches another member's standing.
      expect(st.find((p) => p.id === 'y')?.quarantined, name).toBe(false)
      expect(sameFp(await x.fp(), before), `store changed after "${name}"`).toBe(true)
    }
    expect(await x.call('effects')).toEqual(effectsBefore)
    // x is still serving its honest peer.
    await y.call('write', { n: 7 })
    await waitFor("y's new events reach x", async () => (await x.fp()).count === before.count + 7)
    await waitFor('x and y in sync', async () => sameFp(await x.fp(), await y.fp()))
  })

  it('a batch that starts past our head (SEQ_GAP) is not fatal: x re-requests from its vector and stays connected', async () => {
    const c = await authenticated()
    const ch = evilChain('evil/1', 1, 6)
    const framesBefore = c.frames.filter((f) => f.type === 'vv').length
    c.send(eventsFrame(ch.slice(3)))
    await waitFor('a re-request vv', () => c.frames.filter((f) => f.type === 'vv').length > framesBefore, 5000, 10)
    const resent = c.frames.filter((f) => f.type === 'vv').at(-1) as Extract<Frame, { type: 'vv' }>
    expect(resent.summary.live.vv['evil/1'] ?? 0).toBe(0)
    // Resend from the vector: the gap closes and x acks durably.
    const first = [...ch.slice(0, 2), { ...ch[2]!, sig: signEvil(ch[2]!.hash) }]
    c.send(eventsFrame(first))
    c.send(eventsFrame(ch.slice(3)))
    await waitFor(
      'an ack covering evil/1#6',
      () => c.frames.some((f) => f.type === 'ack' && (f.vv['evil/1'] ?? 0) >= 6),
      5000,
      10,
    )
    expect(c.ws.readyState).toBe(WebSocket.OPEN)
    expect((await x.fp()).fp.vv['evil/1']).toBe(6)
    c.ws.close()
  })

  it('semi-sync counts only ack frames: a fingerprint claiming an event is not an acknowledgement', async () => {
    const e = await x.call<{ origin: string; seq: number }>('write', { n: 1 })
    await x.call('waitForAcks', { event: e, k: 1, timeoutMs: 5000 }) // y, by a real ack
    const c = await authenticated()
    const fp = (await x.fp()).fp
    c.send(vvFrame(fp)) // claims to hold everything, e included
    await expect(x.call('waitForAcks', { event: e, k: 2, timeoutMs: 500 })).rejects.toMatchObject({
      code: 'ACK_TIMEOUT',
    })
    const pending = x.call('waitForAcks', { event: e, k: 2, timeoutMs: 5000 })
    c.send({ type: 'ack', vv: fp.vv })
    await pending
    c.ws.close()
  })
})
