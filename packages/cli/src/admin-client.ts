import { CliError, ExitCode, exitCodeForDruCode } from './exit-codes.js'
import type { Progress } from './progress.js'

/** Content type of streamed admin operations (one JSON object per line). */
const NDJSON = 'application/x-ndjson'

/** Options for {@link createAdminClient}. */
export interface AdminClientOptions {
  /** Base URL of the DRU's admin HTTP, e.g. `http://127.0.0.1:7401`. */
  readonly baseUrl: string
  /** Per request; for streamed operations, the longest silence between lines. */
  readonly timeoutMs: number
  /** The admin token, sent as `authorization: Bearer …`. */
  readonly token?: string
}

/** A small JSON client for a DRU's admin HTTP API, mapping every failure to a {@link CliError}. */
export interface AdminClient {
  readonly baseUrl: string
  get<T>(path: string): Promise<T>
  post<T>(path: string, body?: unknown): Promise<T>
  /** POSTs a long operation, reporting `{"progress":…}` lines as they arrive; resolves to the result. */
  stream<T>(path: string, onProgress: (p: Progress) => void, body?: unknown): Promise<T>
}

/** Creates a client; nothing is contacted until the first call. */
export function createAdminClient(options: AdminClientOptions): AdminClient {
  const base = options.baseUrl.replace(/\/+$/, '')
  const sentToken = Boolean(options.token)

  async function send(
    method: string,
    path: string,
    body: unknown,
    accept: string,
  ): Promise<{ res: Response; timer: Timer }> {
    const timer = new Timer(options.timeoutMs)
    try {
      const res = await fetch(`${base}${path}`, {
        method,
        // Every POST is JSON (the admin API refuses anything else: a web page cannot send it cross-site).
        headers: {
          accept,
          ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        },
        body: body === undefined ? (method === 'POST' ? '{}' : undefined) : JSON.stringify(body),
        signal: timer.signal,
      })
      return { res, timer }
    } catch (err) {
      timer.stop()
      throw connectionError(err, base, options.timeoutMs)
    }
  }

  async function json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const { res, timer } = await send(method, path, body, 'application/json')
    let text: string
    try {
      text = await res.text()
    } catch (err) {
      throw connectionError(err, base, options.timeoutMs)
    } finally {
      timer.stop()
    }
    const parsed = parseJson(text, `${method} ${path}`)
    if (!res.ok) throw remoteError(res.status, parsed, `${method} ${path}`, sentToken)
    return parsed as T
  }

  return {
    baseUrl: base,
    get: (path) => json('GET', path),
    post: (path, body) => json('POST', path, body),
    async stream<T>(path: string, onProgress: (p: Progress) => void, body?: unknown): Promise<T> {
      const { res, timer } = await send('POST', path, body, NDJSON)
      try {
        if (!(res.headers.get('content-type') ?? '').startsWith(NDJSON)) {
          const parsed = parseJson(await res.text(), `POST ${path}`)
          if (!res.ok) throw remoteError(res.status, parsed, `POST ${path}`, sentToken)
          return parsed as T
        }
        let buffered = ''
        const decoder = new TextDecoder()
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          timer.restart()
          buffered += decoder.decode(chunk, { stream: true })
          let nl: number
          while ((nl = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, nl).trim()
            buffered = buffered.slice(nl + 1)
            if (line === '') continue
            const msg = parseJson(line, `POST ${path}`) as { progress?: Progress; result?: T; error?: unknown }
            if (msg.progress) onProgress(msg.progress)
            else if (msg.error) throw remoteError(500, msg.error, `POST ${path}`, sentToken)
            else if ('result' in msg) return msg.result as T
          }
        }
        throw new CliError(ExitCode.FAILURE, `the DRU at ${base} ended POST ${path} without a result (did it stop?)`)
      } catch (err) {
        if (err instanceof CliError) throw err
        throw connectionError(err, base, options.timeoutMs)
      } finally {
        timer.stop()
      }
    },
  }
}

/** An AbortSignal that fires after `ms` of silence; restartable for streams. */
class Timer {
  readonly #controller = new AbortController()
  readonly #ms: number
  #handle: NodeJS.Timeout | undefined
  constructor(ms: number) {
    this.#ms = ms
    this.restart()
  }
  get signal(): AbortSignal {
    return this.#controller.signal
  }
  restart(): void {
    this.stop()
    if (this.#ms > 0) this.#handle = setTimeout(() => this.#controller.abort(new TimeoutFired()), this.#ms)
  }
  stop(): void {
    if (this.#handle) clearTimeout(this.#handle)
    this.#handle = undefined
  }
}

class TimeoutFired extends Error {
  override readonly name = 'TimeoutFired'
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    const preview = text.length > 80 ? `${text.slice(0, 80)}…` : text
    throw new CliError(
      ExitCode.FAILURE,
      `${what}: the admin endpoint answered something that is not JSON: ${JSON.stringify(preview)}`,
    )
  }
}

/** A DRU's `{code, message}` error body (or anything else) as a CliError. */
function remoteError(status: number, body: unknown, what: string, sentToken: boolean): CliError {
  const b = body as { code?: unknown; message?: unknown } | null
  if (b && typeof b.code === 'string') {
    const message = typeof b.message === 'string' ? b.message : '(no message)'
    if (b.code === 'UNAUTHORIZED') {
      // Say which fix applies: give a token, or give the right one.
      const hint = sentToken
        ? `the DRU's admin API refused the token given (--token-file, DRU_ADMIN_TOKEN or the config's admin token): it is not this DRU's`
        : `the DRU's admin API needs a token: pass --token-file or set DRU_ADMIN_TOKEN`
      return new CliError(ExitCode.UNAUTHORIZED, hint, b.code)
    }
    return new CliError(exitCodeForDruCode(b.code), `${b.code}: ${message}`, b.code)
  }
  return new CliError(ExitCode.FAILURE, `${what} failed with HTTP ${status}`)
}

const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ECONNRESET',
  'UND_ERR_SOCKET',
])

function connectionError(err: unknown, base: string, timeoutMs: number): CliError {
  if (err instanceof CliError) return err
  const e = err as { name?: string; cause?: { code?: string; name?: string }; code?: string }
  if (
    e?.name === 'TimeoutFired' ||
    e?.cause?.name === 'TimeoutFired' ||
    e?.name === 'AbortError' ||
    e?.name === 'TimeoutError'
  ) {
    return new CliError(
      ExitCode.TIMEOUT,
      `the DRU at ${base} did not answer within ${timeoutMs / 1000}s (raise --timeout?)`,
    )
  }
  const code = e?.cause?.code ?? e?.code
  if (code && UNREACHABLE_CODES.has(code)) {
    const why = code === 'ECONNREFUSED' ? 'connection refused' : code
    return new CliError(
      ExitCode.UNREACHABLE,
      `no DRU answering at ${base} (${why}); is it running? Check --admin or DRU_ADMIN`,
    )
  }
  return new CliError(
    ExitCode.UNREACHABLE,
    `cannot reach the DRU at ${base}: ${err instanceof Error ? err.message : String(err)}`,
  )
}
