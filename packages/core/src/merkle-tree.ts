import { createHash } from 'node:crypto'

/**
 * A Merkle tree over per-document digests, for naming the documents two DRUs hold
 * differently without sending every digest. Pure: the documents package feeds it leaves
 * from its digest table, the sync protocol asks it for children, the node walks two of them.
 *
 * Shape: fixed, so two DRUs compare node by node whatever they hold. A document belongs to
 * bucket `first 16 bits of sha256(docId)` — {@link TREE_LEAVES} = 65,536 buckets, the leaves.
 * Above them {@link TREE_LEVELS} levels of fan-out {@link TREE_FANOUT} (16): level 0 is the
 * root, level 4 the leaves. A leaf's hash covers its documents' `(docId, digest)` sorted by id;
 * an empty bucket's hash is all zeros, so does a node whose children are all empty (an empty
 * subtree costs nothing to compare). Memory is bounded by the shape, not by the number of
 * documents: 65,536 + 4,369 hashes of 32 bytes, about 2.2 MiB.
 *
 * Why these numbers: with 16-way fan-out one differing document costs 4 child queries of 16
 * hashes each (~2 KiB) plus its bucket's entries; 65,536 buckets keep a bucket to one or two
 * documents up to ~100k documents (and ~15 at 1M), so bytes grow with the differences, and
 * round trips stay at most levels + 1 (asking for the root, then one per level below it).
 *
 * @module
 */

/** Children per node. */
export const TREE_FANOUT = 16
/** Levels below the root: the leaves are level `TREE_LEVELS`. */
export const TREE_LEVELS = 4
/** Number of leaves (buckets): `TREE_FANOUT ** TREE_LEVELS`. */
export const TREE_LEAVES = TREE_FANOUT ** TREE_LEVELS
/** Bytes of every node hash. */
export const TREE_HASH_BYTES = 32

const ZERO = new Uint8Array(TREE_HASH_BYTES)

/** The bucket (leaf index) of a document: the first 16 bits of sha256 of its id. */
export function bucketOf(docId: string): number {
  const h = createHash('sha256').update(docId).digest()
  return ((h[0]! << 8) | h[1]!) % TREE_LEAVES
}

/** Number of nodes at `level` (1 at the root, {@link TREE_LEAVES} at the leaves). */
export function nodesAt(level: number): number {
  return TREE_FANOUT ** level
}

/**
 * A leaf's hash: sha256 over its `(docId, digest)` pairs sorted by id (by UTF-8 bytes, as
 * SQLite sorts text), or all zeros for an empty bucket.
 */
export function leafHash(entries: ReadonlyArray<{ readonly docId: string; readonly digest: string }>): Uint8Array {
  if (entries.length === 0) return ZERO
  const sorted = [...entries].sort((a, b) => Buffer.compare(Buffer.from(a.docId), Buffer.from(b.docId)))
  const h = createHash('sha256')
  for (const e of sorted) h.update(e.docId).update('\0').update(e.digest).update('\n')
  return new Uint8Array(h.digest())
}

/** True when every byte is zero (an empty subtree). */
function isZero(b: Uint8Array): boolean {
  for (const x of b) if (x !== 0) return false
  return true
}

/**
 * The tree: leaves set one at a time, inner nodes recomputed lazily along the paths of the
 * leaves that changed, so updating k leaves costs k × {@link TREE_LEVELS} hashes at the next
 * read, not a rebuild.
 */
export class MerkleTree {
  /** Per level, every node's hash, 32 bytes each, in one buffer. */
  readonly #levels: Uint8Array[]
  /** Per inner level, the nodes whose children changed since they were last hashed. */
  readonly #dirty: Array<Set<number>>

  constructor() {
    this.#levels = []
    this.#dirty = []
    for (let l = 0; l <= TREE_LEVELS; l++) {
      this.#levels.push(new Uint8Array(nodesAt(l) * TREE_HASH_BYTES))
      this.#dirty.push(new Set())
    }
  }

  /** Sets a leaf's hash (see {@link leafHash}). */
  setLeaf(index: number, hash: Uint8Array): void {
    checkIndex(TREE_LEVELS, index)
    if (hash.byteLength !== TREE_HASH_BYTES) throw new RangeError(`a tree hash is ${TREE_HASH_BYTES} bytes`)
    const leaves = this.#levels[TREE_LEVELS]!
    const at = index * TREE_HASH_BYTES
    if (Buffer.compare(leaves.subarray(at, at + TREE_HASH_BYTES), hash) === 0) return
    leaves.set(hash, at)
    let i = index
    for (let l = TREE_LEVELS - 1; l >= 0; l--) {
      i = Math.floor(i / TREE_FANOUT)
      this.#dirty[l]!.add(i)
    }
  }

  /** The root hash, hex (all zeros for an empty tree). */
  root(): string {
    return Buffer.from(this.node(0, 0)).toString('hex')
  }

  /** One node's hash. */
  node(level: number, index: number): Uint8Array {
    checkIndex(level, index)
    this.#settle()
    const at = index * TREE_HASH_BYTES
    return this.#levels[level]!.slice(at, at + TREE_HASH_BYTES)
  }

