import { createPrivateKey } from 'node:crypto'
import WebSocket from 'ws'
import { GENESIS_HASH, encodeHlc, sealEvent, type DruEvent, type Origin } from '@dru/core'
import {
  FrameSeal,
  PROTOCOL_VERSION,
  authProof,
  decodeFrame,
  encodeFrame,
  identityProof,
  newEphemeralKey,
  signerFor,
  type EphemeralKey,
  type Frame,
  type Transcript,
} from '@dru/sync'

/**
 * A hand-driven protocol-3 client for hostile tests: it speaks frames directly, so it can
 * send anything in any order, as a stranger (no secret) or as a member that lies.
 */
export interface RawPeer {
  readonly ws: WebSocket
  readonly frames: Frame[]
  /** Messages this peer could neither open nor decode (sealed for someone else), in order. */
  readonly opaque: Uint8Array[]
  readonly closed: Promise<void>
  closeCode(): number | undefined
  /** The close frame's reason: the DruError code the DRU closed with (e.g. PROTOCOL_VIOLATION). */
  closeReason(): string
  /** The first frame of `type` received (waits up to 5 s). */
  next<T extends Frame['type']>(type: T): Promise<Extract<Frame, { type: T }>>
  /** Everything sent from now on is sealed with `seal`; what arrives after the peer's auth is opened with it. */
  useSeal(seal: FrameSeal): void
  /** Seal what is sent from now on (after our auth). */
  sealOutgoing(): void
  send(data: Frame | Uint8Array | string): void
}

export type HelloFrame = Extract<Frame, { type: 'hello' }>
export type AuthFrame = Extract<Frame, { type: 'auth' }>

/** Opens a WebSocket to a DRU's sync port; nothing is sent yet. */
export function connectRaw(port: number): Promise<RawPeer> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false, maxPayload: 64 << 20 })
  const frames: Frame[] = []
  const waiters: Array<() => void> = []
  let seal: FrameSeal | undefined
  const opaque: Uint8Array[] = []
  let sealIn = false
  let sealOut = false
  ws.on('message', (d) => {
    const raw = new Uint8Array(d as Buffer)
    let frame: Frame
    try {
      frame = decodeFrame(sealIn ? seal!.open(raw) : raw)
    } catch {
      // A DRU that refuses our auth says why in the clear (it may not share our seal key).
      // Anything else we cannot open (a relay does not hold the seal) is counted, not read.
      try {
        frame = decodeFrame(raw)
      } catch {
        opaque.push(raw)
        for (const w of waiters.splice(0)) w()
        return
      }
    }
    // The peer seals everything after its auth.
    if (frame.type === 'auth' && seal) sealIn = true
    frames.push(frame)
    for (const w of waiters.splice(0)) w()
  })
  let code: number | undefined
  let reason = ''
  const closed = new Promise<void>((r) =>
    ws.once('close', (c, why) => {
      code = c
      reason = why.toString()
      r()
    }),
  )
  ws.on('error', () => undefined)
  const peer: RawPeer = {
    ws,
    frames,
    opaque,
    closed,
    closeCode: () => code,
    closeReason: () => reason,
    next: <T extends Frame['type']>(type: T) =>
      new Promise<Extract<Frame, { type: T }>>((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`no ${type} frame; got ${frames.map((f) => f.type).join(',') || 'nothing'}`)),
          5000,
        )
        const look = () => {
          const f = frames.find((g) => g.type === type)
          const err =
            type === 'error'
              ? undefined
              : (frames.find((g) => g.type === 'error') as Extract<Frame, { type: 'error' }> | undefined)
          if (f) {
            clearTimeout(t)
            resolve(f as Extract<Frame, { type: T }>)
          } else if (err) {
            // Waiting for anything else is over once the DRU refused us: say why.
            clearTimeout(t)
            reject(
              Object.assign(new Error(`refused with ${err.code}: ${err.message} (waiting for ${type})`), {
                code: err.code,
              }),
            )
          } else waiters.push(look)
        }
        look()
      }),
    useSeal: (s) => {
      seal = s
    },
    sealOutgoing: () => {
      sealOut = true
    },
    send: (data) => {
      if (typeof data === 'string') return ws.send(data)
      const bytes = data instanceof Uint8Array ? data : encodeFrame(data)
      ws.send(sealOut ? seal!.seal(bytes) : bytes)
    },
  }
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(peer))
    ws.once('error', reject)
  })
}

