import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { DruError, isDruError } from '@dru/core'
import { httpStatusForCode } from './admin-api.js'
import { adminHostNames, admitAdminRequest, isLoopbackHost, isWildcard, machineNames } from './admin-guard.js'
import { endStreamWithError, sendError } from './admin-io.js'
import { adminRoutes, type AdminSource } from './admin-routes.js'

/**
 * The admin HTTP server of a DRU: probes for load balancers and orchestrators, status and
 * metrics for operators, and the JSON operations the `dru` CLI calls. This file listens and
 * dispatches; who may ask is `admin-guard.ts`, the endpoints are `admin-routes.ts`, the
 * JSON bodies are `admin-api.ts`.
 *
 * The server knows nothing about the DRU's internals: it serves an {@link AdminSource},
 * so tests can drive it with a fake and the runtime wires the real thing.
 *
 * @module
 */

/** Default admin port (ARCHITECTURE §8). */
export const DEFAULT_ADMIN_PORT = 7401
/** Default bind address: loopback, because the admin API can resolve conflicts and decommission peers. */
export const DEFAULT_ADMIN_HOST = '127.0.0.1'
/** Largest accepted request body. Bodies are small JSON (a conflict resolution); 1 MiB leaves room for a big value and refuses floods. */
export const MAX_ADMIN_BODY_BYTES = 1024 * 1024

/**
 * Time a client has to send a request's headers, and the whole request. Operators and
 * scrapers send small requests at once; a client that trickles bytes only holds a socket.
 * (Streamed answers are not affected: these bound receiving the request.)
 */
export const ADMIN_HEADERS_TIMEOUT_MS = 5_000
export const ADMIN_REQUEST_TIMEOUT_MS = 10_000
/** An idle kept-alive connection is closed after this. */
export const ADMIN_KEEP_ALIVE_TIMEOUT_MS = 5_000
/** A socket with no traffic at all in either direction is closed after this (a streamed operation writes progress lines). */
export const ADMIN_SOCKET_IDLE_TIMEOUT_MS = 120_000
/** Connections held at once: a handful of operators, a load balancer and a scraper need far fewer. */
export const ADMIN_MAX_CONNECTIONS = 64

/** Options for {@link startAdminServer}. */
export interface AdminServerOptions {
  /** Default {@link DEFAULT_ADMIN_HOST}. */
  readonly host?: string
  /** Default {@link DEFAULT_ADMIN_PORT}; 0 picks a free port. */
  readonly port?: number
  readonly source: AdminSource
  /** Told about 5xx failures (unexpected errors), e.g. to log them. */
  readonly onError?: (err: unknown, route: string) => void
  /** Default {@link MAX_ADMIN_BODY_BYTES}. */
  readonly maxBodyBytes?: number
  /**
   * The admin token. With it, every POST needs `authorization: Bearer <token>`, and so does
   * every read but `/healthz` and `/readyz` when the server is bound off loopback. Without it
   * the server refuses to bind off loopback.
   */
  readonly token?: string
  /** More `Host` names (with or without port) the server answers to, besides its own address and loopback names. */
  readonly allowedHosts?: readonly string[]
  /** Overrides of {@link ADMIN_HEADERS_TIMEOUT_MS} and {@link ADMIN_REQUEST_TIMEOUT_MS} (tests). */
  readonly timeouts?: { headersMs?: number; requestMs?: number }
}

/** A running admin server. */
export interface AdminServer {
  readonly host: string
  readonly port: number
  /** `http://host:port` */
  readonly url: string
  /** Stops listening and drops open connections (including streams in flight). */
  close(): Promise<void>
}

