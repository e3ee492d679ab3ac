import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Dru, DruConfig } from '@dru/node'

/** What a control route handler gets: the query, the raw body and, for a prefix route, the rest of the path. */
export interface ControlRequest {
  query: URLSearchParams
  body: string
  rest: string
}

/** Answers a control request with a JSON body (status 200), or throws (see {@link statusForError}). */
export type ControlHandler = (request: ControlRequest) => unknown

/**
 * What a test adds to the common DRU child ({@link DruProcess}'s `plugin`): an ES module
 * with these named exports, loaded by the child before it opens the DRU.
 */
export interface DruChildPlugin {
  /** Adjusts the config read from the file before `openDru` (e.g. an injected clock). */
  configure?(config: DruConfig): DruConfig
  /** Runs once the DRU is open: registers event handlers and adds control routes. */
  install?(dru: Dru, routes: ControlRoutes): void | Promise<void>
}

/**
 * The HTTP status a failed control request answers: the two refusals a client must tell
 * apart get their own (503 not writable, 504 no ack in time), any other coded DruError is
 * a 400 refusal, anything else a 500.
 */
export function statusForError(err: unknown): number {
  const code = (err as { code?: unknown } | undefined)?.code
  if (code === 'NOT_WRITABLE') return 503
  if (code === 'ACK_TIMEOUT') return 504
  return typeof code === 'string' ? 400 : 500
}

/** The control API's routing table: exact paths, and prefixes that pass the rest of the path on. */
export class ControlRoutes {
  readonly #exact = new Map<string, ControlHandler>()
  readonly #prefixes: Array<{ method: string; prefix: string; handler: ControlHandler }> = []

  /** Adds `METHOD path`; a later route replaces an earlier one. */
  add(method: string, path: string, handler: ControlHandler): void {
    this.#exact.set(`${method} ${path}`, handler)
  }

  /** Adds every `METHOD prefix…` path; the handler gets the rest of the path as `rest`. */
  addPrefix(method: string, prefix: string, handler: ControlHandler): void {
    this.#prefixes.push({ method, prefix, handler })
  }

  /** Reads the request, runs its route and writes the JSON answer; never throws. */
  async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    }
    try {
      const chunks: Buffer[] = []
      for await (const chunk of req) chunks.push(chunk as Buffer)
      const url = new URL(req.url ?? '/', 'http://control.invalid')
      const request = { query: url.searchParams, body: Buffer.concat(chunks).toString('utf8'), rest: '' }
      const exact = this.#exact.get(`${req.method} ${url.pathname}`)
      if (exact) return reply(200, (await exact(request)) ?? null)
      const byPrefix = this.#prefixes.find((r) => r.method === req.method && url.pathname.startsWith(r.prefix))
      if (!byPrefix) return reply(404, { code: 'NOT_FOUND', message: `no route ${req.method} ${url.pathname}` })
      request.rest = decodeURIComponent(url.pathname.slice(byPrefix.prefix.length))
      return reply(200, (await byPrefix.handler(request)) ?? null)
    } catch (err) {
      const e = err as { code?: string; message?: string; details?: unknown }
      reply(statusForError(err), {
        code: e?.code ?? 'INTERNAL',
        message: e?.message ?? String(err),
        details: e?.details,
      })
    }
  }
}
