#!/usr/bin/env node
/**
 * The demo's application: a tiny order service that embeds a DRU, as a real service
 * would. `POST /orders/:id` merges a JSON object into the order document; `GET
 * /orders/:id` reads it; `GET /orders` lists ids. Each write also appends an audit row
 * in the same SQLite transaction as its event (the outbox).
 *
 * Usage: order-service <config.json> [app-port]   (0 or omitted: any free port)
 *
 * When ready it prints one line: `ready {"app":…,"sync":…,"admin":…}` with the ports it
 * actually bound, so a parent can use port 0 everywhere and never race for ports.
 */
import { readFileSync } from 'node:fs'
import http from 'node:http'
import { openDru, runtimeOf } from '@dru/node'

const [configPath, appPort = '0'] = process.argv.slice(2)
if (!configPath) {
  process.stderr.write('usage: order-service <config.json> [app-port]\n')
  process.exit(2)
}

const config = JSON.parse(readFileSync(configPath, 'utf8')) as Parameters<typeof openDru>[0]
const dru = await openDru(config)
dru.store.db.exec('create table if not exists audit (id integer primary key, doc_id text, note text, at integer)')
const audit = dru.store.db.prepare('insert into audit (doc_id, note, at) values (?, ?, ?)')

function reply(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    try {
      const url = new URL(req.url ?? '/', 'http://x')
      const m = /^\/orders\/([\w.-]+)$/.exec(url.pathname)
      if (req.method === 'GET' && url.pathname === '/orders')
        return reply(res, 200, dru.documents.docIds ? [...dru.documents.docIds()] : [])
      if (!m) return reply(res, 404, { code: 'NOT_FOUND', message: 'unknown path' })
      const id = m[1]!
      if (req.method === 'GET') return reply(res, 200, dru.get(id) ?? null)
      if (req.method !== 'POST') return reply(res, 405, { code: 'NOT_SUPPORTED', message: 'GET or POST' })
      const patch = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>
      const event = dru.transact((tx) => {
        const e = tx.change(id, (doc: Record<string, unknown>) => {
          for (const [k, v] of Object.entries(patch)) doc[k] = v
        })
        audit.run(id, JSON.stringify(patch), Date.now())
        return e
      })
      return reply(res, 200, { ok: true, event: event ? { origin: event.origin, seq: event.seq } : null })
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'INTERNAL'
      return reply(res, code === 'NOT_WRITABLE' ? 503 : 400, { code, message: (err as Error).message })
    }
  })
})
server.listen(Number(appPort), '127.0.0.1', () => {
  const { network, admin } = runtimeOf(dru)
  const ports = {
    app: (server.address() as { port: number }).port,
    sync: network?.sync.port ?? 0,
    admin: admin?.port ?? 0,
  }
  process.stdout.write(`ready ${JSON.stringify(ports)}\n`)
})

const stop = async () => {
  server.close()
  await dru.close()
  process.exit(0)
}
process.on('SIGTERM', () => void stop())
process.on('SIGINT', () => void stop())