/**
 * Starts the admin HTTP server; resolves once it listens. Before routing, every request
 * must name an allowed `Host` (no DNS rebinding), carry no foreign `Origin` (no web page),
 * and, for a POST, be `application/json` (a browser cannot send that cross-site without a
 * preflight, which is never granted) and carry the token when one is set.
 */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const { source } = options
  const host = options.host ?? DEFAULT_ADMIN_HOST
  const maxBody = options.maxBodyBytes ?? MAX_ADMIN_BODY_BYTES
  const routes = adminRoutes(source, maxBody)
  const loopback = isLoopbackHost(host)
  if (!loopback && !options.token) {
    throw new DruError(
      'CONFIG_INVALID',
      `the admin API on ${host} (off loopback) needs a token: set admin.token or admin.tokenFile`,
      { details: { field: 'admin' } },
    )
  }
  let allowedHosts = new Set<string>()

  const t = { headersMs: ADMIN_HEADERS_TIMEOUT_MS, requestMs: ADMIN_REQUEST_TIMEOUT_MS, ...options.timeouts }
  const server = createServer(
    {
      headersTimeout: t.headersMs,
      requestTimeout: t.requestMs,
      keepAliveTimeout: ADMIN_KEEP_ALIVE_TIMEOUT_MS,
      connectionsCheckingInterval: Math.min(1_000, t.headersMs),
    },
    (req, res) => {
      handle(req, res).catch((err: unknown) => failSafe(res, err))
    },
  )
  server.maxConnections = ADMIN_MAX_CONNECTIONS
  server.on('connection', (socket) => socket.setTimeout(ADMIN_SOCKET_IDLE_TIMEOUT_MS, () => socket.destroy()))

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL
    try {
      url = new URL(req.url ?? '/', 'http://admin.invalid')
    } catch {
      return sendError(res, new DruError('INVALID_ARGUMENT', 'request URL does not parse'))
    }
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname
    try {
      admitAdminRequest(
        {
          method: req.method ?? 'GET',
          path,
          host: req.headers.host,
          origin: req.headers.origin,
          authorization: req.headers.authorization,
          contentType: req.headers['content-type'],
        },
        { allowedHosts, loopback, token: options.token },
      )
    } catch (err) {
      req.resume()
      res.setHeader('connection', 'close')
      return sendError(res, err)
    }
    // No CORS: a preflight (OPTIONS) or any other method is refused before routing, and no
    // answer ever carries Access-Control-Allow-*, so a browser never sends a page's JSON POST.
    const matching = routes.filter((r) => r.pattern.test(path))
    if (req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'POST') {
      req.resume()
      res.setHeader('allow', matching.length > 0 ? [...new Set(matching.map((r) => r.method))].join(', ') : 'GET, POST')
      return sendError(res, new DruError('INVALID_ARGUMENT', `${req.method} is not served by the admin API`), 405)
    }
    const method = req.method === 'HEAD' ? 'GET' : req.method
    if (matching.length === 0) {
      req.resume()
      return sendError(res, new DruError('NOT_FOUND', `no admin endpoint ${req.method} ${url.pathname}`))
    }
    const route = matching.find((r) => r.method === method)
    if (!route) {
      req.resume()
      res.setHeader('allow', [...new Set(matching.map((r) => r.method))].join(', '))
      return sendError(res, new DruError('INVALID_ARGUMENT', `${req.method} is not allowed on ${url.pathname}`), 405)
    }
    let params: string[]
    try {
      params = (route.pattern.exec(path) ?? []).slice(1).map((p) => decodeURIComponent(p))
    } catch {
      req.resume()
      return sendError(res, new DruError('INVALID_ARGUMENT', `bad percent-encoding in ${url.pathname}`))
    }
    try {
      await route.handler({ req, res, url, params })
    } catch (err) {
      if (!isDruError(err) || httpStatusForCode(err.code) >= 500) options.onError?.(err, route.name)
      if (res.headersSent) return endStreamWithError(res, err)
      req.resume()
      sendError(res, err)
    }
  }

  function failSafe(res: ServerResponse, err: unknown): void {
    options.onError?.(err, 'admin')
    try {
      if (!res.headersSent) sendError(res, err)
      else res.destroy()
    } catch {
      res.destroy()
    }
  }

  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // A client too slow with its headers or request is told so (408), a garbled one 400.
    const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request'
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\n\r\n`)
    else socket.destroy()
  })

  const port0 = options.port ?? DEFAULT_ADMIN_PORT
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'EADDRINUSE'
          ? new DruError(
              'ADDRESS_IN_USE',
              `the admin address ${host}:${port0} is already in use by another process (another DRU, or this one still running?): stop it or set another admin.port`,
              { cause: err, details: { field: 'admin', host, port: port0 } },
            )
          : new DruError('CONFIG_INVALID', `cannot listen on ${host}:${port0}: ${err.message}`, {
              cause: err,
              details: { field: 'admin', host, port: port0 },
            }),
      )
    }
    server.once('error', onError)
    server.listen(port0, host, () => {
      server.off('error', onError)
      resolve()
    })
  })
  const address = server.address() as AddressInfo
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address
  allowedHosts = adminHostNames({
    bound: host,
    address: address.address,
    port: address.port,
    extra: options.allowedHosts ?? [],
    ...(isWildcard(host) ? machineNames() : {}),
  })
  return {
    host: address.address,
    port: address.port,
    url: `http://${urlHost}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
