// npm run bench:log — event-log append throughput against a raw better-sqlite3 insert of
// the same payload bytes under the same durability setting, in one run, plus
// single-event commit latency. Writes the `bench:log` section of RESULTS.md.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { GENESIS_HASH, encodeHlc, hashedEvent, openUnit, sealEventFields, sealUnits } from '@dru/core'
import { EventStore } from '@dru/store-sqlite'
import { machineLine, percentile, summarize, writeSection } from './results.mjs'

const args = process.argv.slice(2)
const quick = args.includes('--quick')
const EVENTS = quick ? 20_000 : 100_000
const BATCH = 1_000
const PAYLOAD = 150
const LATENCY_SAMPLES = quick ? 300 : 2_000
const RUNS = quick ? 1 : 3

const payloads = Array.from({ length: EVENTS }, (_, i) => {
  const b = Buffer.alloc(PAYLOAD)
  for (let k = 0; k + 4 <= PAYLOAD; k += 4) b.writeUInt32LE((i * 2654435761 + k) >>> 0, k)
  return b
})

function withDir(fn) {
  const dir = mkdtempSync(join(tmpdir(), 'dru-bench-log-'))
  try {
    return fn(dir)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function druAppend(durability) {
  return withDir((dir) => {
    const store = EventStore.open({ path: join(dir, 'dru.db'), druId: 'bench', durability })
    const t0 = performance.now()
    for (let i = 0; i < EVENTS; i += BATCH) {
      store.transact((tx) => {
        for (let k = i; k < i + BATCH; k++) tx.append(`doc-${k % 1000}`, payloads[k])
      })
    }
    const secs = (performance.now() - t0) / 1000
    const latencies = []
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      const s = performance.now()
      store.append('latency', payloads[i])
      latencies.push(performance.now() - s)
    }
    store.close()
    return { rate: EVENTS / secs, latencies }
  })
}

function rawInsert(durability) {
  return withDir((dir) => {
    const db = new Database(join(dir, 'raw.db'))
    db.pragma('locking_mode = EXCLUSIVE')
    db.pragma('journal_mode = WAL')
    db.pragma(`synchronous = ${durability === 'machine' ? 'FULL' : 'NORMAL'}`)
    db.exec('create table raw (id integer primary key, payload blob not null)')
    const insert = db.prepare('insert into raw (payload) values (?)')
    const batch = db.transaction((from) => {
      for (let k = from; k < from + BATCH; k++) insert.run(payloads[k])
    })
    const t0 = performance.now()
    for (let i = 0; i < EVENTS; i += BATCH) batch.immediate(i)
    const secs = (performance.now() - t0) / 1000
    const one = db.transaction((p) => insert.run(p))
    const latencies = []
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      const s = performance.now()
      one.immediate(payloads[i])
      latencies.push(performance.now() - s)
    }
    db.close()
    return { rate: EVENTS / secs, latencies }
  })
}

/** Where the time goes: sealing (encode + sha256 + HLC) alone, and storing events already sealed (the store's own part). */
function breakdown(durability) {
  const t0 = performance.now()
  const sealed = []
  let prev = GENESIS_HASH
  for (let k = 0; k < EVENTS; k++) {
    // As the store's local write path seals (sealEventFields: no input object to spread).
    const e = sealEventFields(
      'bench/1',
      k + 1,
      encodeHlc({ wall: Date.now(), counter: k, node: 'bench/1' }),
      `doc-${k % 1000}`,
      payloads[k],
      prev,
    )
    prev = e.hash
    sealed.push(e)
  }
  const sealRate = EVENTS / ((performance.now() - t0) / 1000)
  const ingestRate = ingestSealed(sealed, durability)
  return { sealRate, ingestRate, ...unitRates() }
}

/**
 * The commit-granular record's unit (@dru/core unit.ts, not yet stored): the same events,
 * each commit of BATCH sealed as units of at most 256 events, a small hash per event and one per unit; then what a
 * reader of those units pays to decode them and check them (each entry's hash, then the unit's).
 */
function unitRates() {
  const t0 = performance.now()
  const units = []
  let prev = GENESIS_HASH
  for (let i = 0; i < EVENTS; i += BATCH) {
    const entries = []
    for (let k = i; k < i + BATCH; k++)
      entries.push({ wall: Date.now(), counter: k, docId: `doc-${k % 1000}`, change: payloads[k] })
    for (const u of sealUnits('bench/1', i + 1, prev, entries)) {
      units.push(u)
      prev = u.hash
    }
  }
  const unitSealRate = EVENTS / ((performance.now() - t0) / 1000)
  const t1 = performance.now()
  let events = 0
  for (const u of units) {
    const back = openUnit(u.bytes)
    if (back.hash !== u.hash) throw new Error('unit hash differs')
    events += back.entries.length
  }
  const unitReadRate = events / ((performance.now() - t1) / 1000)
  return { unitSealRate, unitReadRate, units: units.length }
}

/**
 * Stores events already sealed, as a receiver's store does (`ingest`: the checks, the runs, the
 * document index), in batches of BATCH; returns events/s. Built with `hashedEvent`, whose hash
 * ingest takes as computed (the wire decoder builds events so), so sealing is not timed twice.
 */
