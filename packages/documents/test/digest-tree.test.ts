import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as A from '@automerge/automerge'
import fc from 'fast-check'
import {
  MerkleTree,
  TREE_FANOUT,
  TREE_HASH_BYTES,
  TREE_LEVELS,
  bucketOf,
  diffEntries,
  isDruError,
  leafHash,
  meetVv,
  walkTrees,
  type TreeEntry,
} from '@dru/core'
import { EventStore } from '@dru/store-sqlite'
import { afterEach, describe, expect, it } from 'vitest'
import { DocumentStore, ISOLATED_DIGEST, actorForOrigin } from '@dru/documents'

// The Merkle tree over per-document digests that `verify --deep` walks: maintained
// incrementally (only documents changed since the last refresh are recomputed, across
// restarts too), equal to a tree built from scratch, and walked between two DRUs it names
// exactly the documents whose materialised state differs, with bytes that grow with the
// differences. The node's test (packages/node/test/deep-verify.test.ts) runs the same walk
// over the real protocol and the admin API.

const runs = Number(process.env.DRU_PROPERTY_RUNS ?? 25)
const open: Array<{ store: EventStore; docs: DocumentStore }> = []
const dirs: string[] = []

function make(druId: string, path: string, cacheDocs = 10_000) {
  const store = EventStore.open({ path, druId, skewPolicy: 'tolerate' })
  const docs = new DocumentStore(store, { cache: { maxDocs: cacheDocs }, snapshotAfter: 2 })
  const node = { store, docs }
  open.push(node)
  return node
}
type Node = ReturnType<typeof make>

function close(n: Node): void {
  n.docs.close({ flush: true })
  n.store.close()
  open.splice(open.indexOf(n), 1)
}

function tempDb(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'dru-tree-'))
  dirs.push(dir)
  return join(dir, name)
}

function sync(from: EventStore, to: EventStore): void {
  for (const batch of from.eventsMissing(to.vv())) to.ingest(batch)
}

