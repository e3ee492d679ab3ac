import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import { DruError } from '@dru/core'
import {
  HANDSHAKE_BURST,
  HANDSHAKES_PER_SECOND,
  MAX_HANDSHAKING,
  MAX_INBOUND_CONNECTIONS,
  TIMEOUT_CHECK_INTERVAL_MS,
  UPGRADE_REQUEST_TIMEOUT_MS,
} from '../limits.js'
import type { Logger } from '../logger.js'
import { TokenBucket } from '../protocol/token-bucket.js'

export interface ListenerOptions {
  readonly host: string
  readonly port: number
  readonly tls?: { cert?: string; key?: string } | undefined
  /** Largest message before authentication (the session lifts it afterwards). */
  readonly preAuthMaxFrameBytes: number
  readonly logger: Logger
  readonly now: () => number
  readonly caps?: Partial<ListenerCaps>
  /** A socket passed the caps and upgraded. Call `authenticated` once its session is open. */
  readonly onSocket: (ws: WebSocket, slot: { authenticated(): void }) => void
}

/** The listener's caps (defaults in limits.ts). */
export interface ListenerCaps {
  readonly maxConnections: number
  readonly maxHandshaking: number
  readonly handshakesPerSecond: number
  readonly handshakeBurst: number
  readonly upgradeTimeoutMs: number
}

export interface Listener {
  readonly port: number
  /** Inbound sockets held now, and how many of them are still in their handshake. */
  readonly connections: number
  readonly handshaking: number
  /** Connections refused by the caps so far. */
  readonly refused: number
  close(): Promise<void>
}

/**
 * Accepts peers on one address, before anything is trusted: bounded TCP connections, a
 * bounded number still in their handshake, a rate of new handshakes, short timeouts for
 * clients that send nothing, and a tiny message limit until a session authenticates. Every
 * refusal costs a few hundred bytes and no decoding.
 */
export async function listen(options: ListenerOptions): Promise<Listener> {
  const caps: ListenerCaps = {
    maxConnections: MAX_INBOUND_CONNECTIONS,
    maxHandshaking: MAX_HANDSHAKING,
    handshakesPerSecond: HANDSHAKES_PER_SECOND,
    handshakeBurst: HANDSHAKE_BURST,
    upgradeTimeoutMs: UPGRADE_REQUEST_TIMEOUT_MS,
    ...options.caps,
  }
  const serverOptions = {
    headersTimeout: caps.upgradeTimeoutMs,
    requestTimeout: caps.upgradeTimeoutMs,
    connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS,
    keepAliveTimeout: 1_000,
    maxHeaderSize: 8 * 1024,
  }
  const tls = options.tls
  if (tls && (tls.cert === undefined) !== (tls.key === undefined)) {
    throw new DruError('CONFIG_INVALID', 'tls.cert and tls.key must be given together', { details: { field: 'tls' } })
  }
  const server: Server =
    tls?.cert && tls.key
      ? createHttpsServer({ ...serverOptions, cert: tls.cert, key: tls.key })
      : createHttpServer(serverOptions)
  // A stray TCP socket beyond the cap is closed by the kernel-facing server at once.
  server.maxConnections = caps.maxConnections + caps.maxHandshaking
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.preAuthMaxFrameBytes * 2,
    perMessageDeflate: false,
  })
  const rate = new TokenBucket(caps.handshakesPerSecond, caps.handshakeBurst, options.now)
  let connections = 0
  let handshaking = 0
  let refused = 0
  const sockets = new Set<Duplex>()

  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    // A client that connects and sends nothing (or a header a byte at a time) goes.
    socket.setTimeout(caps.upgradeTimeoutMs, () => socket.destroy())
  })
  // Plain HTTP is not part of the protocol.
  server.on('request', (_req, res) => {
    res.writeHead(426, { connection: 'close', 'content-type': 'text/plain' }).end('dru peers speak WebSocket\n')
  })
  server.on('clientError', (_err, socket) => socket.destroy())
  // Sockets beyond maxConnections are dropped by Node before any byte is read: count them too.
  server.on('drop', () => refused++)
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const refuse = (why: string) => {
      refused++
      options.logger.warn(`sync: refusing a connection: ${why}`, { remote: req.socket.remoteAddress })
      if (socket.writable)
        socket.end(
          `HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: ${why.length}\r\n\r\n${why}`,
        )
      socket.destroy()
    }
    if (connections >= caps.maxConnections) return refuse('TOO_MANY_CONNECTIONS: connection cap reached')
    if (handshaking >= caps.maxHandshaking) return refuse('TOO_MANY_CONNECTIONS: too many handshakes in progress')
    if (!rate.take()) return refuse('TOO_MANY_CONNECTIONS: handshake rate exceeded')
    ;(socket as Socket).setTimeout(0)
    wss.handleUpgrade(req, socket, head, (ws) => {
      connections++
      handshaking++
      let open = false
      ws.once('close', () => {
        connections--
        if (!open) handshaking--
      })
      options.onSocket(ws, {
        authenticated: () => {
          if (open) return
          open = true
          handshaking--
        },
      })
    })
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const inUse = err.code === 'EADDRINUSE'
      reject(
        new DruError(
          inUse ? 'ADDRESS_IN_USE' : 'CONFIG_INVALID',
          `cannot listen on ${options.host}:${options.port}: ${err.message}`,
          {
            cause: err,
            details: { field: 'listen', host: options.host, port: options.port },
          },
        ),
      )
    })
    server.listen(options.port, options.host, () => resolve())
  })
  server.on('error', (err) => options.logger.error(`sync: server error: ${err.message}`))
  const port = (server.address() as AddressInfo).port
  return {
    port,
    get connections() {
      return connections
    },
    get handshaking() {
      return handshaking
    },
    get refused() {
      return refused
    },
    close: async () => {
      for (const client of wss.clients) client.terminate()
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
