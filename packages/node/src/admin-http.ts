import { createHash, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { hostname, networkInterfaces } from 'node:os'
import { DruError, isDruError, isReady, type ErrorCode, type LifecycleState } from '@dru/core'

/**
 * The admin HTTP API of a DRU: probes for load balancers and orchestrators, status and
 * metrics for operators, and the JSON operations the `dru` CLI calls.
 *
 * The server knows nothing about the DRU's internals: it serves an {@link AdminSource},
 * so tests can drive it with a fake and the runtime wires the real thing.
 */

/** Default admin port (ARCHITECTURE §8). */
export const DEFAULT_ADMIN_PORT = 7401
/** Default bind address: loopback, because the admin API can resolve conflicts and decommission peers. */
export const DEFAULT_ADMIN_HOST = '127.0.0.1'
/** Largest accepted request body. Bodies are small JSON (a conflict resolution); 1 MiB leaves room for a big value and refuses floods. */
export const MAX_ADMIN_BODY_BYTES = 1024 * 1024
/** Content type of Prometheus text exposition format 0.0.4. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
/** Content type of streamed operations: one JSON object per line. */
export const NDJSON_CONTENT_TYPE = 'application/x-ndjson'

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

/** One peer as `/status` shows it. */
export interface PeerStatusJson {
  readonly id: string
  readonly url?: string
  /** A sync session is up. */
  readonly connected: boolean
  /** ISO time the connection last went up or down, if known. */
  readonly since?: string | null
  /** ISO time of the last frame from the peer, if any. */
  readonly lastSeen?: string | null
  /** Events not yet exchanged with the peer, both directions together. */
  readonly lagEvents: number
  /** Age in seconds of the oldest event not yet exchanged, or null when nothing is pending or unknown. */
  readonly lagSeconds: number | null
  /** e.g. `member`, `quarantined`, `decommissioned`. */
  readonly membership?: string
}

/** Body of `GET /status`. */
export interface StatusJson {
  readonly id: string
  /** Current writer origin, `<id>/<incarnation>`. */
  readonly origin?: string
  readonly state: LifecycleState
  /** ISO time the current state was entered. */
  readonly since: string
  /** Short fingerprint digest plus the version vector (and heads, if the source adds them). */
  readonly fingerprint: {
    readonly digest: string
    readonly vv: Readonly<Record<string, number>>
    readonly heads?: Readonly<Record<string, string>>
  }
  readonly peers: readonly PeerStatusJson[]
  readonly conflictsOpen: number
  /** False while a restored DRU refuses writes until its own origin is back. */
  readonly writable?: boolean
  /** Events handlers still owe and dead letters, when a handler is registered or anything is owed. */
  readonly inbox?: InboxSummaryJson
  /** Documents whose snapshot cannot be loaded: reading them fails with DOCUMENT_ISOLATED (present when any). */
  readonly isolatedDocuments?: { readonly count: number; readonly docs: ReadonlyArray<{ docId: string; reason: string; at: string }> }
  /** Stored changes Automerge refuses to apply, skipped on every DRU alike (present when any). */
  readonly rejectedChanges?: { readonly count: number; readonly latest: ReadonlyArray<{ origin: string; seq: number; docId: string; reason: string; at: string }> }
  /** Events stored, the compaction base (compacted away) and the floor a compaction would use now. */
  readonly log?: {
    readonly events: number
    readonly base: Readonly<Record<string, number>>
    readonly floor: Readonly<Record<string, number>>
  }
}

/** What one side lacks of one origin, against one peer. */
export interface OriginGapJson {
  readonly origin: string
  /** Highest contiguous seq we hold. */
  readonly local: number
  /** Highest contiguous seq the peer holds (as last reported or acknowledged). */
  readonly remote: number
  /** Events the peer holds that we lack: max(0, remote - local). */
  readonly weLack: number
  /** Events we hold that the peer lacks: max(0, local - remote). */
  readonly theyLack: number
}

/** Gaps against one peer. */
export interface PeerGapsJson {
  readonly peer: string
  readonly connected: boolean
  /** Totals over `origins`. */
  readonly weLack: number
  readonly theyLack: number
  /** Only origins where a side lacks something need be listed. */
  readonly origins: readonly OriginGapJson[]
}

/** Body of `GET /gaps`. */
export interface GapsJson {
  readonly peers: readonly PeerGapsJson[]
}

/** One peer's verification result. */
export interface PeerVerifyJson {
  readonly peer: string
  readonly reachable: boolean
  /** Fingerprints (and, when deep, document digests) equal; null when unreachable. */
  readonly equal: boolean | null
  readonly remoteDigest?: string
  /** Origins with the same seq but different heads: a fork or corruption. */
  readonly divergentOrigins?: readonly string[]
  /** Deep check only: documents whose materialised digests differ. */
  readonly docsDiffering?: readonly string[]
  readonly error?: string
}

/** Body of `POST /verify`. */
export interface VerifyJson {
  /** True when every reachable peer compared equal (the source decides how unreachable peers count). */
  readonly ok: boolean
  readonly deep: boolean
  readonly local: { readonly digest: string; readonly documents?: number }
  readonly peers: readonly PeerVerifyJson[]
}

/** One value of a conflicted field. */
export interface ConflictValueJson {
  readonly origin: string
  readonly value: unknown
  readonly hlc?: string | null
  readonly opId?: string
}

/** A conflict as the admin API shows it. */
export interface ConflictJson {
  readonly id: number | string
  readonly docId: string
  readonly path: ReadonlyArray<string | number>
  readonly values: readonly ConflictValueJson[]
  /** Wall-clock ms. */
  readonly detectedAt: number
  readonly status: 'open' | 'resolved'
  readonly resolution?: unknown
  readonly resolvedAt?: number
  readonly resolvedBy?: string
}

/** Body of `POST /conflicts/:id/resolve`. */
export interface ResolveJson {
  readonly id: number | string
  readonly status: 'resolved'
  /** The event that carries the resolution, if the write changed anything. */
  readonly event?: { readonly origin: string; readonly seq: number }
}

/** Body of `POST /compact`. */
export interface CompactJson {
  /** The causal-stability floor used (min acknowledged VV over members). */
  readonly floor: Readonly<Record<string, number>>
  readonly eventsRemoved: number
  readonly docsSnapshotted: number
  readonly durationMs?: number
  /** The log's base afterwards, events before and after, and who held the floor back. */
  readonly base?: Readonly<Record<string, number>>
  readonly eventsBefore?: number
  readonly eventsAfter?: number
  readonly waitingFor?: readonly string[]
  readonly heldBack?: readonly string[]
}

/** Body of `POST /peers/:id/unquarantine`. */
export interface UnquarantineJson {
  readonly peer: string
  /** False when the peer was not quarantined (nothing changed). */
  readonly lifted: boolean
}

/** One handler's entries in `/status` and `GET /inbox`. */
export interface InboxHandlerCountsJson {
  readonly handler: string
  /** Registered in this process (only then are its entries retried). */
  readonly registered: boolean
  readonly pending: number
  readonly waiting: number
  readonly dead: number
  readonly skipped?: number
}

/** `inbox` in `/status`. */
export interface InboxSummaryJson {
  /** Failed and scheduled for a retry. */
  readonly pending: number
  /** Waiting behind an earlier owed event of their document (handlers with order `document`). */
  readonly waiting: number
  /** Retries used up: `dru inbox retry` or `dru inbox skip` them. */
  readonly dead: number
  readonly handlers: readonly InboxHandlerCountsJson[]
}

/** One entry of the inbox (times in ms since the epoch). */
export interface InboxEntryJson {
  readonly id: number
  readonly handler: string
  readonly origin: string
  readonly seq: number
  readonly docId: string
  readonly state: 'pending' | 'waiting' | 'dead' | 'skipped'
  readonly attempts: number
  readonly firstFailedAt: number | null
  readonly lastFailedAt: number | null
  readonly nextAttemptAt: number | null
  readonly lastError: string | null
  /** `GET /inbox/:id` only. */
  readonly errorStack?: string | null
  readonly settledAt: number | null
  readonly note: string | null
  readonly registered: boolean
}

/** Body of `GET /inbox`. */
export interface InboxListJson {
  readonly counts: InboxSummaryJson & { readonly skipped: number }
  readonly entries: readonly InboxEntryJson[]
  /** Pass as `after` for the next page; absent on the last one. */
  readonly next?: number
}

/** Body of `POST /inbox/:id/retry`. */
export interface InboxRetryJson {
  readonly id: number
  /** `done`: the handler ran and its effects committed; `failed`: it threw again. */
  readonly outcome: 'done' | 'failed'
  readonly error?: string
  readonly entry?: InboxEntryJson
}

/** Body of `POST /inbox/retry-dead`. */
export interface InboxRequeueJson {
  /** Dead letters put back in line for one more try each. */
  readonly requeued: number
  readonly handler?: string
}

/** Filter of `GET /inbox?state=`. */
export type InboxFilterJson = 'open' | 'pending' | 'waiting' | 'dead' | 'skipped' | 'all'

/** Body of `POST /decommission/:id`. */
export interface DecommissionJson {
  readonly id: string
  /** False when the id was already not a member. */
  readonly removed: boolean
  readonly floor?: Readonly<Record<string, number>>
  /** Members still holding the floor below our vector. */
  readonly waitingFor?: readonly string[]
}

/** Progress of a long operation, streamed as `{"progress": …}` lines. */
export interface OperationProgress {
  /** What is happening, e.g. `compare`, `snapshot`, `catch-up`. */
  readonly phase: string
  readonly done: number
  readonly total?: number
  /** What `done` counts, e.g. `events`, `docs`. */
  readonly unit?: string
}

/** Reports progress; cheap to call often (the server does not throttle). */
export type ProgressFn = (p: OperationProgress) => void

/** `'open'` (default), `'resolved'` or `'all'`. */
export type ConflictFilter = 'open' | 'resolved' | 'all'

/**
 * What the admin server serves. Throw {@link DruError}s for expected failures
 * (`NOT_FOUND` for an unknown conflict, `INVALID_ARGUMENT` for a bad value); the code
 * picks the HTTP status. Optional operations answer 501 `NOT_SUPPORTED` when absent.
 */
export interface AdminSource {
  /** Current lifecycle state (drives `/readyz`); must be cheap and synchronous. */
  state(): LifecycleState
  status(): StatusJson | Promise<StatusJson>
  /** Prometheus text. */
  metrics(): string | Promise<string>
  gaps(): GapsJson | Promise<GapsJson>
  verify(opts: { deep: boolean }, progress: ProgressFn): VerifyJson | Promise<VerifyJson>
  readonly conflicts: {
    list(filter: ConflictFilter): readonly ConflictJson[] | Promise<readonly ConflictJson[]>
    /** `id` exactly as in the URL (decoded); undefined when there is no such conflict. */
    get(id: string): ConflictJson | undefined | Promise<ConflictJson | undefined>
    resolve(id: string, value: unknown): ResolveJson | Promise<ResolveJson>
  }
  compact?(progress: ProgressFn): CompactJson | Promise<CompactJson>
  /** `force` removes a peer even while it is connected. */
  decommission?(id: string, force: boolean): DecommissionJson | Promise<DecommissionJson>
  /** Lifts a peer's quarantine (after the operator has dealt with the fork) so it may reconnect. */
  unquarantine?(peerId: string): UnquarantineJson | Promise<UnquarantineJson>
  /** Events handlers owe; `id`s exactly as in the URL (decoded). */
  readonly inbox?: {
    list(filter: { state: InboxFilterJson; handler?: string; limit: number; after?: number }): InboxListJson | Promise<InboxListJson>
    get(id: string): InboxEntryJson | undefined | Promise<InboxEntryJson | undefined>
    retry(id: string): InboxRetryJson | Promise<InboxRetryJson>
    retryDead(handler: string | undefined): InboxRequeueJson | Promise<InboxRequeueJson>
    skip(id: string, reason: string | undefined): InboxEntryJson | Promise<InboxEntryJson>
  }
}

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

/** HTTP status for each error code the admin API may answer with; unlisted codes get 500. */
const STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = {
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  DOCUMENT_ISOLATED: 409,
  NOT_WRITABLE: 503,
  MALFORMED: 400,
  INVALID_ARGUMENT: 400,
  CONFIG_INVALID: 400,
  NOT_FOUND: 404,
  FORK: 409,
  QUARANTINED: 409,
  NOT_SUPPORTED: 501,
  CLOSED: 503,
  DB_LOCKED: 503,
  ACK_TIMEOUT: 504,
  INVALID_VALUE: 400,
  STORAGE_FULL: 507,
}

/** The HTTP status the admin API answers for a {@link DruError} code. */
export function httpStatusForCode(code: ErrorCode): number {
  return STATUS_BY_CODE[code] ?? 500
}

type Handler = (ctx: RequestContext) => Promise<void>

interface RequestContext {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly url: URL
  readonly params: readonly string[]
}

interface Route {
  readonly method: 'GET' | 'POST'
  readonly pattern: RegExp
  readonly name: string
  readonly handler: Handler
}

/** True for an address only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '')
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h)
}

/** Open without a token even off loopback: load balancers and orchestrators probe these without credentials. */
const PROBES = new Set(['/healthz', '/readyz'])

/** Constant-time token check (hashed first, so the length does not leak either). */
function tokenMatches(expected: string, header: string | undefined): boolean {
  // The scheme name is case-insensitive (RFC 9110 §11.1).
  const m = /^Bearer +(.+)$/i.exec(header ?? '')
  if (!m) return false
  const a = createHash('sha256').update(expected).digest()
  const b = createHash('sha256').update(m[1]!.trim()).digest()
  return timingSafeEqual(a, b)
}

/** What {@link admitAdminRequest} looks at. */
export interface AdminRequestHead {
  readonly method: string
  readonly path: string
  readonly host: string | undefined
  readonly origin: string | undefined
  readonly authorization: string | undefined
  readonly contentType: string | undefined
}

/**
 * Refuses what a web page, a rebinding DNS name or a caller without the token could send
 * (throws FORBIDDEN, UNAUTHORIZED, or INVALID_ARGUMENT with HTTP 415). Pure, so every rule is
 * tested apart from sockets.
 */
export function admitAdminRequest(req: AdminRequestHead, policy: { allowedHosts: ReadonlySet<string>; loopback: boolean; token: string | undefined }): void {
  const host = (req.host ?? '').toLowerCase()
  if (!policy.allowedHosts.has(host)) {
    throw new DruError('FORBIDDEN', `this admin API does not answer to Host ${JSON.stringify(host.slice(0, 100))}; add it to admin.allowedHosts if it is yours`)
  }
  if (req.origin !== undefined && req.origin.toLowerCase() !== `http://${host}`) {
    throw new DruError('FORBIDDEN', `requests from another origin (${req.origin.slice(0, 100)}) are refused: the admin API is not for web pages`)
  }
  const needsToken = req.method === 'POST' || (!policy.loopback && !PROBES.has(req.path))
  if (needsToken && policy.token !== undefined && !tokenMatches(policy.token, req.authorization)) {
    throw new DruError('UNAUTHORIZED', 'this admin API needs its token: send authorization: Bearer <token> (dru: --token-file or DRU_ADMIN_TOKEN)')
  }
  if (req.method === 'POST' && !/^application\/json\s*(;|$)/i.test(req.contentType ?? '')) {
    throw new DruError('INVALID_ARGUMENT', 'POST requests must be content-type: application/json', { details: { status: 415 } })
  }
}

/** `0.0.0.0` and `::` listen on every interface. */
function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]'
}