  /** The hashes of the {@link TREE_FANOUT} children of a node above the leaves, in order. */
  children(level: number, index: number): Uint8Array[] {
    if (level >= TREE_LEVELS) throw new RangeError(`level ${level} has no children (the leaves are ${TREE_LEVELS})`)
    checkIndex(level, index)
    const out: Uint8Array[] = []
    for (let c = 0; c < TREE_FANOUT; c++) out.push(this.node(level + 1, index * TREE_FANOUT + c))
    return out
  }

  /** Recomputes the dirty inner nodes, bottom up. */
  #settle(): void {
    for (let l = TREE_LEVELS - 1; l >= 0; l--) {
      const dirty = this.#dirty[l]!
      if (dirty.size === 0) continue
      const below = this.#levels[l + 1]!
      const here = this.#levels[l]!
      for (const i of dirty) {
        const kids = below.subarray(i * TREE_FANOUT * TREE_HASH_BYTES, (i + 1) * TREE_FANOUT * TREE_HASH_BYTES)
        const hash = isZero(kids) ? ZERO : createHash('sha256').update(kids).digest()
        here.set(hash, i * TREE_HASH_BYTES)
      }
      dirty.clear()
    }
  }
}

/** The children of node `index` (their indices one level down) whose hashes differ between two answers. */
export function differingChildren(index: number, ours: readonly Uint8Array[], theirs: readonly Uint8Array[]): number[] {
  const out: number[] = []
  for (let c = 0; c < TREE_FANOUT; c++) {
    const a = ours[c]
    const b = theirs[c]
    if (!a || !b || Buffer.compare(a, b) !== 0) out.push(index * TREE_FANOUT + c)
  }
  return out
}

/** Throws RangeError unless `index` names a node at `level`. */
function checkIndex(level: number, index: number): void {
  if (!Number.isInteger(level) || level < 0 || level > TREE_LEVELS) throw new RangeError(`no tree level ${level}`)
  if (!Number.isInteger(index) || index < 0 || index >= nodesAt(level))
    throw new RangeError(`no node ${index} at tree level ${level}`)
}

/** True when `index` names a node at `level` (for validating what a peer asks). */
export function isTreeNode(level: number, index: number): boolean {
  return (
    Number.isInteger(level) &&
    level >= 0 &&
    level <= TREE_LEVELS &&
    Number.isInteger(index) &&
    index >= 0 &&
    index < nodesAt(level)
  )
}

/** A document as the tree's leaves hold it: id, digest, sorted heads. */
export interface TreeEntry {
  readonly docId: string
  readonly digest: string
  readonly heads: readonly string[]
}

/** A document whose digests differ between two sides; a side without it is undefined. */
export interface TreeDifference {
  readonly docId: string
  readonly local: TreeEntry | undefined
  readonly remote: TreeEntry | undefined
}

/** What {@link walkTrees} asks of the other side: per asked node, its children's hashes. */
export type AskChildren = (level: number, nodes: readonly number[]) => Promise<Uint8Array[][]>

/**
 * Walks our tree against another side's, level by level from the root (whose hashes the
 * caller found different): each round asks the other side for the children of the nodes
 * that still differ, `maxNodes` per question (questions of one level go out together).
 * Returns the leaf buckets that differ and how many rounds it took ({@link TREE_LEVELS}).
 */
export async function walkTrees(
  ours: (level: number, index: number) => Uint8Array[],
  theirs: AskChildren,
  maxNodes: number,
): Promise<{ buckets: number[]; rounds: number }> {
  let frontier = [0]
  let rounds = 0
  for (let level = 0; level < TREE_LEVELS && frontier.length > 0; level++) {
    const chunks: number[][] = []
    for (let i = 0; i < frontier.length; i += maxNodes) chunks.push(frontier.slice(i, i + maxNodes))
    const answers = await Promise.all(chunks.map((c) => theirs(level, c)))
    rounds++
    const next: number[] = []
    chunks.forEach((chunk, k) => {
      chunk.forEach((index, j) => next.push(...differingChildren(index, ours(level, index), answers[k]![j] ?? [])))
    })
    frontier = next
  }
  return { buckets: frontier, rounds }
}

/** The documents of one or more buckets whose digests differ (or that one side lacks), by id. */
export function diffEntries(ours: readonly TreeEntry[], theirs: readonly TreeEntry[]): TreeDifference[] {
  const local = new Map(ours.map((e) => [e.docId, e]))
  const remote = new Map(theirs.map((e) => [e.docId, e]))
  const out: TreeDifference[] = []
  for (const docId of new Set([...local.keys(), ...remote.keys()])) {
    const a = local.get(docId)
    const b = remote.get(docId)
    if (a && b && a.digest === b.digest) continue
    out.push({ docId, local: a, remote: b })
  }
  return out.sort((x, y) => Buffer.compare(Buffer.from(x.docId), Buffer.from(y.docId)))
}
