import { createHash } from 'node:crypto'
import { DruError, MerkleTree, bucketOf, leafHash, type DocId } from '@dru/core'
import { MetaKey, type EventStore } from '@dru/store-sqlite'
import type { DocumentDigest } from './digest.js'

/**
 * The per-document digests behind the Merkle tree (core's `merkle-tree.ts`) that `verify
 * --deep` walks against peers, and the tree itself.
 *
 * **Where the digests live, and when they are recomputed.** Each document's digest (sorted
 * heads + canonical JSON, as `digest.ts` computes it) is stored in table `doc_digests` with
 * its bucket and heads, so a restart recomputes nothing: it reads the rows once to build the
 * leaves. Digests are recomputed lazily, at the next {@link DigestIndex.refresh} (a deep
 * verify, or a peer's deep probe), only for *dirty* documents:
 *
 * - every document with an event after `meta[documents:digest_lsn]`, the log position up to
 *   which the digests are current (local and remote changes alike: both are log events;
 *   compaction refreshes first, so the events it deletes were seen);
 * - every document whose stored snapshot is not the one its digest was computed over: the
 *   row keeps the sha256 of that snapshot (`snap_hash`; each snapshot write updates it), and
 *   the first refresh after opening compares them all — hashing bytes, not loading
 *   documents. A snapshot changed behind the log's back (a damaged or replaced file while the
 *   DRU was stopped) is thus re-materialised and shows up as a difference;
 * - documents named explicitly (a repair, an isolated document retried).
 *
 * What it does not see: a cached document changed in memory behind the log's back while the
 * DRU runs (nothing writes there but the materialiser itself).
 *
 * A document that cannot be materialised counts with the digest {@link ISOLATED_DIGEST}; a
 * document that no longer exists loses its row. The tree answers from the last refresh, so a
 * walk that spans several round trips compares one consistent state per side.
 */

/** The digest an isolated document counts with (it cannot equal a readable state). */
export const ISOLATED_DIGEST = 'isolated'

/** One document as the tree's leaves hold it. */
export interface DigestEntry {
  readonly docId: string
  readonly digest: string
  readonly heads: readonly string[]
}

/** What the index needs from the documents (the store's facade passes its own). */
export interface DigestSources {
  /** The document's digest now (cached or a transient load); undefined when it does not exist; DOCUMENT_ISOLATED throws. */
  digest(docId: string): DocumentDigest | undefined
  /** Every document id, in order. */
  docIds(): Iterable<string>
  /** The stored snapshot bytes, if any. */
  snapshot(docId: string): Uint8Array | undefined
}

type Row = { doc_id: string; bucket: number; digest: string; heads: string; snap_hash: string | null }

/** Rows recomputed between two commits of a refresh. */
const REFRESH_PAGE = 512

/** Changed documents gathered from the log before they are recomputed (each once). */
const MAX_PENDING_DIGESTS = 16_384

/** sha256 (hex) of snapshot bytes, or null without a snapshot. */
export function snapshotHash(bytes: Uint8Array | undefined): string | null {
  return bytes ? createHash('sha256').update(bytes).digest('hex') : null
}

/** The per-document digests (table `doc_digests`) and the Merkle tree over them. */
export class DigestIndex {
  readonly #store: EventStore
  readonly #src: DigestSources
  readonly #stmt
  /** Built from the rows at the first refresh after opening. */
  #tree: MerkleTree | undefined
  /** Documents to recompute at the next refresh outside the log's order (scrub mismatches, repairs). */
  readonly #dirty = new Set<string>()
  #recomputed = 0

