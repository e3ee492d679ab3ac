import { DruError, isReady, type LifecycleState } from '@dru/core'
import type {
  CompactJson,
  ConflictFilter,
  ConflictJson,
  DecommissionJson,
  GapsJson,
  InboxEntryJson,
  InboxFilterJson,
  InboxListJson,
  InboxRequeueJson,
  InboxForgetJson,
  InboxRetryJson,
  ProgressFn,
  RepairJson,
  ResolveJson,
  StatusJson,
  UnquarantineJson,
  VerifyJson,
} from './admin-api.js'
import {
  PROMETHEUS_CONTENT_TYPE,
  flag,
  intParam,
  jsonObject,
  parseJsonBody,
  readBody,
  runOperation,
  send,
  sendJson,
  type RequestContext,
} from './admin-io.js'
import { serveDashboard } from './admin-ui/index.js'

/**
 * Every endpoint of the admin API, by area, and the {@link AdminSource} they serve (the port
 * between the HTTP server and a DRU, so tests drive the server with a fake). Each handler
 * only checks its input and hands it to the source; admission (Host, Origin, token,
 * content type) happened before routing, in `admin-guard.ts`. One file, not one per area:
 * the handlers are a few lines each, and the whole table of endpoints reads in one place.
 *
 * @module
 */

/**
 * What the admin server serves. Throw {@link DruError}s for expected failures
 * (`NOT_FOUND` for an unknown conflict, `INVALID_ARGUMENT` for a bad value); the code
 * picks the HTTP status. Optional operations answer 501 `NOT_SUPPORTED` when absent.
 */
export interface AdminSource {
  /** Readiness weight in percent (`/readyz`); cheap and synchronous. */
  readyWeight(): number
  /** Current lifecycle state (drives `/readyz`); must be cheap and synchronous. */
  state(): LifecycleState
  status(): StatusJson | Promise<StatusJson>
  /** Prometheus text. */
  metrics(): string | Promise<string>
  gaps(): GapsJson | Promise<GapsJson>
  verify(opts: { deep: boolean }, progress: ProgressFn): VerifyJson | Promise<VerifyJson>
  /** Rebuilds documents from the log, then verifies deep (ids already checked to be a non-empty list of strings). */
  repair?(docIds: readonly string[], progress: ProgressFn): RepairJson | Promise<RepairJson>
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
    list(filter: {
      state: InboxFilterJson
      handler?: string
      limit: number
      after?: number
    }): InboxListJson | Promise<InboxListJson>
    get(id: string): InboxEntryJson | undefined | Promise<InboxEntryJson | undefined>
    retry(id: string): InboxRetryJson | Promise<InboxRetryJson>
    retryDead(handler: string | undefined): InboxRequeueJson | Promise<InboxRequeueJson>
    skip(id: string, reason: string | undefined): InboxEntryJson | Promise<InboxEntryJson>
    forget(handler: string): InboxForgetJson | Promise<InboxForgetJson>
  }
}

/** Handles one matched request; throw a DruError to answer with its code's status. */
export type Handler = (ctx: RequestContext) => Promise<void>

/** One endpoint: method, path pattern, a name for error reports, and its handler. */
export interface Route {
  readonly method: 'GET' | 'POST'
  readonly pattern: RegExp
  readonly name: string
  readonly handler: Handler
}

/** A {@link Route}. */
function route(method: Route['method'], pattern: RegExp, name: string, handler: Handler): Route {
  return { method, pattern, name, handler }
}

/** Every endpoint. Routes sharing a path keep their order: it is the order of the `allow` header. */
export function adminRoutes(source: AdminSource, maxBody: number): Route[] {
  return [
    ...readRoutes(source),
    ...operationRoutes(source, maxBody),
    ...conflictRoutes(source, maxBody),
    ...peerRoutes(source, maxBody),
    ...inboxRoutes(source, maxBody),
  ]
}

/** Probes and reads: `/healthz`, `/readyz` (for load balancers and orchestrators), `/status`, `/metrics` and `/gaps`. */
function readRoutes(source: AdminSource): Route[] {
  return [
    route('GET', /^\/healthz$/, 'healthz', async ({ res }) => sendJson(res, 200, { ok: true })),
    route('GET', /^\/readyz$/, 'readyz', async ({ res }) => {
      const state = source.state()
      const ready = isReady(state)
      sendJson(res, ready ? 200 : 503, { ready, state, weight: source.readyWeight() })
    }),
    route('GET', /^\/status$/, 'status', async ({ res }) => sendJson(res, 200, await source.status())),
    route('GET', /^\/metrics$/, 'metrics', async ({ res }) => {
      const text = await source.metrics()
      send(res, 200, PROMETHEUS_CONTENT_TYPE, text)
    }),
    route('GET', /^\/ui((?:\/[^/]+)*)$/, 'ui', async ({ req, res, params }) =>
      serveDashboard(req, res, `/ui${params[0]}`),
    ),
    route('GET', /^\/gaps$/, 'gaps', async ({ res }) => sendJson(res, 200, await source.gaps())),
  ]
}

