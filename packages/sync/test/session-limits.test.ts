import { createPrivateKey, createPublicKey } from 'node:crypto'
import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import {
  PROTOCOL_VERSION,
  PeerProtocol,
  encodeFrame,
  generateKeys,
  setMaxPayload,
  silentLogger,
  startSync,
  type Frame,
  type SessionLimits,
  type SyncNode,
} from '../src/index.js'
import { unitLimits } from './helpers/limits.js'
import { MemberEnd } from './helpers/member-end.js'
import { SignedLog } from './helpers/signed-log.js'

// Caps before trust and rates after it: what a stranger or a flooding member meets.

const keys = { x: generateKeys(), m: generateKeys() }
const SECRET = 'limits-test-secret-0123456789'
const base: SessionLimits = unitLimits
const cleanups: Array<() => unknown> = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

/** x's protocol against a driver for member m, on a clock the test moves. */
function session(limits: Partial<SessionLimits> = {}) {
  const store = new SignedLog('x', keys.x.privateKey)
  cleanups.push(() => store.close())
  const clock = { ms: 1_800_000_000_000 }
  const out: Frame[] = []
  const m = new MemberEnd('m', 'm/1', SECRET, 'x')
  const p = new PeerProtocol(
    {
      log: store,
      druId: 'x',
      secret: SECRET,
      privateKey: createPrivateKey(keys.x.privateKey),
      publicKeys: new Map(Object.entries(keys).map(([id, k]) => [id, createPublicKey(k.publicKey)])),
      limits: { ...base, ...limits },
      logger: silentLogger,
      now: () => clock.ms,
    },
    {},
    { send: (b) => out.push(m.decode(b)), close: () => undefined, bufferedAmount: 0 },
    'acceptor',
  )
  p.start()
  const handshake = () => {
    p.receive(m.encode(m.hello()))
    p.receive(m.encode(m.auth(keys.m.privateKey)))
    expect(p.phase).toBe('open')
  }
  const send = (f: Frame) => p.receive(m.encode(f))
  return { p, out, clock, handshake, send }
}

describe('per-session limits', () => {
  it('a member flooding frames is closed with RATE_LIMITED; honest pacing refills the bucket', () => {
    const { p, clock, handshake, send } = session({ framesPerSecond: 100, frameBurst: 20 })
    handshake()
    for (let i = 0; i < 20; i++) send({ type: 'ping', n: i })
    expect(p.phase).toBe('open')
    clock.ms += 200 // 20 more tokens (never above the burst)
    for (let i = 0; i < 20; i++) send({ type: 'ping', n: i })
    expect(p.phase).toBe('open')
    send({ type: 'ping', n: 0 })
    expect(p.closeReason?.code).toBe('RATE_LIMITED')
  })

  it('costly frames (vv, expand, probe, bootstrap) have a tighter rate of their own', () => {
    const { p, handshake, send } = session({ costlyFramesPerSecond: 1, costlyFrameBurst: 3 })
    handshake()
    for (let i = 0; i < 3; i++) send({ type: 'probe', id: i, deep: true })
    expect(p.phase).toBe('open')
    send({ type: 'probe', id: 9, deep: true })
    expect(p.closeReason?.code).toBe('RATE_LIMITED')
  })

  it('an unfinished handshake is closed with HANDSHAKE_TIMEOUT', () => {
    const { p, clock } = session({ handshakeTimeoutMs: 2000 })
    p.receive(
      encodeFrame({
        type: 'hello',
        protocol: PROTOCOL_VERSION,
        druId: 'm',
        origin: 'm/1',
        key: new MemberEnd('m', 'm/1', SECRET).key.publicRaw,
      }),
    )
    clock.ms += 1999
    p.tick()
    expect(p.phase).toBe('auth')
    clock.ms += 2
    p.tick()
    expect(p.closeReason?.code).toBe('HANDSHAKE_TIMEOUT')
  })

  it('before authentication only small frames are decoded; after it, the session size applies', () => {
    const big = encodeFrame(new MemberEnd('m', 'm/1', SECRET).hello())
    const padded = new Uint8Array(5000)
    padded.set(big)
    const { p } = session()
    p.receive(padded)
    expect(p.closeReason?.code).toBe('FRAME_TOO_LARGE')
  })
})

