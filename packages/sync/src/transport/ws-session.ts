import WebSocket from 'ws'
import { PeerProtocol } from '../protocol/peer-protocol.js'
import type { ProtocolConfig, ProtocolHooks, SessionRole, Wire } from '../protocol/session-config.js'

/** A session as the node's registry sees it: the protocol plus the owner's scheduling. */
export interface Session {
  readonly protocol: PeerProtocol
  /** Asks for a streaming pass soon (many commits coalesce into one pass). */
  schedulePump(): void
  /** Asks for an ack of what grew soon (after a commit that came by another session). */
  scheduleAck(): void
}

/**
 * Sets the largest message a socket's receiver accepts. `ws` reads `maxPayload` only at
 * construction; its receiver checks the declared length of every message against this
 * field before buffering it (ws 8.x, `Receiver#haveLength`). The contract test in
 * packages/sync/test/ws-session.test.ts fails if a `ws` upgrade changes that.
 */
export function setMaxPayload(ws: WebSocket, bytes: number): void {
  const receiver = (ws as unknown as { _receiver?: { _maxPayload?: number } })._receiver
  if (receiver && typeof receiver._maxPayload === 'number') receiver._maxPayload = bytes
}

/**
 * Binds one WebSocket to one {@link PeerProtocol}: moves bytes, runs the heartbeat timer,
 * schedules pumps and acks on the event loop, and lifts the socket's message limit from the
 * pre-authentication size to the session size once the peer has proven itself.
 */
export class WsSession implements Session {
  readonly protocol: PeerProtocol
  readonly #ws: WebSocket
  readonly #timer: NodeJS.Timeout
  readonly #sessionPayload: number
  #raised = false
  #pumpScheduled = false
  #ackScheduled = false

  constructor(ws: WebSocket, config: ProtocolConfig, hooks: ProtocolHooks, role: SessionRole, expectedPeer?: string) {
    this.#ws = ws
    const l = config.limits
    // `ws` adds its own guard at twice our frame cap; ours answers with an error frame first.
    this.#sessionPayload = l.maxFrameBytes * 2 + 1024
    setMaxPayload(ws, l.preAuthMaxFrameBytes * 2)
    const wire: Wire = {
      send: (bytes) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(bytes)
      },
      close: (code) => this.#closeSocket(code),
      get bufferedAmount() {
        return ws.bufferedAmount
      },
    }
    const userClosed = hooks.closed
    this.protocol = new PeerProtocol(
      config,
      {
        ...hooks,
        closed: (p, reason) => {
          clearInterval(this.#timer)
          userClosed?.(p, reason)
        },
      },
      wire,
      role,
      expectedPeer,
    )
    ws.binaryType = 'nodebuffer'
    ws.on('message', (data, isBinary) => {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data)
      this.protocol.receive(bytes, isBinary)
      if (!this.#raised && this.protocol.isOpen) {
        this.#raised = true
        setMaxPayload(ws, this.#sessionPayload)
      }
    })
    ws.on('close', (code, reason) =>
      this.protocol.close(reason.length > 0 ? reason.toString() : 'CLOSED', `socket closed (${code})`),
    )
    ws.on('error', (err) => {
      const code =
        (err as { code?: string }).code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
          ? 'FRAME_TOO_LARGE'
          : 'CONNECTION_FAILED'
      // ws would keep reading (and discarding) the rest of an oversized message while it
      // waits for the close handshake: tens of MiB for nothing. Drop the connection now.
      ws.terminate()
      this.protocol.close(code, err.message)
    })
    if (ws.readyState === WebSocket.OPEN) this.protocol.start()
    else ws.once('open', () => this.protocol.start())
    // The tick also bounds the handshake: a peer that never completes it is dropped.
    this.#timer = setInterval(
      () => this.protocol.tick(),
      Math.max(10, Math.min(l.heartbeatMs, l.heartbeatTimeoutMs / 2, l.handshakeTimeoutMs / 2)),
    )
    this.#timer.unref()
  }

  schedulePump(): void {
    if (this.#pumpScheduled || !this.protocol.isOpen) return
    this.#pumpScheduled = true
    setImmediate(() => {
      this.#pumpScheduled = false
      this.protocol.pump()
    })
  }

  scheduleAck(): void {
    if (this.#ackScheduled || !this.protocol.isOpen) return
    this.#ackScheduled = true
    setImmediate(() => {
      this.#ackScheduled = false
      this.protocol.ackNow()
    })
  }

  #closeSocket(code: string): void {
    const ws = this.#ws
    try {
      if (ws.readyState === WebSocket.OPEN) {
        ws.close(4000, code.slice(0, 100))
        // A peer that never answers the close handshake (blackholed) must not pin the socket;
        // a stranger gets just long enough for the error frame to leave.
        setTimeout(() => ws.terminate(), this.protocol.wasAuthenticated ? 1000 : 100).unref()
      } else if (ws.readyState === WebSocket.CONNECTING) {
        ws.terminate()
      }
    } catch {
      ws.terminate()
    }
  }
}
