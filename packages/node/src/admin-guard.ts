import { createHash, timingSafeEqual } from 'node:crypto'
import { hostname, networkInterfaces } from 'node:os'
import { DruError } from '@dru/core'
import { DASHBOARD_PATHS } from './admin-ui/index.js'

/**
 * Who may talk to the admin API: the checks every request passes before routing (allowed
 * `Host`, no foreign `Origin`, the token, JSON for a POST) and the host names the server
 * answers to. Pure apart from reading this machine's interfaces, so every rule is tested
 * apart from sockets.
 *
 * @module
 */

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
export function admitAdminRequest(
  req: AdminRequestHead,
  policy: { allowedHosts: ReadonlySet<string>; loopback: boolean; token: string | undefined },
): void {
  const host = (req.host ?? '').toLowerCase()
  if (!policy.allowedHosts.has(host)) {
    throw new DruError(
      'FORBIDDEN',
      `this admin API does not answer to Host ${JSON.stringify(host.slice(0, 100))}; add it to admin.allowedHosts if it is yours`,
    )
  }
  if (req.origin !== undefined && req.origin.toLowerCase() !== `http://${host}`) {
    throw new DruError(
      'FORBIDDEN',
      `requests from another origin (${req.origin.slice(0, 100)}) are refused: the admin API is not for web pages`,
    )
  }
  // The dashboard's static files hold no data (see admin-ui): a browser loads them as the probes load.
  const needsToken =
    req.method === 'POST' || (!policy.loopback && !PROBES.has(req.path) && !DASHBOARD_PATHS.has(req.path))
  if (needsToken && policy.token !== undefined && !tokenMatches(policy.token, req.authorization)) {
    throw new DruError(
      'UNAUTHORIZED',
      'this admin API needs its token: send authorization: Bearer <token> (dru: --token-file or DRU_ADMIN_TOKEN)',
    )
  }
  if (req.method === 'POST' && !/^application\/json\s*(;|$)/i.test(req.contentType ?? '')) {
    throw new DruError('INVALID_ARGUMENT', 'POST requests must be content-type: application/json', {
      details: { status: 415 },
    })
  }
}

/** `0.0.0.0` and `::` listen on every interface. */
export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]'
}

/** This machine's interface addresses (without scoped link-local ones, which no Host header names plainly) and host name. */
export function machineNames(): { interfaces: string[]; machineName: string } {
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
export function adminHostNames(o: {
  bound: string
  address?: string
  port: number
  extra: readonly string[]
  interfaces?: readonly string[]
  machineName?: string
}): Set<string> {
  const names = [
    o.bound,
    o.address ?? '',
    'localhost',
    '127.0.0.1',
    '::1',
    ...(o.interfaces ?? []),
    ...(o.machineName ? [o.machineName] : []),
    ...o.extra,
  ]
  const withPort = (n: string): string => {
    const name = n.toLowerCase()
    if (/^\[[^\]]*\]:\d+$/.test(name) || /^[^:]*:\d+$/.test(name)) return name
    // A bare IPv6 address is written in brackets in a Host header.
    const bracketed = name.includes(':') && !name.startsWith('[') ? `[${name}]` : name
    return `${bracketed}:${o.port}`
  }
  return new Set(names.filter((n) => n !== '').map(withPort))
}
