import type { IncomingMessage, ServerResponse } from 'node:http'
import { DruError, isDruError } from '@dru/core'
import { httpStatusForCode, type ProgressFn } from './admin-api.js'

/**
 * Reading admin requests and writing answers: bodies with a size cap, JSON and query
 * parameters checked into INVALID_ARGUMENT, errors as `{code, message}` with the code's
 * HTTP status, and long operations streamed as NDJSON progress lines.
 *
 * @module
 */

/** One request as a handler sees it: `params` are the pattern's groups, percent-decoded. */
export interface RequestContext {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly url: URL
  readonly params: readonly string[]
}

/** Content type of Prometheus text exposition format 0.0.4. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
/** Content type of streamed operations: one JSON object per line. */
export const NDJSON_CONTENT_TYPE = 'application/x-ndjson'

/** An integer query parameter in [min, max], `fallback` when absent; INVALID_ARGUMENT otherwise. */
export function intParam(url: URL, name: string, fallback: number, min: number, max: number): number {
  const v = url.searchParams.get(name)
  if (v === null) return fallback
  const n = Number(v)
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max)
    throw new DruError('INVALID_ARGUMENT', `${name} must be an integer in ${min}..${max} (got ${JSON.stringify(v)})`)
  return n
}

/** A POST body that is an empty object or one with only `fields` (an empty body counts as `{}`). */
export function jsonObject(bytes: Buffer, fields: readonly string[]): Record<string, unknown> {
  if (bytes.length === 0) return {}
  const body = parseJsonBody(bytes)
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new DruError('INVALID_ARGUMENT', 'body must be a JSON object')
  for (const k of Object.keys(body)) {
    if (!fields.includes(k))
      throw new DruError(
        'INVALID_ARGUMENT',
        `body has an unknown field "${k}"${fields.length ? ` (expected ${fields.join(', ')})` : ' (expected {})'}`,
      )
  }
  return body as Record<string, unknown>
}

/** `?deep`, `?deep=1`, `?deep=true` are on; absent, `0`, `false` are off; anything else is refused. */
export function flag(url: URL, name: string): boolean {
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
export async function runOperation(ctx: RequestContext, op: (progress: ProgressFn) => unknown): Promise<void> {
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

/** Ends a started NDJSON stream with an `{"error":…}` line (the status line is already sent). */
export function endStreamWithError(res: ServerResponse, err: unknown): void {
  if (res.writableEnded || res.destroyed) return
  res.end(`${JSON.stringify({ error: errorBody(err) })}\n`)
}

/** The request body, refused (413) beyond `maxBytes`, declared or sent. */
export async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
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

/** A non-empty body parsed as JSON (INVALID_ARGUMENT when empty, MALFORMED when not JSON). */
export function parseJsonBody(bytes: Buffer): unknown {
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

/** Answers `{code, message}` with the code's HTTP status (`status` or the error's own overrides it). */
export function sendError(res: ServerResponse, err: unknown, status?: number): void {
  const explicit = isDruError(err) && typeof err.details.status === 'number' ? err.details.status : undefined
  const code = isDruError(err) ? httpStatusForCode(err.code) : 500
  const body = errorBody(err)
  // A request whose body we refuse may still be uploading; close rather than drain it.
  if (explicit === 413) res.setHeader('connection', 'close')
  sendJson(res, status ?? explicit ?? code, body)
}

/** Answers `body` as JSON. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(body)}\n`)
}

/** Answers `text`, never cached; a HEAD request gets the headers only. */
export function send(res: ServerResponse, status: number, contentType: string, text: string): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  })
  res.end(res.req.method === 'HEAD' ? undefined : text)
}
