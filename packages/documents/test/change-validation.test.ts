import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as A from '@automerge/automerge'
import { afterEach, describe, expect, it } from 'vitest'
import { GENESIS_HASH, encodeHlc, sealEvent, type DruEvent, type Origin } from '@dru/core'
import { EventStore } from '@dru/store-sqlite'
import { ActorSeqs, DocumentStore, actorForOrigin } from '@dru/documents'

// A member signs its own events, so it could put anything in them. What it puts must still be
// an Automerge change of its own origin continuing its own seq; otherwise the batch is refused
// before storing (and so never forwarded). History that slipped in before this check isolates
// its document instead of breaking the DRU.

const open: Array<{ close(): void }> = []
const dirs: string[] = []
afterEach(() => {
  for (const x of open.splice(0).reverse()) x.close()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function node(druId: string, path = ':memory:') {
  const store = EventStore.open({ path, druId, skewPolicy: 'tolerate' })
  const docs = new DocumentStore(store, { onError: () => undefined })
  open.push(store, docs)
  return { store, docs }
}

/** A chain of events of `origin`, each carrying the given change bytes. */
function chain(origin: string, changes: Uint8Array[], docId = 'd', from = 1, prev = GENESIS_HASH): DruEvent[] {
  return changes.map((change, i) => {
    const e = sealEvent({
      origin: origin as Origin,
      seq: from + i,
      hlc: encodeHlc({ wall: 1_700_000_000_000 + i, counter: 0, node: origin }),
      docId,
      change,
      prev,
    })
    prev = e.hash
    return e
  })
}

/** `n` successive changes to one document by the actor of `origin`. */
function changesBy(origin: string, n: number, tag = 'v'): Uint8Array[] {
  let d = A.init<Record<string, number>>({ actor: actorForOrigin(origin) })
  const out: Uint8Array[] = []
  for (let i = 0; i < n; i++) {
    d = A.change(d, (x) => (x[`${tag}${i}`] = i))
    out.push(A.getLastLocalChange(d)!)
  }
  return out
}

/** One change by `origin`'s actor creating `levels` maps inside one another. */
function nested(origin: string, levels: number): Uint8Array {
  const value: Record<string, unknown> = {}
  let at = value
  for (let i = 1; i < levels; i++) at = (at.n = {}) as Record<string, unknown>
  return A.getLastLocalChange(
    A.change(A.init<Record<string, unknown>>({ actor: actorForOrigin(origin) }), (d) => (d.deep = value)),
  )!
}

/** The change with byte `at` flipped. */
function flipped(change: Uint8Array, at: number): Uint8Array {
  const out = Uint8Array.from(change)
  out[at]! ^= 1
  return out
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return (err as { code?: string }).code
  }
  return undefined
}

describe('changes are checked before they are stored', () => {
  it.each<[string, (o: string) => Uint8Array[]]>([
    ['bytes that are not an Automerge change', () => [new Uint8Array([1, 2, 3, 4])]],
    ["a change written under another origin's actor", () => changesBy('b/1', 1)],
    ['two changes under one actor and seq (two contents)', (o) => [changesBy(o, 1, 'x')[0]!, changesBy(o, 1, 'y')[0]!]],
    ["a change that skips its actor's seq", (o) => [changesBy(o, 2)[1]!]],
    // Automerge's WASM aborts the process near 1,500 levels: one change may not create more than 256.
    ['a change nesting objects 300 levels deep', (o) => [nested(o, 300)]],
    // Automerge's decode and apply ignore the chunk checksum (its loadIncremental does not).
    ['a change whose checksum does not match its contents', (o) => [flipped(changesBy(o, 1)[0]!, 4)]],
  ])('refuses %s with INVALID_EVENT; nothing is stored or forwarded', (_name, make) => {
    const x = node('x')
    const origin = 'm/1'
    const good = chain(origin, changesBy(origin, 1, 'g'), 'other')
    x.store.ingest(good)
    const before = x.store.fingerprint()
    const bad = chain(origin, make(origin), 'd', 2, good[0]!.hash)
    expect(codeOf(() => x.store.ingest(bad))).toBe('INVALID_EVENT')
    expect(x.store.fingerprint()).toEqual(before)
    expect([...x.store.eventsMissing({})].flat()).toHaveLength(1)
    expect(x.docs.get('other')).toEqual({ g0: 0 })
  })

  it('accepts an origin continuing its seq in batches, after a restart, and after compaction folded its earlier changes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dru-cv-'))
    dirs.push(dir)
    const path = join(dir, 'x.db')
    let x = node('x', path)
    const origin = 'm/1'
    const all = chain(origin, changesBy(origin, 9))
    x.store.ingest(all.slice(0, 3))
    x.store.ingest(all.slice(3, 5))
    // Compaction folds them; a table from an older schema would be empty: both count folded envelopes.
    const steps = x.docs.compact(x.store.vv())
    while (!steps.next().done);
    x.store.db.exec('delete from actor_seqs')
    x.docs.close()
    x.store.close()
    open.splice(0)
    x = node('x', path)
    x.store.ingest(all.slice(5))
    expect(x.docs.get('d')).toEqual(Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`v${i}`, i])))
    // A replay of an old change under a new seq of the chain is still refused.
    const replay = chain(origin, [all[2]!.change], 'd', 10, all[8]!.hash)
    expect(codeOf(() => x.store.ingest(replay))).toBe('INVALID_EVENT')
  })

  it('counts a batch per (document, origin): an origin interleaving two documents, with its seqs table lost, is accepted and its replays refused', () => {
    const x = node('x')
    const origin = 'm/1'
    const d = changesBy(origin, 4, 'v')
    const e = changesBy(origin, 4, 'w')
    // One chain of the origin alternating between two documents, each with its own Automerge seqs.
    const docOf = (i: number) => (i % 2 === 0 ? 'd' : 'e')
    const changes = [d[0]!, e[0]!, d[1]!, e[1]!, d[2]!, e[2]!, d[3]!, e[3]!]
    const events: DruEvent[] = []
    let prev = GENESIS_HASH
    changes.forEach((change, i) => {
      const ev = chain(origin, [change], docOf(i), i + 1, prev)[0]!
      prev = ev.hash
      events.push(ev)
    })
    x.store.ingest(events.slice(0, 2))
    x.store.db.exec('delete from actor_seqs')
    x.store.ingest(events.slice(2))
    expect(x.docs.get('d')).toEqual({ v0: 0, v1: 1, v2: 2, v3: 3 })
    expect(x.docs.get('e')).toEqual({ w0: 0, w1: 1, w2: 2, w3: 3 })
    const replay = chain(origin, [d[1]!], 'd', 9, prev)
    expect(codeOf(() => x.store.ingest(replay))).toBe('INVALID_EVENT')
  })
})

