// ingest microbench: events as the wire decoder builds them (hashedEvent), stored in batches like a catch-up receiver
import { mkdtempSync, rmSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GENESIS_HASH, encodeHlc, hashedEvent, sealEventFields } from '@dru/core'
import { EventStore } from '@dru/store-sqlite'
const N = Number(process.argv[2] ?? 200_000), BATCH = 4400, ROUNDS = Number(process.argv[3] ?? 3)
const sealed = []
let prev = GENESIS_HASH
for (let k = 0; k < N; k++) {
  const e = sealEventFields('a/1', k + 1, encodeHlc({ wall: 1_700_000_000_000 + k, counter: 0, node: 'a/1' }), `doc-${k % 10000}`, randomBytes(200), prev)
  prev = e.hash; sealed.push(e)
}
const rates = []
for (let r = 0; r < ROUNDS; r++) {
  const dir = mkdtempSync(join(tmpdir(), 'ing-'))
  const store = EventStore.open({ path: join(dir, 'dru.db'), druId: 'b', durability: 'process' })
  if (process.env.CKPT) store.db.pragma('wal_autocheckpoint = ' + process.env.CKPT)
  // as the wire decoder: events built (and hashed) per batch, inside the timing
  const t0 = performance.now()
  for (let i = 0; i < N; i += BATCH) store.ingest(sealed.slice(i, i + BATCH).map((e) => hashedEvent(e)))
  const s = (performance.now() - t0) / 1000
  rates.push(Math.round(N / s))
  store.close(); rmSync(dir, { recursive: true, force: true })
}
console.log('ingest ev/s', rates.join(' '))