  constructor(store: EventStore, sources: DigestSources) {
    this.#store = store
    this.#src = sources
    const db = store.db
    this.#stmt = {
      get: db.prepare('select doc_id, bucket, digest, heads, snap_hash from doc_digests where doc_id = ?'),
      put: db.prepare(
        `insert into doc_digests (doc_id, bucket, digest, heads, snap_hash) values (?, ?, ?, ?, ?)
         on conflict(doc_id) do update set digest = excluded.digest, heads = excluded.heads, snap_hash = excluded.snap_hash`,
      ),
      remove: db.prepare('delete from doc_digests where doc_id = ?'),
      setSnap: db.prepare('update doc_digests set snap_hash = ? where doc_id = ?'),
      bucket: db.prepare('select doc_id, digest, heads from doc_digests where bucket = ? order by doc_id'),
      all: db.prepare('select bucket, doc_id, digest from doc_digests order by bucket, doc_id'),
      page: db.prepare('select doc_id, snap_hash from doc_digests where doc_id > ? order by doc_id limit ?'),
      count: db.prepare('select count(*) from doc_digests where digest != ?').pluck(),
    }
    // A new database (no position ever given, so no event and no snapshot either): nothing to catch up on.
    if (
      store.getMeta(MetaKey.DIGEST_LSN) === undefined &&
      store.lastLsn() === 0 &&
      store.docIdsAfter('', 1).length === 0
    )
      store.setMeta(MetaKey.DIGEST_LSN, 0)
  }

  /** Digests recomputed (documents materialised for it) since this index was created. */
  get recomputed(): number {
    return this.#recomputed
  }

  /** Documents with a digest of their state (isolated ones not counted, as in the cluster digest). */
  documents(): number {
    return this.#stmt.count.get(ISOLATED_DIGEST) as number
  }

  /**
   * Brings every dirty document's digest up to date and returns the tree. Memory stays
   * bounded: documents are recomputed one at a time, page by page through the log.
   */
  refresh(): MerkleTree {
    const tree = this.#load()
    const touched = new Set<number>()
    const mark = this.#store.getMeta(MetaKey.DIGEST_LSN)
    const end = this.#store.lastLsn()
    if (mark === undefined) {
      // Never computed (a database from before the tree): every document, once.
      let batch: string[] = []
      for (const docId of this.#src.docIds()) {
        batch.push(docId)
        if (batch.length >= REFRESH_PAGE) {
          this.#recomputeAll(batch, touched)
          batch = []
        }
      }
      this.#recomputeAll(batch, touched)
      this.#store.setMeta(MetaKey.DIGEST_LSN, end)
    } else {
      // The changed documents are gathered over many pages of events before any is recomputed:
      // writes spread over many documents put most of them on every page, and recomputing per
      // page loaded each document once per page (100,000 events over 1,000 documents: 98
      // loads each, 44 s of a compaction). The set is capped, so memory stays bounded; the
      // position advances only past documents already recomputed.
      let after = Number(mark)
      const pending = new Set<string>()
      const flush = (to: number): void => {
        const docs = [...pending]
        for (let i = 0; i < docs.length; i += REFRESH_PAGE) this.#recomputeAll(docs.slice(i, i + REFRESH_PAGE), touched)
        pending.clear()
        this.#store.setMeta(MetaKey.DIGEST_LSN, to)
      }
      while (after < end) {
        const rows = this.#store.docsChangedAfter(after, end, 1024)
        if (rows.length === 0) break
        for (const r of rows) pending.add(r.docId)
        after = rows[rows.length - 1]!.lsn
        if (pending.size >= MAX_PENDING_DIGESTS) flush(after)
      }
      flush(Math.max(after, end))
    }
    if (this.#dirty.size > 0) {
      const named = [...this.#dirty]
      this.#dirty.clear()
      for (let i = 0; i < named.length; i += REFRESH_PAGE) this.#recomputeAll(named.slice(i, i + REFRESH_PAGE), touched)
    }
    for (const b of touched) this.#setLeaf(tree, b)
    return tree
  }

  /** The tree as of the last refresh (built from the rows if none ran yet). */
  tree(): MerkleTree {
    return this.#load()
  }

  /** The documents of one bucket as of the last refresh, sorted by id. */
  bucket(index: number): DigestEntry[] {
    const rows = this.#stmt.bucket.all(index) as Array<{ doc_id: string; digest: string; heads: string }>
    return rows.map((r) => ({ docId: r.doc_id, digest: r.digest, heads: JSON.parse(r.heads) as string[] }))
  }

  /** One document's stored entry (as of the last refresh). */
  entry(docId: string): DigestEntry | undefined {
    const r = this.#stmt.get.get(docId) as Row | undefined
    return r ? { docId: r.doc_id, digest: r.digest, heads: JSON.parse(r.heads) as string[] } : undefined
  }

  /** Recomputes one document's digest now and updates the tree. */
  recompute(docId: DocId | string): DigestEntry | undefined {
    const tree = this.#load()
    const touched = new Set<number>()
    this.#recomputeAll([docId], touched)
    for (const b of touched) this.#setLeaf(tree, b)
    return this.entry(docId)
  }

  /** A snapshot of `docId` was stored: the state it holds is the one the digest describes (or will, once refreshed). */
  snapshotSaved(docId: string, bytes: Uint8Array): void {
    this.#stmt.setSnap.run(snapshotHash(bytes), docId)
  }

  /** Recomputes `docIds` in one transaction, recording the buckets whose entries changed. */
  #recomputeAll(docIds: readonly string[], touched: Set<number>): void {
    if (docIds.length === 0) return
    this.#store.db.transaction(() => {
      for (const docId of docIds) {
        const before = this.#stmt.get.get(docId) as Row | undefined
        const now = this.#compute(docId)
        const bucket = bucketOf(docId)
        if (!now) {
          if (before) {
            this.#stmt.remove.run(docId)
            touched.add(bucket)
          }
          continue
        }
        const heads = JSON.stringify(now.heads)
        const snap = snapshotHash(this.#src.snapshot(docId))
        this.#stmt.put.run(docId, bucket, now.digest, heads, snap)
        if (!before || before.digest !== now.digest) touched.add(bucket)
      }
    })()
  }

  #compute(docId: string): { digest: string; heads: readonly string[] } | undefined {
    this.#recomputed++
    try {
      return this.#src.digest(docId)
    } catch (err) {
      if (err instanceof DruError && err.code === 'DOCUMENT_ISOLATED') return { digest: ISOLATED_DIGEST, heads: [] }
      throw err
    }
  }

  #setLeaf(tree: MerkleTree, bucket: number): void {
    tree.setLeaf(bucket, leafHash(this.bucket(bucket)))
  }

  /**
   * The tree from the stored rows (once per open), and the scrub: every row whose snapshot
   * is no longer the one its digest was computed over is marked dirty.
   */
  #load(): MerkleTree {
    if (this.#tree) return this.#tree
    const tree = new MerkleTree()
    let bucket = -1
    let entries: Array<{ docId: string; digest: string }> = []
    const flush = () => {
      if (bucket >= 0) tree.setLeaf(bucket, leafHash(entries))
    }
    for (const r of this.#stmt.all.iterate() as Iterable<{ bucket: number; doc_id: string; digest: string }>) {
      if (r.bucket !== bucket) {
        flush()
        bucket = r.bucket
        entries = []
      }
      entries.push({ docId: r.doc_id, digest: r.digest })
    }
    flush()
    let after = ''
    for (;;) {
      const rows = this.#stmt.page.all(after, REFRESH_PAGE) as Array<{ doc_id: string; snap_hash: string | null }>
      for (const r of rows) if (snapshotHash(this.#src.snapshot(r.doc_id)) !== r.snap_hash) this.#dirty.add(r.doc_id)
      if (rows.length < REFRESH_PAGE) break
      after = rows[rows.length - 1]!.doc_id
    }
    this.#tree = tree
    return tree
  }
}