function ingestSealed(sealed, durability) {
  return withDir((dir) => {
    const store = EventStore.open({ path: join(dir, 'ingest.db'), druId: 'receiver', durability })
    const events = sealed.map((e) => hashedEvent(e))
    const t0 = performance.now()
    for (let i = 0; i < EVENTS; i += BATCH) store.ingest(events.slice(i, i + BATCH))
    const rate = EVENTS / ((performance.now() - t0) / 1000)
    store.close()
    return rate
  })
}

const fmt = (n) => Math.round(n).toLocaleString('en-US')
const ms = (n) => n.toFixed(3)
const lines = []
const rows = []
const breakdownLines = []
for (const durability of ['machine', 'process']) {
  const dru = []
  const raw = []
  const druLat = []
  const rawLat = []
  // Alternate the order each run so neither side always gets a warm page cache.
  for (let r = 0; r < RUNS; r++) {
    const pair = r % 2 === 0 ? [druAppend, rawInsert] : [rawInsert, druAppend]
    for (const f of pair) {
      const out = f(durability)
      const [rates, latencies] = f === druAppend ? [dru, druLat] : [raw, rawLat]
      rates.push(out.rate)
      latencies.push(...out.latencies)
    }
  }
  const parts = breakdown(durability)
  const d = summarize(dru)
  const w = summarize(raw)
  const ratio = d.median / w.median
  const line = `log append (durability=${durability}): dru ${fmt(d.median)} ev/s, raw ${fmt(w.median)} rows/s, ratio ${ratio.toFixed(2)}`
  lines.push(line)
  console.log(line)
  rows.push(
    `| ${durability} | ${fmt(d.median)} (${fmt(d.min)}–${fmt(d.max)}) | ${fmt(w.median)} (${fmt(w.min)}–${fmt(w.max)}) | **${ratio.toFixed(2)}** | ${ms(percentile(druLat, 50))} / ${ms(percentile(druLat, 99))} | ${ms(percentile(rawLat, 50))} / ${ms(percentile(rawLat, 99))} |`,
  )
  breakdownLines.push(
    `| ${durability} | ${fmt(parts.sealRate)} | ${fmt(parts.unitSealRate)} | ${fmt(parts.unitReadRate)} | ${fmt(parts.ingestRate)} |`,
  )
  console.log(
    `  breakdown: sealing only ${fmt(parts.sealRate)} ev/s (as ${fmt(parts.units)} units: ${fmt(parts.unitSealRate)} ev/s sealed, ${fmt(parts.unitReadRate)} ev/s decoded and checked), storing sealed events (ingest) ${fmt(parts.ingestRate)} ev/s`,
  )
  console.log(
    `  single-event commit p50/p99: dru ${ms(percentile(druLat, 50))}/${ms(percentile(druLat, 99))} ms, raw ${ms(percentile(rawLat, 50))}/${ms(percentile(rawLat, 99))} ms`,
  )
}

writeSection(
  'bench:log',
  `## Event-log append (\`npm run bench:log${quick ? ' -- --quick' : ''}\`)

${machineLine()}. ${fmt(EVENTS)} events of ${PAYLOAD}-byte payloads in transactions of ${BATCH}, median of ${RUNS} run(s) (range in brackets);
raw = better-sqlite3 inserting the same payload bytes into a plain \`(id, payload)\` table with the same journal, locking and
synchronous settings. dru additionally encodes and hashes each event (sha256 over canonical msgpack), links the chain,
stamps an HLC, stores the commit's events as a run (schema 6: a row per run of consecutive events of one origin,
binary hashes, dictionary-coded origins and documents, HLCs as integers, each document's events indexed in bulk,
no head row per commit). Latency: ${fmt(LATENCY_SAMPLES)} single-event commits (a run each).

${lines.map((l) => `    ${l}`).join('\n')}

| durability | dru ev/s | raw rows/s | ratio (target ≥ 0.6) | dru commit p50 / p99 ms | raw commit p50 / p99 ms |
| --- | --- | --- | --- | --- | --- |
${rows.join('\n')}

Where the time goes (same run): each event is sealed (canonical msgpack + sha256 + HLC; @dru/core), then stored in
its commit's run (schema 6; until it, a row per event with its \`(origin_id, seq)\` index entry). Until schema 4 each
insert also updated a per-event \`(doc_id, lsn)\` index: with writes spread over 1,000 documents every event dirtied
an index page of its own, rewritten at each commit. Each document's events are indexed in bulk (\`doc_events\`, merged
every 262,144 events). Sealing is from each event's fields (\`sealEventFields\`: building an input object and its
spread copy per event cost about as much as the hash). The last column stores events already sealed through the
store (\`ingest\`: the batch's checks, the runs, the document index), the store's own part; a unit seals 0.7–1 µs an event
cheaper (no hex digest, no HLC text, no event object: both hash every event, a unit so that one event can be checked
alone). The first step of issue 13's commit-granular record, the unit and its hash in \`@dru/core\`
(\`unit.ts\`: an origin's events of one commit packed as units of at most 256 events, a SHA-256 per event over its content and one per unit over those; not yet
stored or sent), is measured in the same run: sealing, and what a reader pays to decode and check the units.

| durability | sealing only, ev/s | sealing as units (@dru/core \`sealUnits\`), ev/s | units decoded and checked (every entry's hash, then the unit's), ev/s | storing sealed events (\`ingest\`: checks, runs, document index), ev/s |
| --- | --- | --- | --- | --- |
${breakdownLines.join('\n')}`,
)