/** This machine's interface addresses (without scoped link-local ones, which no Host header names plainly) and host name. */
function machineNames(): { interfaces: string[]; machineName: string } {
  const interfaces = Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .map((i) => i.address)
    .filter((a) => !a.toLowerCase().startsWith('fe80:'))
  return { interfaces, machineName: hostname() }
}

/**
 * The `Host` values (`name:port`, lower case) the admin server answers to: the address it was
 * bound to (as given and as resolved), the loopback names, `extra` (a name without a port gets the server's), and, when
 * bound to a wildcard address, every interface address and the host name, since clients on
 * the network reach it by those.
 */
export function adminHostNames(o: { bound: string; address?: string; port: number; extra: readonly string[]; interfaces?: readonly string[]; machineName?: string }): Set<string> {
  const names = [o.bound, o.address ?? '', 'localhost', '127.0.0.1', '::1', ...(o.interfaces ?? []), ...(o.machineName ? [o.machineName] : []), ...o.extra]
  const withPort = (n: string): string => {
    const name = n.toLowerCase()
    if (/^\[[^\]]*\]:\d+$/.test(name) || /^[^:]*:\d+$/.test(name)) return name
    // A bare IPv6 address is written in brackets in a Host header.
    const bracketed = name.includes(':') && !name.startsWith('[') ? `[${name}]` : name
    return `${bracketed}:${o.port}`
  }
  return new Set(names.filter((n) => n !== '').map(withPort))
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
  const routes = buildRoutes(source, maxBody)
  const loopback = isLoopbackHost(host)
  if (!loopback && !options.token) {
    throw new DruError('CONFIG_INVALID', `the admin API on ${host} (off loopback) needs a token: set admin.token or admin.tokenFile`, { details: { field: 'admin' } })
  }
  let allowedHosts = new Set<string>()

  const t = { headersMs: ADMIN_HEADERS_TIMEOUT_MS, requestMs: ADMIN_REQUEST_TIMEOUT_MS, ...options.timeouts }
  const server = createServer(
    { headersTimeout: t.headersMs, requestTimeout: t.requestMs, keepAliveTimeout: ADMIN_KEEP_ALIVE_TIMEOUT_MS, connectionsCheckingInterval: Math.min(1_000, t.headersMs) },
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
        { method: req.method ?? 'GET', path, host: req.headers.host, origin: req.headers.origin, authorization: req.headers.authorization, contentType: req.headers['content-type'] },
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
          ? new DruError('ADDRESS_IN_USE', `the admin address ${host}:${port0} is already in use by another process (another DRU, or this one still running?): stop it or set another admin.port`, { cause: err, details: { field: 'admin', host, port: port0 } })
          : new DruError('CONFIG_INVALID', `cannot listen on ${host}:${port0}: ${err.message}`, { cause: err, details: { field: 'admin', host, port: port0 } }),
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
  allowedHosts = adminHostNames({ bound: host, address: address.address, port: address.port, extra: options.allowedHosts ?? [], ...(isWildcard(host) ? machineNames() : {}) })
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

function buildRoutes(source: AdminSource, maxBody: number): Route[] {
  const route = (method: Route['method'], pattern: RegExp, name: string, handler: Handler): Route => ({
    method,
    pattern,
    name,
    handler,
  })
  return [
    route('GET', /^\/healthz$/, 'healthz', async ({ res }) => sendJson(res, 200, { ok: true })),
    route('GET', /^\/readyz$/, 'readyz', async ({ res }) => {
      const state = source.state()
      const ready = isReady(state)
      sendJson(res, ready ? 200 : 503, { ready, state })
    }),
    route('GET', /^\/status$/, 'status', async ({ res }) => sendJson(res, 200, await source.status())),
    route('GET', /^\/metrics$/, 'metrics', async ({ res }) => {
      const text = await source.metrics()
      send(res, 200, PROMETHEUS_CONTENT_TYPE, text)
    }),
    route('GET', /^\/gaps$/, 'gaps', async ({ res }) => sendJson(res, 200, await source.gaps())),
    route('POST', /^\/verify$/, 'verify', async (ctx) => {
      await readBody(ctx.req, maxBody)
      const deep = flag(ctx.url, 'deep')
      await runOperation(ctx, (progress) => source.verify({ deep }, progress))
    }),
    route('GET', /^\/conflicts$/, 'conflicts', async ({ res, url }) => {
      const filter = url.searchParams.get('status') ?? 'open'
      if (filter !== 'open' && filter !== 'resolved' && filter !== 'all') {
        throw new DruError('INVALID_ARGUMENT', `status must be open, resolved or all (got ${JSON.stringify(filter)})`)
      }
      sendJson(res, 200, await source.conflicts.list(filter))
    }),
    route('GET', /^\/conflicts\/([^/]+)$/, 'conflict', async ({ res, params }) => {
      const id = params[0]!
      const conflict = await source.conflicts.get(id)
      if (conflict === undefined) throw new DruError('NOT_FOUND', `no conflict ${JSON.stringify(id)}`)
      sendJson(res, 200, conflict)
    }),
    route('POST', /^\/conflicts\/([^/]+)\/resolve$/, 'resolve', async ({ req, res, params }) => {
      const body = parseJsonBody(await readBody(req, maxBody))
      if (body === null || typeof body !== 'object' || Array.isArray(body) || !('value' in body)) {
        throw new DruError('INVALID_ARGUMENT', 'body must be a JSON object {"value": <the value to keep>}')
      }
      sendJson(res, 200, await source.conflicts.resolve(params[0]!, (body as { value: unknown }).value))
    }),
    route('POST', /^\/compact$/, 'compact', async (ctx) => {
      await readBody(ctx.req, maxBody)
      const compact = source.compact?.bind(source)
      if (!compact) throw new DruError('NOT_SUPPORTED', 'this DRU does not offer compaction')
      await runOperation(ctx, (progress) => compact(progress))
    }),
    route('POST', /^\/peers\/([^/]+)\/unquarantine$/, 'unquarantine', async ({ req, res, params }) => {
      await readBody(req, maxBody)
      const unquarantine = source.unquarantine?.bind(source)
      if (!unquarantine) throw new DruError('NOT_SUPPORTED', 'this DRU has no peers to unquarantine')
      sendJson(res, 200, await unquarantine(params[0]!))
    }),
    route('GET', /^\/inbox$/, 'inbox', async ({ res, url }) => {
      const state = url.searchParams.get('state') ?? 'open'
      if (!['open', 'pending', 'waiting', 'dead', 'skipped', 'all'].includes(state)) {
        throw new DruError('INVALID_ARGUMENT', `state must be open, pending, waiting, dead, skipped or all (got ${JSON.stringify(state)})`)
      }
      const limit = intParam(url, 'limit', 100, 1, 1000)
      const after = url.searchParams.has('after') ? intParam(url, 'after', 0, 0, Number.MAX_SAFE_INTEGER) : undefined
      const handler = url.searchParams.get('handler') ?? undefined
      sendJson(res, 200, await inboxOf(source).list({ state: state as InboxFilterJson, limit, ...(handler !== undefined ? { handler } : {}), ...(after !== undefined ? { after } : {}) }))
    }),
    route('GET', /^\/inbox\/([^/]+)$/, 'inbox-entry', async ({ res, params }) => {
      const entry = await inboxOf(source).get(params[0]!)
      if (entry === undefined) throw new DruError('NOT_FOUND', `no inbox entry ${JSON.stringify(params[0])}`)
      sendJson(res, 200, entry)
    }),
    route('POST', /^\/inbox\/retry-dead$/, 'inbox-retry-dead', async ({ req, res }) => {
      const body = jsonObject(await readBody(req, maxBody), ['handler'])
      if (body.handler !== undefined && typeof body.handler !== 'string') throw new DruError('INVALID_ARGUMENT', 'handler must be a string')
      sendJson(res, 200, await inboxOf(source).retryDead(body.handler as string | undefined))
    }),
    route('POST', /^\/inbox\/([^/]+)\/retry$/, 'inbox-retry', async ({ req, res, params }) => {
      jsonObject(await readBody(req, maxBody), [])
      sendJson(res, 200, await inboxOf(source).retry(params[0]!))
    }),
    route('POST', /^\/inbox\/([^/]+)\/skip$/, 'inbox-skip', async ({ req, res, params }) => {
      const body = jsonObject(await readBody(req, maxBody), ['reason'])
      if (body.reason !== undefined && typeof body.reason !== 'string') throw new DruError('INVALID_ARGUMENT', 'reason must be a string')
      sendJson(res, 200, await inboxOf(source).skip(params[0]!, body.reason as string | undefined))
    }),
    route('POST', /^\/decommission\/([^/]+)$/, 'decommission', async ({ req, res, params, url }) => {
      await readBody(req, maxBody)
      const decommission = source.decommission?.bind(source)
      if (!decommission) throw new DruError('NOT_SUPPORTED', 'this DRU runs without peers: there is no membership to change')
      sendJson(res, 200, await decommission(params[0]!, flag(url, 'force')))
    }),
  ]
}

function inboxOf(source: AdminSource): NonNullable<AdminSource['inbox']> {
  if (!source.inbox) throw new DruError('NOT_SUPPORTED', 'this DRU has no inbox')
  return source.inbox
}

/** An integer query parameter in [min, max], `fallback` when absent; INVALID_ARGUMENT otherwise. */
function intParam(url: URL, name: string, fallback: number, min: number, max: number): number {
  const v = url.searchParams.get(name)
  if (v === null) return fallback
  const n = Number(v)
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) throw new DruError('INVALID_ARGUMENT', `${name} must be an integer in ${min}..${max} (got ${JSON.stringify(v)})`)
  return n
}

