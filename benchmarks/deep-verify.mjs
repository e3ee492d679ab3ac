// bench:verify — what a deep verify costs with the digest tree against the single cluster
// digest it replaced, at 1k, 10k and 100k documents, with 0 and 3 documents differing.
// Writes the `bench:verify` section of RESULTS.md.
//
//   npm run bench:verify                    (BENCH_VERIFY_SIZES=1000,10000,100000)
//
// Each size runs in a fresh process. Two DocumentStores in that process stand for the two
// DRUs (no sockets): bytes are the real encoded frames of the peer protocol (probe/report,
// tree-probe/tree-report, before their 16-byte seal), round trips are counted, times are wall
// clock of one side's work (both sides do the same work in parallel on their own machines).
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import * as A from '@automerge/automerge'
import { TREE_LEVELS, diffEntries, walkTrees } from '@dru/core'
import { DocumentStore, actorForOrigin } from '@dru/documents'
import { EventStore } from '@dru/store-sqlite'
import { MAX_TREE_NODES, encodeFrame } from '@dru/sync'
import { machineLine, writeSection } from './results.mjs'

const SIZES = (process.env.BENCH_VERIFY_SIZES ?? '1000,10000,100000').split(',').map(Number)
const DIFFS = 3

if (process.argv[2] === '--size') {
  console.log(JSON.stringify(await measure(Number(process.argv[3]))))
} else {
  const rows = []
  for (const n of SIZES) {
    const t = performance.now()
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--size', String(n)], {
      encoding: 'utf8',
      maxBuffer: 1 << 24,
    })
    if (child.status !== 0) {
      console.error(child.stderr)
      rows.push({ n, failed: child.stderr.split('\n').slice(-3).join(' ') })
      continue
    }
    const r = JSON.parse(child.stdout.trim().split('\n').at(-1))
    rows.push(r)
    console.log(n, 'documents:', JSON.stringify(r), `(${((performance.now() - t) / 1000).toFixed(0)} s)`)
  }
  writeSection('bench:verify', render(rows))
}

/** Wall-clock milliseconds of `fn`. */
function time(fn) {
  const t = performance.now()
  const out = fn()
  return { ms: performance.now() - t, out }
}

async function measure(n) {
  const a = open('eu')
  const b = open('us')
  const actor = actorForOrigin(a.store.origin)
  const setup = time(() => {
    for (let i = 0; i < n; i += 1000) {
      a.store.transact((tx) => {
        for (let j = i; j < Math.min(n, i + 1000); j++) {
          const doc = A.change(A.init({ actor }), (d) => {
            d.id = j
            d.status = 'open'
          })
          tx.append(`doc-${String(j).padStart(6, '0')}`, A.getLastLocalChange(doc))
          A.free(doc)
        }
      })
    }
    for (const batch of a.store.eventsMissing(b.store.vv())) b.store.ingest(batch)
  })
  // Today: one digest over every document, recomputed by every deep verify.
  const single = time(() => b.docs.clusterDigest())
  // The tree: built once (every document digested, stored), then kept up to date.
  const firstBuild = time(() => b.docs.refreshDigests())
  a.docs.refreshDigests()
  const equal = time(() => b.docs.refreshDigests())
  if (equal.out.root !== a.docs.refreshDigests().root) throw new Error('roots differ with equal documents')

  // Three documents differ on b (local changes a never gets: at this level nothing checks logs).
  for (let k = 0; k < DIFFS; k++)
    b.docs.change(`doc-${String(Math.floor(((k + 1) * n) / (DIFFS + 1))).padStart(6, '0')}`, (d) => {
      d.status = 'damaged'
    })
  const refresh = time(() => b.docs.refreshDigests())
  let walkBytes = 0
  // The peer's side of each question, encoded as the protocol would send it.
  const theirs = async (level, nodes) => {
    const hashes = nodes.flatMap((i) => a.docs.digestTreeChildren(level, i))
    walkBytes += encodeFrame({ type: 'tree-probe', id: 1, level, nodes }).byteLength
    walkBytes += encodeFrame({ type: 'tree-report', id: 1, hashes, docs: [] }).byteLength
    return nodes.map((_, i) => hashes.slice(i * 16, (i + 1) * 16))
  }
  const t = performance.now()
  const { buckets, rounds } = await walkTrees((level, i) => b.docs.digestTreeChildren(level, i), theirs, MAX_TREE_NODES)
  const docs = buckets.flatMap((i) => a.docs.digestBucket(i))
  walkBytes += encodeFrame({ type: 'tree-probe', id: 1, level: TREE_LEVELS, nodes: buckets }).byteLength
  walkBytes += encodeFrame({ type: 'tree-report', id: 1, hashes: [], docs }).byteLength
  const found = diffEntries(
    buckets.flatMap((i) => b.docs.digestBucket(i)),
    docs,
  )
  const walkMs = performance.now() - t
  {
    if (found.length !== DIFFS) throw new Error(`walk found ${found.length} differences, not ${DIFFS}`)
    // What naming the documents would cost without the tree: every (id, digest, heads).
    const all = []
    for (let i = 0; i < 65_536; i++) all.push(...a.docs.digestBucket(i))
    const allBytes = encodeFrame({ type: 'tree-report', id: 1, hashes: [], docs: all }).byteLength
    const single3 = time(() => b.docs.clusterDigest())
    return {
      n,
      setupMs: setup.ms,
      single: { ms: single.ms, ms3: single3.ms, bytes: probeBytes(b, single.out.digest, single.out.documents) },
      tree: {
        firstBuildMs: firstBuild.ms,
        equalMs: equal.ms,
        equalBytes: probeBytes(b, equal.out.root, equal.out.documents),
        refresh3Ms: refresh.ms,
        walk3Ms: walkMs,
        bytes3: probeBytes(b, refresh.out.root, refresh.out.documents) + walkBytes,
        roundTrips3: 1 + rounds + 1,
      },
      allDigestsBytes: allBytes,
    }
  }
}

