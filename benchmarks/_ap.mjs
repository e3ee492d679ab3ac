import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EventStore } from '@dru/store-sqlite'
const EVENTS = 100_000, BATCH = 1000
const payloads = Array.from({ length: EVENTS }, (_, i) => { const b = Buffer.alloc(150); for (let k = 0; k + 4 <= 150; k += 4) b.writeUInt32LE((i * 2654435761 + k) >>> 0, k); return b })
const rates = [], lat = []
for (let r = 0; r < 3; r++) {
  const dir = mkdtempSync(join(tmpdir(), 'ap-'))
  const store = EventStore.open({ path: join(dir, 'dru.db'), druId: 'bench', durability: process.env.DUR ?? 'process' })
  const t0 = performance.now()
  for (let i = 0; i < EVENTS; i += BATCH) store.transact((tx) => { for (let k = i; k < i + BATCH; k++) tx.append(`doc-${k % 1000}`, payloads[k]) })
  rates.push(Math.round(EVENTS / ((performance.now() - t0) / 1000)))
  const t1 = performance.now()
  for (let i = 0; i < 2000; i++) store.append('latency', payloads[i])
  lat.push(((performance.now() - t1) / 2000 * 1000).toFixed(0))
  store.close(); rmSync(dir, { recursive: true, force: true })
}
console.log(`append ev/s ${rates.join(' ')}  single-event commit µs ${lat.join(' ')}`)
