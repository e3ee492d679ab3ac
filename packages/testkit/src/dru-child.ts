#!/usr/bin/env node
/**
 * The child process {@link DruProcess} spawns: a DRU opened with `openDru` from the built
 * packages, as a real service runs it, driven over a small HTTP control API on 127.0.0.1.
 *
 * Usage: `node dru-child.js <config.json> [plugin.mjs]`. Once up it prints one line,
 * `ready {"control":…,"sync":…,"admin":"http://…"}` (every port chosen by the OS); any
 * other stdout line is the DRU's own log or a plugin's. It exits when its stdin ends (the
 * parent is gone, however it died) and closes the DRU on SIGTERM or SIGINT.
 *
 *   GET  /status                         id, origin, lifecycle state, fingerprint, pid
 *   GET  /docs/:id                       the document as JSON (null when absent)
 *   POST /docs/:id?acks=K&timeoutMs=M    merges the JSON body's fields into the document
 *   POST /backup?to=FILE                 online copy of the SQLite file
 *
 * Errors answer `{ code, message, details? }`: 503 for NOT_WRITABLE, 504 for ACK_TIMEOUT,
 * 400 for any other coded refusal, 500 otherwise. A plugin adds handlers and routes
 * ({@link DruChildPlugin}).
 */
import http from 'node:http'
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { pathToFileURL } from 'node:url'
import { openDru, runtimeOf, type Dru, type DruConfig } from '@dru/node'
import { ControlRoutes, type DruChildPlugin } from './dru-control.js'

const [configPath, pluginPath] = process.argv.slice(2)
if (!configPath) throw new Error('usage: dru-child.js <config.json> [plugin.mjs]')
const plugin: DruChildPlugin = pluginPath ? await import(pathToFileURL(pluginPath).href) : {}
const fileConfig = JSON.parse(readFileSync(configPath, 'utf8')) as DruConfig
const dru = await openDru(plugin.configure ? plugin.configure(fileConfig) : fileConfig)

const routes = new ControlRoutes()
routes.add('GET', '/status', () => ({
  id: dru.id,
  origin: dru.store.origin,
  state: dru.state(),
  fingerprint: dru.fingerprint(),
  pid: process.pid,
}))
routes.add('POST', '/backup', async ({ query }) => {
  await dru.store.db.backup(query.get('to') ?? '')
  return { ok: true, origin: dru.store.origin, vv: dru.store.vv() }
})
routes.addPrefix('GET', '/docs/', ({ rest }) => readDoc(dru, rest))
routes.addPrefix('POST', '/docs/', ({ rest, query, body }) => mergeIntoDoc(dru, rest, query, body))
await plugin.install?.(dru, routes)

function readDoc(d: Dru, id: string): unknown {
  return d.get(id) ?? null
}

async function mergeIntoDoc(d: Dru, id: string, query: URLSearchParams, body: string): Promise<unknown> {
  const patch = JSON.parse(body || '{}') as Record<string, unknown>
  const r = await d.change(
    id,
    (doc: Record<string, unknown>) => {
      for (const [k, v] of Object.entries(patch)) doc[k] = v
    },
    { acks: Number(query.get('acks') ?? 0), timeoutMs: Number(query.get('timeoutMs') ?? 2000) },
  )
  return { ok: true, event: r.event && r.event.origin ? { origin: r.event.origin, seq: r.event.seq } : null }
}

const server = http.createServer((req, res) => void routes.serve(req, res))
server.listen(0, '127.0.0.1', () => {
  const { network, admin } = runtimeOf(dru)
  const ready = {
    control: (server.address() as AddressInfo).port,
    sync: network?.sync.port ?? 0,
    admin: admin?.url ?? '',
  }
  process.stdout.write(`ready ${JSON.stringify(ready)}\n`)
})

// The parent holds our stdin open: when it dies, however, stdin ends and so do we, so no
// DRU outlives its test.
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()

const stop = async (): Promise<void> => {
  server.close()
  await dru.close()
  process.exit(0)
}
process.on('SIGTERM', () => void stop())
process.on('SIGINT', () => void stop())