function open(druId) {
  const store = EventStore.open({ path: ':memory:', druId, skewPolicy: 'tolerate' })
  return { store, docs: new DocumentStore(store, { cache: { maxDocs: 1000 } }) }
}

/** A deep probe and its report carrying one state digest (today's and the tree's root alike). */
function probeBytes(side, digest, documents) {
  return (
    encodeFrame({ type: 'probe', id: 1, deep: true }).byteLength +
    encodeFrame({ type: 'report', id: 1, summary: side.store.summary(), stateDigest: digest, documents }).byteLength
  )
}

function render(rows) {
  const kb = (b) => (b < 10_000 ? `${b} B` : `${(b / 1024).toFixed(0)} KiB`)
  const s = (ms) => (ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(1)} s`)
  const lines = [
    '## Deep verify: digest tree vs one cluster digest (`npm run bench:verify`)',
    '',
    `${machineLine()}. Two DocumentStores in one process per size (a fresh process each), documents of one small change; bytes are`,
    'the encoded protocol frames (before their 16-byte seal), times one side\'s work (both sides work in parallel). "today" is the',
    'cluster digest every deep verify recomputed over every document: one round trip, a few hundred bytes, and it cannot name a',
    'document. "all digests" is what naming them would cost without the tree (every id, digest and heads sent). The tree is built',
    'once (first build: every document digested and stored), then a verify recomputes only documents changed since the last one.',
    'One run per size (not a median); the time columns move by tens of percent between runs on this shared machine, bytes and',
    'round trips do not. Command: `npm run bench:verify` (sizes: `BENCH_VERIFY_SIZES=1000,10000,100000`).',
    '',
    '| documents | differing | today: time / bytes / round trips | tree: time (refresh + walk) / bytes / round trips | tree first build | all digests |',
    '| --- | --- | --- | --- | --- | --- |',
  ]
  for (const r of rows) {
    if (r.failed) {
      lines.push(`| ${r.n.toLocaleString('en-US')} | — | failed: ${r.failed} | | | |`)
      continue
    }
    const n = r.n.toLocaleString('en-US')
    lines.push(
      `| ${n} | 0 | ${s(r.single.ms)} / ${kb(r.single.bytes)} / 1 | ${s(r.tree.equalMs)} / ${kb(r.tree.equalBytes)} / 1 | ${s(r.tree.firstBuildMs)} | ${kb(r.allDigestsBytes)} |`,
    )
    lines.push(
      `| ${n} | 3 | ${s(r.single.ms3)} / ${kb(r.single.bytes)} / 1 (names none) | ${s(r.tree.refresh3Ms + r.tree.walk3Ms)} (${s(r.tree.refresh3Ms)} + ${s(r.tree.walk3Ms)}) / ${kb(r.tree.bytes3)} / ${r.tree.roundTrips3} | | |`,
    )
  }
  return lines.join('\n')
}
