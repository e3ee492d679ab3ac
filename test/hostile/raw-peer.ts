import { createPrivateKey, randomBytes } from 'node:crypto'
import WebSocket from 'ws'
import { GENESIS_HASH, encodeHlc, sealEvent, type DruEvent, type Origin } from '@dru/core'
import { PROTOCOL_VERSION, authProof, decodeFrame, encodeFrame, identityProof, signerFor, type Frame, type Transcript } from '@dru/sync'

/**
 * A hand-driven protocol-3 client for hostile tests: it speaks frames directly, so it can
 * send anything in any order, as a stranger (no secret) or as a member that lies.
 */
export interface RawPeer {
  readonly ws: WebSocket
  readonly frames: Frame[]
  readonly closed: Promise<void>
  closeCode(): number | undefined
  /** The close frame's reason: the DruError code the DRU closed with (e.g. PROTOCOL_VIOLATION). */
  closeReason(): string
  /** The first frame of `type` received (waits up to 5 s). */
  next<T extends Frame['type']>(type: T): Promise<Extract<Frame, { type: T }>>
  send(data: Frame | Uint8Array | string): void
}

export type HelloFrame = Extract<Frame, { type: 'hello' }>
export type AuthFrame = Extract<Frame, { type: 'auth' }>

/** Opens a WebSocket to a DRU's sync port; nothing is sent yet. */
export function connectRaw(port: number): Promise<RawPeer> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false, maxPayload: 64 << 20 })
  const frames: Frame[] = []
  const waiters: Array<() => void> = []
  ws.on('message', (d) => {
    frames.push(decodeFrame(d as Buffer))
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
    closed,
    closeCode: () => code,
    closeReason: () => reason,
    next: <T extends Frame['type']>(type: T) =>
      new Promise<Extract<Frame, { type: T }>>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no ${type} frame; got ${frames.map((f) => f.type).join(',') || 'nothing'}`)), 5000)
        const look = () => {
          const f = frames.find((g) => g.type === type)
          const err = type === 'error' ? undefined : (frames.find((g) => g.type === 'error') as Extract<Frame, { type: 'error' }> | undefined)
          if (f) {
            clearTimeout(t)
            resolve(f as Extract<Frame, { type: T }>)
          } else if (err) {
            // Waiting for anything else is over once the DRU refused us: say why.
            clearTimeout(t)
            reject(Object.assign(new Error(`refused with ${err.code}: ${err.message} (waiting for ${type})`), { code: err.code }))
          } else waiters.push(look)
        }
        look()
      }),
    send: (data) => ws.send(typeof data === 'string' ? data : data instanceof Uint8Array ? data : encodeFrame(data)),
  }
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(peer))
    ws.once('error', reject)
  })
}

export function helloAs(druId: string, over: Partial<HelloFrame> = {}): HelloFrame {
  return { type: 'hello', protocol: PROTOCOL_VERSION, druId, origin: `${druId}/1`, nonce: new Uint8Array(randomBytes(32)), ...over }
}

/** The auth frame proving `mine` to `verifier` for this exchange of hellos. */
export function authFor(mine: HelloFrame, theirs: HelloFrame, verifier: string, secret: string, privateKeyPem: string): AuthFrame {
  const t: Transcript = { prover: mine.druId, verifier, proverOrigin: mine.origin, proverNonce: mine.nonce, verifierNonce: theirs.nonce }
  return { type: 'auth', hmac: authProof(secret, t), sig: identityProof(createPrivateKey(privateKeyPem), t) }
}

/** Connects and completes the handshake as member `as`; resolves once the target sent its vv. */
export async function connectAsMember(port: number, as: { id: string; verifier: string; secret: string; privateKey: string }): Promise<RawPeer & { auth: AuthFrame }> {
  const c = await connectRaw(port)
  const theirs = await c.next('hello')
  const hello = helloAs(as.id)
  c.send(hello)
  await c.next('auth')
  const auth = authFor(hello, theirs, as.verifier, as.secret, as.privateKey)
  c.send(auth)
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