describe('ActorSeqs, per (origin, document) pair', () => {
  it('keeps each pair apart when origins and documents interleave in a batch in any order, and refuses the event that breaks its own pair', () => {
    const x = node('x')
    const seqs = new ActorSeqs(x.store)
    const by = { a: { d: changesBy('a/1', 3, 'd'), e: changesBy('a/1', 2, 'e') }, b: { d: changesBy('b/1', 3, 'd') } }
    const ev = (origin: string, docId: string, change: Uint8Array, seq: number) =>
      sealEvent({
        origin: origin as Origin,
        seq,
        hlc: encodeHlc({ wall: 1, counter: 0, node: origin }),
        docId,
        change,
        prev: 'a'.repeat(64),
      })
    // Rows as if each pair had no change yet (the log's counts are not consulted: nothing is stored here).
    const zero = x.store.db.prepare('insert into actor_seqs (doc_id, origin, seq) values (?, ?, 0)')
    for (const [docId, origin] of [
      ['d', 'a/1'],
      ['e', 'a/1'],
      ['d', 'b/1'],
    ])
      zero.run(docId, origin)
    // Not sorted by origin: a's, b's and a's other document's events alternate.
    const batch = [
      ev('a/1', 'd', by.a.d[0]!, 1),
      ev('b/1', 'd', by.b.d[0]!, 1),
      ev('a/1', 'e', by.a.e[0]!, 2),
      ev('b/1', 'd', by.b.d[1]!, 2),
      ev('a/1', 'd', by.a.d[1]!, 3),
      ev('a/1', 'e', by.a.e[1]!, 4),
    ]
    x.store.db.transaction(() => seqs.check(batch, { db: x.store.db }))()
    const rows = x.store.db.prepare('select origin, doc_id, seq from actor_seqs order by origin, doc_id').all()
    expect(rows).toEqual([
      { origin: 'a/1', doc_id: 'd', seq: 2 },
      { origin: 'a/1', doc_id: 'e', seq: 2 },
      { origin: 'b/1', doc_id: 'd', seq: 2 },
    ])
    // b's next change in d continues b's seq 2, whatever a did there in between; a second b seq 2 does not.
    const next = [ev('a/1', 'd', by.a.d[2]!, 5), ev('b/1', 'd', by.b.d[2]!, 3)]
    expect(() => x.store.db.transaction(() => seqs.check(next, { db: x.store.db }))()).not.toThrow()
    const again = [ev('a/1', 'e', changesBy('a/1', 3, 'e')[2]!, 6), ev('b/1', 'd', by.b.d[1]!, 4)]
    let message = ''
    try {
      x.store.db.transaction(() => seqs.check(again, { db: x.store.db }))()
    } catch (err) {
      message = (err as Error).message
    }
    expect(message).toMatch(/^b\/1#4 \(d\): Automerge seq 2 of this origin's actor is already used/)
  })
})

describe('history stored before these checks', () => {
  it("a second change under one actor and seq is skipped (the same one on every DRU: the origin's seq order decides), the document reads", () => {
    const dir = mkdtempSync(join(tmpdir(), 'dru-iso-'))
    dirs.push(dir)
    const path = join(dir, 'x.db')
    // A bare store (no documents attached) took a duplicate Automerge seq.
    {
      const bare = EventStore.open({ path, druId: 'x', skewPolicy: 'tolerate' })
      bare.ingest(chain('m/1', [changesBy('m/1', 1, 'x')[0]!, changesBy('m/1', 1, 'y')[0]!], 'poison'))
      bare.close()
    }
    const x = node('x', path)
    expect(x.docs.get('poison')).toEqual({ x0: 0 })
    expect(x.docs.rejectedChanges()).toMatchObject({ count: 1, changes: [{ origin: 'm/1', seq: 2 }] })
    expect(x.docs.isolated().count).toBe(0)
  })
})

describe('a document whose snapshot cannot be loaded is isolated', () => {
  it('reading it fails with DOCUMENT_ISOLATED; every other document, digests and compaction keep working, across restarts', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dru-iso-'))
    dirs.push(dir)
    const path = join(dir, 'x.db')
    {
      const w = node('x', path)
      w.store.ingest(chain('m/1', changesBy('m/1', 2, 'p'), 'poison'))
      w.store.ingest(chain('n/1', changesBy('n/1', 2), 'fine'))
      w.docs.get('poison')
      w.docs.flushSnapshots()
      // The stored snapshot is damaged (a bad disk, or a snapshot written before snapshots were checked).
      w.store.db.prepare("update docs set snapshot = x'85dead' where doc_id = 'poison'").run()
      w.docs.close()
      w.store.close()
      open.splice(0)
    }
    let x = node('x', path)
    expect(codeOf(() => x.docs.get('poison'))).toBe('DOCUMENT_ISOLATED')
    expect(codeOf(() => x.docs.change('poison', (d) => (d.z = 1)))).toBe('DOCUMENT_ISOLATED')
    expect(x.docs.get('fine')).toEqual({ v0: 0, v1: 1 })
    expect(x.docs.change('fine', (d) => (d.w = 1))).toBeDefined()
    const digest = x.docs.clusterDigest()
    expect(digest).toMatchObject({ documents: 1, isolated: 1 })
    expect(x.docs.isolated()).toMatchObject({ count: 1, docs: [{ docId: 'poison' }] })
    // Compaction snapshots what it can and keeps the isolated document's events.
    const steps = x.docs.compact(x.store.vv())
    let r = steps.next()
    while (!r.done) r = steps.next()
    expect(r.value.heldBack).toContain('m/1')
    expect(x.store.count()).toBeGreaterThanOrEqual(2)
    x.docs.close()
    x.store.close()
    open.splice(0)
    x = node('x', path)
    expect(x.docs.isolated().count).toBe(1)
    expect(codeOf(() => x.docs.get('poison'))).toBe('DOCUMENT_ISOLATED')
    expect(x.docs.retryIsolated('poison')).toBe(false)
    expect(x.docs.clusterDigest()).toMatchObject({ documents: 1, isolated: 1 })
  })
})