/** A hello as `druId`; pass `key` (an ephemeral key) to be able to seal the session afterwards. */
export function helloAs(
  druId: string,
  over: Partial<HelloFrame> = {},
  key: EphemeralKey = newEphemeralKey(),
): HelloFrame {
  return {
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    druId,
    origin: `${druId}/1`,
    key: key.publicRaw,
    ...over,
  }
}

/** The auth frame proving `mine` to `verifier` for this exchange of hellos. */
export function authFor(
  mine: HelloFrame,
  theirs: HelloFrame,
  verifier: string,
  secret: string,
  privateKeyPem: string,
): AuthFrame {
  const t: Transcript = {
    prover: mine.druId,
    verifier,
    proverOrigin: mine.origin,
    // Since protocol 7 each side's challenge is its ephemeral key.
    proverNonce: mine.key ?? new Uint8Array(32),
    verifierNonce: theirs.key ?? new Uint8Array(32),
    proverKey: mine.key ?? new Uint8Array(32),
    verifierKey: theirs.key ?? new Uint8Array(32),
  }
  return { type: 'auth', hmac: authProof(secret, t), sig: identityProof(createPrivateKey(privateKeyPem), t) }
}

/** The seal of a session between `mine` (with its ephemeral `key`) and `theirs`. */
export function sealFor(mine: HelloFrame, key: EphemeralKey, theirs: HelloFrame, secret: string): FrameSeal {
  return new FrameSeal({
    me: mine.druId,
    peer: theirs.druId,
    myNonce: key.publicRaw,
    peerNonce: theirs.key!,
    myKey: key,
    peerKey: theirs.key!,
    secret,
  })
}

/** Sends hello and auth as `as` on an open connection, sealing from then on; returns our auth. Does not wait for the outcome. */
export async function handshakeAs(
  c: RawPeer,
  as: { id: string; verifier: string; secret: string; privateKey: string },
): Promise<AuthFrame> {
  const theirs = await c.next('hello')
  const key = newEphemeralKey()
  const hello = helloAs(as.id, {}, key)
  c.useSeal(sealFor(hello, key, theirs, as.secret))
  c.send(hello)
  await c.next('auth')
  const auth = authFor(hello, theirs, as.verifier, as.secret, as.privateKey)
  c.send(auth)
  c.sealOutgoing()
  return auth
}

/** Connects and completes the handshake as member `as`; resolves once the target sent its vv. Frames are sealed from then on. */
export async function connectAsMember(
  port: number,
  as: { id: string; verifier: string; secret: string; privateKey: string },
): Promise<RawPeer & { auth: AuthFrame }> {
  const c = await connectRaw(port)
  const auth = await handshakeAs(c, as)
  await c.next('vv')
  return Object.assign(c, { auth })
}

/**
 * `n` chained events of `origin` from `from`, the last one signed with `privateKey`. Each
 * carries `change(i)` as its change bytes (arbitrary bytes unless the caller builds real ones).
 */
export function signedChain(
  origin: string,
  from: number,
  n: number,
  privateKey: string,
  options: { prev?: string; wall?: number; docId?: string; change?: (i: number) => Uint8Array } = {},
): DruEvent[] {
  const sign = signerFor(privateKey)
  const out: DruEvent[] = []
  let prev = options.prev ?? GENESIS_HASH
  const wall = options.wall ?? Date.now()
  for (let i = 0; i < n; i++) {
    const e = sealEvent({
      origin: origin as Origin,
      seq: from + i,
      hlc: encodeHlc({ wall, counter: i, node: origin }),
      docId: options.docId ?? 'doc',
      change: options.change?.(i) ?? new Uint8Array([1, 2, 3, i]),
      prev,
    })
    out.push(e)
    prev = e.hash
  }
  out[out.length - 1] = { ...out[out.length - 1]!, sig: sign(out[out.length - 1]!.hash) }
  return out
}