/** Long operations, streamed as NDJSON progress when the client asks: `POST /verify`, `POST /repair` and `POST /compact`. */
function operationRoutes(source: AdminSource, maxBody: number): Route[] {
  return [
    route('POST', /^\/verify$/, 'verify', async (ctx) => {
      await readBody(ctx.req, maxBody)
      const deep = flag(ctx.url, 'deep')
      await runOperation(ctx, (progress) => source.verify({ deep }, progress))
    }),
    route('POST', /^\/repair$/, 'repair', async (ctx) => {
      const body = parseJsonBody(await readBody(ctx.req, maxBody))
      const docs = (body as { docs?: unknown } | null)?.docs
      if (
        body === null ||
        typeof body !== 'object' ||
        Array.isArray(body) ||
        Object.keys(body).some((k) => k !== 'docs') ||
        !Array.isArray(docs) ||
        docs.length === 0 ||
        !docs.every((d) => typeof d === 'string')
      ) {
        throw new DruError(
          'INVALID_ARGUMENT',
          'body must be a JSON object {"docs": ["<doc id>", …]} naming 1 or more documents',
        )
      }
      const repair = source.repair?.bind(source)
      if (!repair) throw new DruError('NOT_SUPPORTED', 'this DRU does not offer repair')
      await runOperation(ctx, (progress) => repair(docs as string[], progress))
    }),
    route('POST', /^\/compact$/, 'compact', async (ctx) => {
      await readBody(ctx.req, maxBody)
      const compact = source.compact?.bind(source)
      if (!compact) throw new DruError('NOT_SUPPORTED', 'this DRU does not offer compaction')
      await runOperation(ctx, (progress) => compact(progress))
    }),
  ]
}

/** Conflicts: `GET /conflicts`, `GET /conflicts/:id` and `POST /conflicts/:id/resolve`. */
function conflictRoutes(source: AdminSource, maxBody: number): Route[] {
  return [
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
  ]
}

/** Peers and membership: `POST /peers/:id/unquarantine` and `POST /decommission/:id`. */
function peerRoutes(source: AdminSource, maxBody: number): Route[] {
  return [
    route('POST', /^\/peers\/([^/]+)\/unquarantine$/, 'unquarantine', async ({ req, res, params }) => {
      await readBody(req, maxBody)
      const unquarantine = source.unquarantine?.bind(source)
      if (!unquarantine) throw new DruError('NOT_SUPPORTED', 'this DRU has no peers to unquarantine')
      sendJson(res, 200, await unquarantine(params[0]!))
    }),
    route('POST', /^\/decommission\/([^/]+)$/, 'decommission', async ({ req, res, params, url }) => {
      await readBody(req, maxBody)
      const decommission = source.decommission?.bind(source)
      if (!decommission)
        throw new DruError('NOT_SUPPORTED', 'this DRU runs without peers: there is no membership to change')
      sendJson(res, 200, await decommission(params[0]!, flag(url, 'force')))
    }),
  ]
}

/** The inbox (events handlers owe): `GET /inbox`, `GET /inbox/:id`, `POST /inbox/:id/retry|skip`, `POST /inbox/retry-dead` and `POST /inbox/forget`. */
function inboxRoutes(source: AdminSource, maxBody: number): Route[] {
  return [
    route('GET', /^\/inbox$/, 'inbox', async ({ res, url }) => {
      const state = url.searchParams.get('state') ?? 'open'
      if (!['open', 'pending', 'waiting', 'dead', 'skipped', 'all'].includes(state)) {
        throw new DruError(
          'INVALID_ARGUMENT',
          `state must be open, pending, waiting, dead, skipped or all (got ${JSON.stringify(state)})`,
        )
      }
      const limit = intParam(url, 'limit', 100, 1, 1000)
      const after = url.searchParams.has('after') ? intParam(url, 'after', 0, 0, Number.MAX_SAFE_INTEGER) : undefined
      const handler = url.searchParams.get('handler') ?? undefined
      sendJson(
        res,
        200,
        await inboxOf(source).list({
          state: state as InboxFilterJson,
          limit,
          ...(handler !== undefined ? { handler } : {}),
          ...(after !== undefined ? { after } : {}),
        }),
      )
    }),
    route('GET', /^\/inbox\/([^/]+)$/, 'inbox-entry', async ({ res, params }) => {
      const entry = await inboxOf(source).get(params[0]!)
      if (entry === undefined) throw new DruError('NOT_FOUND', `no inbox entry ${JSON.stringify(params[0])}`)
      sendJson(res, 200, entry)
    }),
    route('POST', /^\/inbox\/retry-dead$/, 'inbox-retry-dead', async ({ req, res }) => {
      const body = jsonObject(await readBody(req, maxBody), ['handler'])
      if (body.handler !== undefined && typeof body.handler !== 'string')
        throw new DruError('INVALID_ARGUMENT', 'handler must be a string')
      sendJson(res, 200, await inboxOf(source).retryDead(body.handler as string | undefined))
    }),
    route('POST', /^\/inbox\/forget$/, 'inbox-forget', async ({ req, res }) => {
      const body = jsonObject(await readBody(req, maxBody), ['handler'])
      if (typeof body.handler !== 'string') throw new DruError('INVALID_ARGUMENT', 'handler (a string) is required')
      sendJson(res, 200, await inboxOf(source).forget(body.handler))
    }),
    route('POST', /^\/inbox\/([^/]+)\/retry$/, 'inbox-retry', async ({ req, res, params }) => {
      jsonObject(await readBody(req, maxBody), [])
      sendJson(res, 200, await inboxOf(source).retry(params[0]!))
    }),
    route('POST', /^\/inbox\/([^/]+)\/skip$/, 'inbox-skip', async ({ req, res, params }) => {
      const body = jsonObject(await readBody(req, maxBody), ['reason'])
      if (body.reason !== undefined && typeof body.reason !== 'string')
        throw new DruError('INVALID_ARGUMENT', 'reason must be a string')
      sendJson(res, 200, await inboxOf(source).skip(params[0]!, body.reason as string | undefined))
    }),
  ]
}

function inboxOf(source: AdminSource): NonNullable<AdminSource['inbox']> {
  if (!source.inbox) throw new DruError('NOT_SUPPORTED', 'this DRU has no inbox')
  return source.inbox
}
