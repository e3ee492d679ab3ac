/**
 * @module
 * The live dashboard the admin server serves at `GET /ui`: one HTML page, its script and
 * style sheet, all held as strings in this package (no build step, no network fetch at run
 * time). The page is read-only: it polls `/status`, `/gaps` and `/conflicts` on its own
 * origin, and its one action (resolving a conflict) goes through the ordinary guarded
 * `POST /conflicts/:id/resolve` with the operator's token.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { DASHBOARD_CSS } from './dashboard-css.js'
import { DASHBOARD_HTML } from './dashboard-html.js'
import { DASHBOARD_SCRIPT } from './dashboard-script.js'

export { DASHBOARD_POLL_MS } from './dashboard-script.js'

/**
 * Only what this server serves, scripts included: no inline script or style, no other
 * origin, no framing (a framed page could be tricked into clicking "keep"), no plugins.
 */
export const DASHBOARD_CSP =
  "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"

const FAVICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="6" fill="#2f7d4f"/></svg>\n'

interface DashboardAsset {
  readonly contentType: string
  readonly body: string
}

const ASSETS: ReadonlyMap<string, DashboardAsset> = new Map([
  ['/ui', { contentType: 'text/html; charset=utf-8', body: DASHBOARD_HTML }],
  ['/ui/app.js', { contentType: 'text/javascript; charset=utf-8', body: DASHBOARD_SCRIPT }],
  ['/ui/style.css', { contentType: 'text/css; charset=utf-8', body: DASHBOARD_CSS }],
  ['/ui/favicon.svg', { contentType: 'image/svg+xml', body: FAVICON_SVG }],
])

/**
 * The dashboard's static files. They hold no data of the DRU and trigger nothing, so, like
 * the probes, they load without the token off loopback (a browser cannot add a header to a
 * navigation); every JSON read the page then makes is admitted by the usual rules.
 */
export const DASHBOARD_PATHS: ReadonlySet<string> = new Set(ASSETS.keys())

/**
 * Answers a GET or HEAD for a dashboard path (the admin server has already admitted the
 * request): the asset with a strict Content-Security-Policy, or a JSON 404.
 */
export function serveDashboard(req: IncomingMessage, res: ServerResponse, path: string): void {
  const asset = ASSETS.get(path)
  if (!asset) {
    const body = `${JSON.stringify({ code: 'NOT_FOUND', message: `no dashboard file ${path}` })}\n`
    res.writeHead(404, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    })
    res.end(req.method === 'HEAD' ? undefined : body)
    return
  }
  res.writeHead(200, {
    'content-type': asset.contentType,
    'content-length': Buffer.byteLength(asset.body),
    // The page and its script change with the package version; a stale mix would misdraw.
    'cache-control': 'no-store',
    'content-security-policy': DASHBOARD_CSP,
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cross-origin-resource-policy': 'same-origin',
  })
  res.end(req.method === 'HEAD' ? undefined : asset.body)
}
