import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  MerkleTree,
  TREE_FANOUT,
  TREE_LEAVES,
  TREE_LEVELS,
  bucketOf,
  differingChildren,
  isTreeNode,
  leafHash,
} from '../src/index.js'

const runs = Number(process.env.DRU_PROPERTY_RUNS ?? 100)

/** A tree built from scratch from a map docId → digest. */
function build(docs: ReadonlyMap<string, string>): MerkleTree {
  const buckets = new Map<number, Array<{ docId: string; digest: string }>>()
  for (const [docId, digest] of docs) {
    const b = bucketOf(docId)
    buckets.set(b, [...(buckets.get(b) ?? []), { docId, digest }])
  }
  const t = new MerkleTree()
  for (const [b, entries] of buckets) t.setLeaf(b, leafHash(entries))
  return t
}

/** Walks two trees level by level as verify does: the leaves that differ. */
function walk(a: MerkleTree, b: MerkleTree): number[] {
  if (a.root() === b.root()) return []
  let frontier = [0]
  for (let level = 0; level < TREE_LEVELS; level++) {
    frontier = frontier.flatMap((i) => differingChildren(i, a.children(level, i), b.children(level, i)))
  }
  return frontier
}

describe('Merkle tree over document digests', () => {
  it('is all zeros when empty, and buckets are stable and in range', () => {
    expect(new MerkleTree().root()).toBe('0'.repeat(64))
    expect(bucketOf('doc-1')).toBe(bucketOf('doc-1'))
    for (let i = 0; i < 1000; i++) expect(bucketOf(`d${i}`)).toBeLessThan(TREE_LEAVES)
    expect(isTreeNode(0, 0)).toBe(true)
    expect(isTreeNode(0, 1)).toBe(false)
    expect(isTreeNode(TREE_LEVELS, TREE_LEAVES - 1)).toBe(true)
    expect(isTreeNode(TREE_LEVELS + 1, 0)).toBe(false)
    expect(() => new MerkleTree().children(TREE_LEVELS, 0)).toThrow(RangeError)
  })

  it('a leaf hash does not depend on the order of its entries', () => {
    const a = leafHash([
      { docId: 'x', digest: '1' },
      { docId: 'y', digest: '2' },
    ])
    const b = leafHash([
      { docId: 'y', digest: '2' },
      { docId: 'x', digest: '1' },
    ])
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true)
  })

  it('incremental leaf updates give the root of a rebuild, and the walk finds exactly the changed buckets', () => {
    const docId = fc.stringMatching(/^[a-z0-9]{1,6}$/)
    const digest = fc.constantFrom('a', 'b', 'c')
    const op = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), docId, digest }),
      fc.record({ kind: fc.constant('delete' as const), docId }),
    )
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const docs = new Map<string, string>()
        const live = new MerkleTree()
        const before = build(docs)
        for (const o of ops) {
          if (o.kind === 'set') docs.set(o.docId, o.digest)
          else docs.delete(o.docId)
          const b = bucketOf(o.docId)
          const inBucket = [...docs].filter(([d]) => bucketOf(d) === b).map(([d, g]) => ({ docId: d, digest: g }))
          live.setLeaf(b, leafHash(inBucket))
          if (o.docId.length % 3 === 0) live.root() // settle at random moments
        }
        const rebuilt = build(docs)
        expect(live.root()).toBe(rebuilt.root())
        // The walk between the start and the end names exactly the buckets whose entries changed.
        const changed = new Set<number>()
        for (const o of ops) changed.add(bucketOf(o.docId))
        const found = walk(before, rebuilt)
        for (const b of found) expect(changed.has(b)).toBe(true)
        expect(found).toEqual([...found].sort((x, y) => x - y))
      }),
      { numRuns: runs },
    )
  })

  it('one differing document out of 10,000 is found by asking for 16 hashes per level', () => {
    const docs = new Map<string, string>()
    for (let i = 0; i < 10_000; i++) docs.set(`doc-${i}`, 'same')
    const a = build(docs)
    docs.set('doc-4242', 'other')
    const b = build(docs)
    expect(walk(a, b)).toEqual([bucketOf('doc-4242')])
    expect(a.children(0, 0)).toHaveLength(TREE_FANOUT)
  })
})