function socket(port: number): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false })
  ws.on('error', () => undefined)
  cleanups.push(() => ws.terminate())
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws))
    ws.once('unexpected-response', (_req, res) =>
      reject(Object.assign(new Error('refused'), { status: res.statusCode })),
    )
    ws.once('error', reject)
  })
}

describe('the WebSocket listener before trust', () => {
  async function node(caps: Record<string, number> = {}): Promise<SyncNode> {
    const store = new SignedLog('x', keys.x.privateKey)
    const n = await startSync({
      log: store,
      druId: 'x',
      listen: { port: 0 },
      secret: SECRET,
      keys: { privateKey: keys.x.privateKey, publicKeys: { x: keys.x.publicKey, m: keys.m.publicKey } },
      listenerCaps: caps,
    })
    cleanups.push(
      () => store.close(),
      () => n.close(),
    )
    return n
  }

  it('refuses connections beyond the handshake cap with 503, and counts them', async () => {
    const n = await node({ maxHandshaking: 3 })
    for (let i = 0; i < 3; i++) await socket(n.port)
    await expect(socket(n.port)).rejects.toMatchObject({ status: 503 })
    expect(n.listenerStats()).toMatchObject({ connections: 3, handshaking: 3, refused: 1 })
  })

  it('refuses connections beyond the handshake rate', async () => {
    const n = await node({ handshakesPerSecond: 1, handshakeBurst: 2 })
    await socket(n.port)
    await socket(n.port)
    await expect(socket(n.port)).rejects.toMatchObject({ status: 503 })
  })

  it('drops a raw TCP client that sends nothing within the upgrade timeout', async () => {
    const n = await node({ upgradeTimeoutMs: 300 })
    const sock = net.connect(n.port, '127.0.0.1')
    cleanups.push(() => sock.destroy())
    const closed = await new Promise<boolean>((resolve) => {
      sock.once('close', () => resolve(true))
      setTimeout(() => resolve(false), 10_000).unref()
    })
    expect(closed).toBe(true)
  })

  it("a stranger's 30 MiB message is refused from its header and the connection dropped, unbuffered", async () => {
    const n = await node()
    const ws = await socket(n.port)
    const code = await new Promise<number>((resolve) => {
      ws.once('close', (c) => resolve(c))
      ws.send(new Uint8Array(30 << 20))
    })
    expect([1006, 1009]).toContain(code)
  })
})

describe('ws receiver contract', () => {
  it('setMaxPayload changes the limit a live socket enforces (the pre-authentication limit depends on it)', async () => {
    const server = new (await import('ws')).WebSocketServer({ port: 0, maxPayload: 1024 })
    cleanups.push(() => new Promise((r) => server.close(() => r(undefined))))
    const got: number[] = []
    server.on('connection', (s) => {
      s.on('error', () => undefined)
      s.on('message', (d: Buffer) => {
        got.push(d.length)
        setMaxPayload(s, 64 * 1024)
      })
    })
    await new Promise((r) => server.once('listening', r))
    const port = (server.address() as net.AddressInfo).port
    const ws = await socket(port)
    ws.send(new Uint8Array(512))
    await new Promise((r) => setTimeout(r, 100))
    ws.send(new Uint8Array(32 * 1024)) // above the construction limit, below the raised one
    await new Promise((r) => setTimeout(r, 100))
    expect(got).toEqual([512, 32 * 1024])
    const code = await new Promise<number>((resolve) => {
      ws.once('close', (c) => resolve(c))
      ws.send(new Uint8Array(128 * 1024))
    })
    expect(code).toBe(1009)
  })
})