/** A POST body that is an empty object or one with only `fields` (an empty body counts as `{}`). */
function jsonObject(bytes: Buffer, fields: readonly string[]): Record<string, unknown> {
  if (bytes.length === 0) return {}
  const body = parseJsonBody(bytes)
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new DruError('INVALID_ARGUMENT', 'body must be a JSON object')
  for (const k of Object.keys(body)) {
    if (!fields.includes(k)) throw new DruError('INVALID_ARGUMENT', `body has an unknown field "${k}"${fields.length ? ` (expected ${fields.join(', ')})` : ' (expected {})'}`)
  }
  return body as Record<string, unknown>
}

/** `?deep`, `?deep=1`, `?deep=true` are on; absent, `0`, `false` are off; anything else is refused. */
function flag(url: URL, name: string): boolean {
  const v = url.searchParams.get(name)
  if (v === null || v === '0' || v === 'false') return false
  if (v === '' || v === '1' || v === 'true') return true
  throw new DruError('INVALID_ARGUMENT', `${name} must be 1/true or 0/false (got ${JSON.stringify(v)})`)
}

/**
 * Runs a long operation. A client that accepts NDJSON gets `{"progress":…}` lines as the
 * work advances, then one `{"result":…}` or `{"error":{code,message}}` line; any other
 * client gets the plain JSON result (or error) when it is done.
 */
