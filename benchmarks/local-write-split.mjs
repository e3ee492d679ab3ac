// node benchmarks/local-write-split.mjs [--ops 20000] [--rounds 3] — where a local write's
// time goes: the same seeded ops as Automerge.change alone, dru's commit path alone
// (store.append of those change bytes: seal, run row, one transaction each), both
// interleaved in one loop (no documents layer), dru.change() whole, and the floor of any
// store that commits each change: Automerge.change with its bytes inserted as one row of a
// plain table in a transaction of its own (better-sqlite3, dru's `process` pragmas). Each
// figure is µs per op, rounds interleaved after one discarded warm-up round (a process's
// first pass runs every case ~40 µs slower), median (min–max). Not a test: numbers move
// with the machine.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as A from '@automerge/automerge'
import Database from 'better-sqlite3'
import { openDru } from '@dru/node'

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : dflt
}
const OPS = arg('ops', 20_000)
const ROUNDS = arg('rounds', 3)
const DOCS = 1_000
const KEYS = ['a', 'b', 'c', 'd', 'e', 'f', 'g']
let seed = 1
const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff
const ops = Array.from({ length: OPS }, (_, i) => ({
  doc: Math.floor(rnd() * DOCS),
  key: KEYS[i % KEYS.length],
  value: i % 3 ? `v${i}` : i,
}))

const freshDocs = () => Array.from({ length: DOCS }, (_, i) => A.change(A.init(), (d) => (d.init = i)))

/** Runs `fn(dru)` against a fresh DRU in a temp folder; returns µs per op. */
async function withDru(fn) {
  const dir = mkdtempSync(join(tmpdir(), 'dru-local-split-'))
  const dru = await openDru({
    id: 'split',
    path: join(dir, 'dru.db'),
    durability: 'process',
    cache: { maxDocs: 10_000 },
  })
  try {
    return await fn(dru)
  } finally {
    await dru.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

const perOp = (t0) => ((performance.now() - t0) * 1000) / OPS

const cases = {
  'Automerge.change alone': async () => {
    const docs = freshDocs()
    const t0 = performance.now()
    for (const op of ops) {
      docs[op.doc] = A.change(docs[op.doc], (d) => (d[op.key] = op.value))
      A.getLastLocalChange(docs[op.doc])
    }
    const us = perOp(t0)
    docs.forEach(A.free)
    return us
  },
  'store.append alone (the same change bytes)': async () => {
    const docs = freshDocs()
    const changes = ops.map((op) => {
      docs[op.doc] = A.change(docs[op.doc], (d) => (d[op.key] = op.value))
      return A.getLastLocalChange(docs[op.doc])
    })
    docs.forEach(A.free)
    return withDru((dru) => {
      const t0 = performance.now()
      for (let i = 0; i < OPS; i++) dru.store.append(`doc-${ops[i].doc}`, changes[i])
      return perOp(t0)
    })
  },
  'both, interleaved': async () =>
    withDru((dru) => {
      const docs = freshDocs()
      const t0 = performance.now()
      for (const op of ops) {
        docs[op.doc] = A.change(docs[op.doc], (d) => (d[op.key] = op.value))
        dru.store.append(`doc-${op.doc}`, A.getLastLocalChange(docs[op.doc]))
      }
      const us = perOp(t0)
      docs.forEach(A.free)
      return us
    }),
  'Automerge.change + a raw one-row commit': async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dru-local-split-raw-'))
    const db = new Database(join(dir, 'raw.db'))
    try {
      db.pragma('locking_mode = EXCLUSIVE')
      db.pragma('journal_mode = WAL')
      db.pragma('synchronous = NORMAL')
      db.exec('create table log (id integer primary key, doc integer not null, change blob not null)')
      const insert = db.prepare('insert into log (doc, change) values (?, ?)')
      const commit = db.transaction((doc, change) => insert.run(doc, change))
      const docs = freshDocs()
      const t0 = performance.now()
      for (const op of ops) {
        docs[op.doc] = A.change(docs[op.doc], (d) => (d[op.key] = op.value))
        commit.immediate(op.doc, A.getLastLocalChange(docs[op.doc]))
      }
      const us = perOp(t0)
      docs.forEach(A.free)
      return us
    } finally {
      db.close()
      rmSync(dir, { recursive: true, force: true })
    }
  },
  'dru.change()': async () =>
    withDru(async (dru) => {
      dru.transact((tx) => {
        for (let i = 0; i < DOCS; i++) tx.change(`doc-${i}`, (d) => (d.init = i))
      })
      const t0 = performance.now()
      for (const op of ops) await dru.change(`doc-${op.doc}`, (d) => (d[op.key] = op.value))
      return perOp(t0)
    }),
}

const results = Object.fromEntries(Object.keys(cases).map((k) => [k, []]))
for (let r = -1; r < ROUNDS; r++)
  for (const [name, run] of Object.entries(cases)) {
    const us = await run()
    if (r >= 0) results[name].push(us)
  }
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
console.log(`${OPS} ops on ${DOCS} documents, ${ROUNDS} rounds after a warm-up, µs per op: median (min–max)`)
for (const [name, xs] of Object.entries(results))
  console.log(
    `${name.padEnd(44)} ${median(xs).toFixed(0).padStart(5)} (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`,
  )
// Issue 13's local-write target is dru.change() ≥ 0.7 × Automerge.change's rate, i.e. its time ≤ 1/0.7 of it.
const alone = median(results['Automerge.change alone'])
const ratio = (name) => (alone / median(results[name])).toFixed(2)
console.log(
  `rate ÷ Automerge.change alone (target ≥ 0.70): dru.change() ${ratio('dru.change()')}, the floor (a raw one-row commit) ${ratio('Automerge.change + a raw one-row commit')}`,
)
