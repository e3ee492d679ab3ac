// A reader reacting to remote events exactly once: every order event another DRU wrote runs
// the handler once, in the transaction that stores the event, so its effect (a row in
// `shipments`) commits with it, across crashes and restarts. Run it with a config from
// `dru init`:
//
//   node examples/event-reader.mjs cluster/eu-west.json
//
// It prints one JSON line per event it handles, then keeps running until SIGINT/SIGTERM.
import { readFileSync } from 'node:fs'
import { basename, dirname, resolve } from 'node:path'
import { openDru } from '@dru/node'

const [configPath] = process.argv.slice(2)
if (!configPath) {
  console.error('usage: node examples/event-reader.mjs <dru config.json>')
  process.exit(2)
}
process.chdir(dirname(resolve(configPath)))
const dru = await openDru(JSON.parse(readFileSync(basename(configPath), 'utf8')))

// Named and stable across restarts: events this handler still owes are kept under its name.
// `order: 'document'` hands each order's events over in the order they were stored.
dru.onEvent(
  'shipments',
  (event, tx) => {
    // The effect goes through tx.db: it commits with the event, or not at all (then it is retried).
    // The table is created here, not at start: writes may be refused until this DRU has caught
    // up, but handlers run inside the storing transaction, which is always allowed.
    tx.db.exec('create table if not exists shipments (doc text, origin text, seq integer, primary key (origin, seq))')
    tx.db.prepare('insert into shipments values (?, ?, ?)').run(event.docId, event.origin, event.seq)
    console.log(JSON.stringify({ doc: event.docId, origin: event.origin, seq: event.seq, attempt: tx.attempt }))
  },
  { order: 'document' },
)
console.log(JSON.stringify({ ready: dru.id }))

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    await dru.close()
    process.exit(0)
  })
}