async function runOperation(ctx: RequestContext, op: (progress: ProgressFn) => unknown): Promise<void> {
  const { req, res } = ctx
  const streaming = (req.headers.accept ?? '').includes(NDJSON_CONTENT_TYPE)
  if (!streaming) {
    sendJson(res, 200, await op(() => {}))
    return
  }
  res.writeHead(200, { 'content-type': NDJSON_CONTENT_TYPE, 'cache-control': 'no-store' })
  const progress: ProgressFn = (p) => {
    if (!res.writableEnded && !res.destroyed) res.write(`${JSON.stringify({ progress: p })}\n`)
  }
  const result = await op(progress)
  res.end(`${JSON.stringify({ result })}\n`)
}

function endStreamWithError(res: ServerResponse, err: unknown): void {
  if (res.writableEnded || res.destroyed) return
  res.end(`${JSON.stringify({ error: errorBody(err) })}\n`)
}

async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > maxBytes) throw tooLarge(maxBytes)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > maxBytes) throw tooLarge(maxBytes)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

function tooLarge(maxBytes: number): DruError {
  return new DruError('INVALID_ARGUMENT', `request body exceeds ${maxBytes} bytes`, { details: { status: 413 } })
}

function parseJsonBody(bytes: Buffer): unknown {
  if (bytes.length === 0) throw new DruError('INVALID_ARGUMENT', 'request body is empty; expected JSON')
  try {
    return JSON.parse(bytes.toString('utf8'))
  } catch (err) {
    throw new DruError('MALFORMED', `request body is not JSON: ${(err as Error).message}`)
  }
}

function errorBody(err: unknown): { code: string; message: string } {
  if (isDruError(err)) return { code: err.code, message: err.message }
  return { code: 'INTERNAL', message: `internal error: ${err instanceof Error ? err.message : String(err)}` }
}

function sendError(res: ServerResponse, err: unknown, status?: number): void {
  const explicit = isDruError(err) && typeof err.details.status === 'number' ? err.details.status : undefined
  const code = isDruError(err) ? httpStatusForCode(err.code) : 500
  const body = errorBody(err)
  // A request whose body we refuse may still be uploading; close rather than drain it.
  if (explicit === 413) res.setHeader('connection', 'close')
  sendJson(res, status ?? explicit ?? code, body)
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(body)}\n`)
}

function send(res: ServerResponse, status: number, contentType: string, text: string): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  })
  res.end(res.req.method === 'HEAD' ? undefined : text)
}