afterEach(() => {
  for (const { store, docs } of open.splice(0)) {
    docs.close()
    store.close()
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** The root of a tree built from scratch: every document digested now, independently of the index. */
function rootFromScratch(docs: DocumentStore): string {
  const buckets = new Map<number, Array<{ docId: string; digest: string }>>()
  for (const docId of docs.docIds()) {
    let digest: string | undefined
    try {
      digest = docs.digest(docId)?.digest
    } catch (err) {
      if (!isDruError(err) || err.code !== 'DOCUMENT_ISOLATED') throw err
      digest = ISOLATED_DIGEST
    }
    if (digest === undefined) continue
    const b = bucketOf(docId)
    buckets.set(b, [...(buckets.get(b) ?? []), { docId, digest }])
  }
  const t = new MerkleTree()
  for (const [b, entries] of buckets) t.setLeaf(b, leafHash(entries))
  return t.root()
}

/**
 * Walks `a`'s tree against `b`'s as the protocol does, counting round trips and the bytes
 * `b` would send (node hashes, then its entries of the differing buckets).
 */
async function walk(a: DocumentStore, b: DocumentStore) {
  let roundTrips = 1 // the deep probe that carries the root
  let bytes = TREE_HASH_BYTES
  if (a.refreshDigests().root === b.refreshDigests().root) return { differences: [], roundTrips, bytes }
  const { buckets, rounds } = await walkTrees(
    (level, i) => a.digestTreeChildren(level, i),
    async (level, nodes) => {
      bytes += nodes.length * TREE_FANOUT * TREE_HASH_BYTES
      return nodes.map((i) => b.digestTreeChildren(level, i))
    },
    1024,
  )
  roundTrips += rounds + 1
  const theirs: TreeEntry[] = buckets.flatMap((i) => b.digestBucket(i))
  for (const e of theirs) bytes += e.docId.length + 32 + e.heads.length * 32
  const differences = diffEntries(
    buckets.flatMap((i) => a.digestBucket(i)),
    theirs,
  )
  return { differences, roundTrips, bytes }
}

/** Writes a snapshot of `docId` that holds one change the log never saw (damage behind the log's back). */
function tamper(path: string, docId: string, value: string): void {
  const store = EventStore.open({ path, druId: 'us', skewPolicy: 'tolerate' })
  try {
    const row = store.db.prepare('select snapshot from docs where doc_id = ?').get(docId) as { snapshot: Buffer }
    const doc = A.change(A.load<{ v?: string }>(row.snapshot), (d) => {
      d.v = value
    })
    store.db.prepare('update docs set snapshot = ? where doc_id = ?').run(A.save(doc), docId)
  } finally {
    store.close()
  }
}

describe('the digest tree', () => {
  it('10,000 documents, 3 altered behind the log: the walk names exactly those 3 in bounded round trips and bytes; repair makes the trees equal', async () => {
    const a = make('eu', ':memory:')
    const pathB = tempDb('b.db')
    let b = make('us', pathB)
    const ids = Array.from({ length: 10_000 }, (_, i) => `doc-${String(i).padStart(5, '0')}`)
    // Appended straight to A's log (the documents' write path would cache every one): the
    // same Automerge changes its write path makes, by A's actor.
    const actor = actorForOrigin(a.store.origin)
    a.store.transact((tx) => {
      for (const id of ids) {
        const doc = A.change(A.init<{ v?: string }>({ actor }), (d) => {
          d.v = id
        })
        tx.append(id, A.getLastLocalChange(doc)!)
        A.free(doc)
      }
    })
    sync(a.store, b.store)
    expect(b.docs.refreshDigests().root).toBe(a.docs.refreshDigests().root)
    expect(a.docs.refreshDigests().documents).toBe(10_000)
    expect((await walk(a.docs, b.docs)).roundTrips).toBe(1)

    // Snapshots on B, then B stops and three of them are replaced behind its log's back.
    const altered = ['doc-00017', 'doc-04242', 'doc-09999']
    for (const id of altered) b.docs.doc(id)
    close(b)
    for (const id of altered) tamper(pathB, id, 'damaged')
    b = make('us', pathB)

    // A restart recomputes only what changed: the three whose snapshots are not the ones their digests covered.
    const refreshed = b.docs.refreshDigests()
    expect(refreshed.recomputed).toBe(3)
    const { differences, roundTrips, bytes } = await walk(a.docs, b.docs)
    expect(differences.map((d) => d.docId)).toEqual(altered)
    for (const d of differences) {
      expect(d.local?.heads).toHaveLength(1)
      expect(d.remote?.heads).toHaveLength(1)
      expect(d.remote?.heads).not.toEqual(d.local?.heads)
    }
    expect(roundTrips).toBeLessThanOrEqual(TREE_LEVELS + 2)
    // Sending every digest would be 10,000 × (id + 32 bytes) ≈ 420 kB; the walk sends about 2 kB per difference.
    expect(bytes).toBeLessThan(3 * 3_000)

    // Repair rebuilds each from the log: the unlogged change is dropped, the trees are equal again.
    for (const id of altered) {
      const r = b.docs.repair(id)
      expect(r.droppedChanges).toBe(1)
      expect(r.before?.digest).not.toBe(r.after?.digest)
      expect(r.after?.digest).toBe(a.docs.digestEntry(id)?.digest)
    }
    expect((await walk(a.docs, b.docs)).differences).toEqual([])
    expect(b.docs.get('doc-04242')).toEqual({ v: 'doc-04242' })
    // …and stays repaired across a restart.
    close(b)
    b = make('us', pathB)
    expect(b.docs.refreshDigests().root).toBe(a.docs.refreshDigests().root)
  }, 60_000)

  it('a refresh recomputes each changed document once, however many pages of the log changed it', () => {
    // 3,000 changes round-robin over 30 documents: every page of 1,024 events touches all 30.
    // Recomputing per page loaded each document three times (a compaction of 100,000 events
    // over 1,000 documents spent 44 s there); gathered first, once each.
    const a = make('us', tempDb('a.db'))
    for (let i = 0; i < 30; i++) a.docs.change(`doc-${i}`, (d) => (d.n = 0))
    a.docs.refreshDigests()
    a.docs.transact((tx) => {
      for (let k = 0; k < 3_000; k++) tx.change(`doc-${k % 30}`, (d) => (d.n = k))
    })
    expect(a.docs.refreshDigests().recomputed).toBe(30)
    expect(a.docs.refreshDigests().recomputed).toBe(0)
  })

  it('repair refuses a malformed or unknown document id and changes nothing', () => {
    const a = make('eu', ':memory:')
    a.docs.change('x', (d) => {
      d.v = 1
    })
    const root = a.docs.refreshDigests().root
    expect(() => a.docs.repair('')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
    expect(() => a.docs.repair('nope')).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }))
    expect(a.docs.refreshDigests().root).toBe(root)
    expect(a.docs.get('x')).toEqual({ v: 1 })
  })

  it('repair keeps the changes compaction folded (proven by their envelopes) and replays the rest', () => {
    const a = make('eu', ':memory:', 2)
    for (let i = 0; i < 3; i++)
      a.docs.change('f', (d) => {
        d[`k${i}`] = i
      })
    const steps = a.docs.compact(a.store.vv())
    while (!steps.next().done);
    a.docs.change('f', (d) => {
      d.after = true
    })
    const before = a.docs.refreshDigests().root
    const r = a.docs.repair('f')
    expect(r).toMatchObject({ foldedChanges: 3, droppedChanges: 0, logEvents: 1 })
    expect(r.after?.digest).toBe(r.before?.digest)
    expect(a.docs.refreshDigests().root).toBe(before)
    expect(a.docs.get('f')).toEqual({ after: true, k0: 0, k1: 1, k2: 2 })
  })

  it('property: the incrementally maintained root equals a rebuild after random changes, syncs, compactions and restarts', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('change' as const), who: fc.nat(1), doc: fc.nat(7), v: fc.nat(5) }),
      fc.record({ kind: fc.constant('sync' as const) }),
      fc.record({ kind: fc.constant('compact' as const), who: fc.nat(1) }),
      fc.record({ kind: fc.constant('restart' as const), who: fc.nat(1) }),
      fc.record({ kind: fc.constant('refresh' as const), who: fc.nat(1) }),
      fc.record({ kind: fc.constant('evict' as const), who: fc.nat(1), doc: fc.nat(7) }),
    )
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 25 }), (ops) => {
        const paths = [tempDb('a.db'), tempDb('b.db')]
        const nodes = [make('eu', paths[0]!, 3), make('us', paths[1]!, 3)]
        try {
          for (const o of ops) {
            if (o.kind === 'change') {
              nodes[o.who]!.docs.change(`d${o.doc}`, (d) => {
                d[`f${o.v % 3}`] = o.v
              })
            } else if (o.kind === 'sync') {
              sync(nodes[0]!.store, nodes[1]!.store)
              sync(nodes[1]!.store, nodes[0]!.store)
            } else if (o.kind === 'compact') {
              const n = nodes[o.who]!
              const other = nodes[1 - o.who]!
              const steps = n.docs.compact(meetVv([n.store.vv(), other.store.vv()]))
              while (!steps.next().done);
            } else if (o.kind === 'restart') {
              close(nodes[o.who]!)
              nodes[o.who] = make(o.who === 0 ? 'eu' : 'us', paths[o.who]!, 3)
            } else if (o.kind === 'refresh') {
              nodes[o.who]!.docs.refreshDigests()
            } else {
              nodes[o.who]!.docs.evict(`d${o.doc}`)
            }
          }
          for (const n of nodes) expect(n.docs.refreshDigests().root).toBe(rootFromScratch(n.docs))
          sync(nodes[0]!.store, nodes[1]!.store)
          sync(nodes[1]!.store, nodes[0]!.store)
          expect(nodes[0]!.docs.refreshDigests().root).toBe(nodes[1]!.docs.refreshDigests().root)
        } finally {
          for (const n of nodes) close(n)
        }
      }),
      { numRuns: runs },
    )
  }, 60_000)
})
