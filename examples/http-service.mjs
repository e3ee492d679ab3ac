// An order service embedding a DRU: every write goes into the service's own table and into
// the replicated order document in ONE SQLite transaction (the outbox), so a crash never keeps
// one without the other. Run it with a config from `dru init`:
//
//   node examples/http-service.mjs cluster/us-east.json [port]
//   curl -X POST localhost:8080/orders/o-1 -H 'content-type: application/json' -d '{"total": 7}'
//   curl localhost:8080/orders/o-1
//
// It prints `listening http://127.0.0.1:PORT` once it serves (port 0 picks a free one).
import { createServer } from 'node:http'
import { readFileSync } from 'node:fs'
import { basename, dirname, resolve } from 'node:path'
import { openDru } from '@dru/node'

const [configPath, port = '8080'] = process.argv.slice(2)
if (!configPath) {
  console.error('usage: node examples/http-service.mjs <dru config.json> [port]')
  process.exit(2)
}
// The config's file references (database, secret, keys, token) are relative to its folder.
process.chdir(dirname(resolve(configPath)))
const dru = await openDru(JSON.parse(readFileSync(basename(configPath), 'utf8')))
// Writes wait until this DRU accepts them (a restored DRU first gets its own earlier events back).
await dru.ready({ state: 'writable' })
dru.transact((tx) => tx.db.exec('create table if not exists order_audit (order_id text, total integer, at integer)'))

const server = createServer(async (req, res) => {
  const reply = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(JSON.stringify(body))
  }
  const match = /^\/orders\/([A-Za-z0-9_-]{1,64})$/.exec(req.url ?? '')
  if (!match) return reply(404, { error: 'not found' })
  const id = match[1]
  try {
    if (req.method === 'GET') {
      const order = dru.get(id)
      return order === undefined ? reply(404, { error: 'no such order' }) : reply(200, order)
    }
    if (req.method !== 'POST') return reply(405, { error: 'GET or POST' })
    let body = ''
    for await (const chunk of req) body += chunk
    const { total } = JSON.parse(body || '{}')
    if (!Number.isInteger(total)) return reply(400, { error: 'total must be an integer' })
    // One transaction: the audit row and the document change commit together or not at all.
    dru.transact((tx) => {
      tx.db.prepare('insert into order_audit values (?, ?, ?)').run(id, total, Date.now())
      tx.change(id, (order) => {
        order.total = total
        order.status ??= 'placed'
      })
    })
    reply(200, dru.get(id))
  } catch (err) {
    // DruError codes (NOT_WRITABLE, INVALID_VALUE, STORAGE_FULL, …) say what went wrong.
    reply(err.code === 'NOT_WRITABLE' ? 503 : 500, { error: err.message, code: err.code })
  }
})
server.listen(Number(port), '127.0.0.1', () => console.log(`listening http://127.0.0.1:${server.address().port}`))

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () =>
    server.close(async () => {
      await dru.close()
      process.exit(0)
    }),
  )
}
