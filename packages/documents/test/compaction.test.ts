import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { decodeHlc, encodeHlc, isDruError, meetVv, type FoldedEnvelope, type VersionVector } from '@dru/core'
import { EventStore } from '@dru/store-sqlite'
import { afterEach, describe, expect, it } from 'vitest'
import { DocumentStore, type CompactResult } from '@dru/documents'

// Compaction folds events below a floor into document snapshots and deletes them, keeping
// each one's envelope; a DRU below that floor is bootstrapped by rebuilding the folded
// events from the snapshots' change bytes and the envelopes, checked like any event. These
// tests check the promises: documents read the same, the log shrinks, a bootstrapped DRU
// converges with the whole verified history, and a crash between the steps loses nothing.

const open: Array<{ store: EventStore; docs: DocumentStore }> = []
const dirs: string[] = []

function make(druId: string, path = ':memory:') {
  const store = EventStore.open({ path, druId, skewPolicy: 'tolerate' })
  const docs = new DocumentStore(store, { cache: { maxDocs: 4 }, snapshotAfter: 3 })
  const node = { store, docs }
  open.push(node)
  return node
}
type Node = ReturnType<typeof make>

function tempDb(): string {
  const dir = mkdtempSync(join(tmpdir(), 'dru-compact-'))
  dirs.push(dir)
  return join(dir, 'dru.db')
}

afterEach(() => {
  for (const { store, docs } of open.splice(0)) {
    if (store.closed) continue
    docs.close()
    store.close()
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** Stages every snapshot of `from` at `to` (the change bytes a bootstrap carries). */
function stageSnapshots(from: Node, to: Node): void {
  let after = ''
  for (;;) {
    const page = from.docs.snapshotPage(after, 64 * 1024)
    for (const d of page.docs) to.store.stageChanges(d.docId, to.docs.changesOf(d.docId, d.bytes))
    if (page.next === undefined) break
    after = page.next
  }
}

/** The envelopes of what `to` lacks below `from`'s base, per origin. */
function foldedFor(from: Node, to: Node): FoldedEnvelope[][] {
  const base = from.store.base()
  const theirs = to.store.vv()
  return Object.keys(base)
    .filter((o) => (theirs[o] ?? 0) < base[o]!.seq)
    .map((o) => from.store.folded(o, (theirs[o] ?? 0) + 1, 1e9).filter((e) => e.seq <= base[o]!.seq))
}

/**
 * Plain sync between two document stores, as the protocol does it: below the sender's base,
 * rebuild the folded events from its snapshots and envelopes and ingest them; then events.
 */
function sync(from: Node, to: Node): void {
  const runs = foldedFor(from, to)
  if (runs.length > 0) {
    to.store.clearStage()
    stageSnapshots(from, to)
    for (const run of runs) to.store.ingest(to.store.rebuildFolded(run))
    to.store.clearStage()
  }
  for (const batch of from.store.eventsMissing(to.store.vv())) to.store.ingest(batch)
}

function runCompact(node: Node, floor: VersionVector): CompactResult {
  const steps = node.docs.compact(floor, { deleteChunk: 7, progressEvery: 2 })
  for (;;) {
    const r = steps.next()
    if (r.done) return r.value
  }
}

function allDocs(node: Node): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const id of node.docs.docIds()) out[id] = node.docs.get(id)
  return out
}

function write(node: Node, docId: string, key: string, value: number): void {
  node.docs.change(docId, (d) => {
    d[key] = value
    if (!d.log) d.log = []
    d.log.push(`${node.store.druId}:${value}`)
  })
}

describe('compaction', () => {
  it('deletes the events below the floor; every document reads the same, before and after reopening', () => {
    const path = tempDb()
    let a = make('us-east', path)
    const b = make('eu-west')
    for (let i = 0; i < 40; i++) write(i % 3 === 0 ? b : a, `doc-${i % 9}`, `k${i % 4}`, i)
    sync(b, a)
    sync(a, b)
    const before = allDocs(a)
    const digest = a.docs.clusterDigest()
    const fingerprint = a.store.fingerprint()
    const events = a.store.count()

    const result = runCompact(a, meetVv([a.store.vv(), b.store.vv()]))
    expect(result.eventsDeleted).toBe(events)
    expect(result.heldBack).toEqual([])
    expect(a.store.count()).toBe(0)
    expect(allDocs(a)).toEqual(before)
    expect(a.docs.clusterDigest()).toEqual(digest)
    expect(a.store.fingerprint()).toEqual(fingerprint)
    expect(a.store.verifyLog().events).toBe(0)

    a.docs.close()
    a.store.close()
    a = make('us-east', path)
    expect(allDocs(a)).toEqual(before)
    expect(a.store.baseVv()).toEqual(a.store.vv())
    // New writes after compaction chain from the base and replicate as usual.
    write(a, 'doc-1', 'after', 1)
    write(b, 'doc-2', 'after', 2)
    sync(a, b)
    sync(b, a)
    expect(a.docs.clusterDigest()).toEqual(b.docs.clusterDigest())
    expect(a.store.verifyLog().events).toBe(2)
  })

  it('lists documents held only in snapshots and those in the log once each, in SQLite text order, across pages', () => {
    const a = make('eu-west-1')
    // U+FF01 sorts before U+1F600 as UTF-8 (SQLite) but after it as UTF-16 (JavaScript's <).
    const folded = ['a', 'c\uff01', 'e']
    const logged = ['b', 'c\u{1f600}', 'd']
    for (const id of folded) a.docs.change(id, (d) => void (d.x = 1))
    runCompact(a, a.store.vv())
    for (const id of logged) a.docs.change(id, (d) => void (d.x = 1))
    // 'e' is in a snapshot and, after this change, in the log as well.
    a.docs.change('e', (d) => void (d.x = 2))
    const expected = ['a', 'b', 'c\uff01', 'c\u{1f600}', 'd', 'e']
    expect([...a.docs.docIds()]).toEqual(expected)
    expect([...a.docs.docIds(2)]).toEqual(expected)
    expect([...a.docs.docIds(1)]).toEqual(expected)
  })

  it('keeps what a peer has not acknowledged, and refuses to stream below the base with BELOW_FLOOR', () => {
    const a = make('us-east')
    const b = make('eu-west')
    for (let i = 0; i < 10; i++) write(a, `doc-${i % 3}`, 'k', i)
    sync(a, b)
    for (let i = 10; i < 20; i++) write(a, `doc-${i % 3}`, 'k', i)
    const floor = meetVv([a.store.vv(), b.store.vv()])
    const result = runCompact(a, floor)
    expect(result.base).toEqual({ [a.store.origin]: 10 })
    expect(a.store.count()).toBe(10)
    // b holds up to 10 and can still be served events.
    sync(a, b)
    expect(b.docs.clusterDigest()).toEqual(a.docs.clusterDigest())
    try {
      Array.from(a.store.eventsMissing({}))
      expect.unreachable('streaming below the base must fail')
    } catch (err) {
      expect(isDruError(err, 'BELOW_FLOOR')).toBe(true)
    }
  })

  it('a fresh DRU rebuilds the folded events from snapshots and envelopes, holds the whole verified history and converges', () => {
    const a = make('us-east')
    const b = make('eu-west')
    for (let i = 0; i < 30; i++) write(i % 2 ? a : b, `doc-${i % 7}`, `k${i % 3}`, i)
    sync(a, b)
    sync(b, a)
    runCompact(a, meetVv([a.store.vv(), b.store.vv()]))
    for (let i = 30; i < 36; i++) write(a, `doc-${i % 7}`, 'late', i)
    const c = make('ap-south')
    write(c, 'doc-c', 'own', 1)
    sync(a, c)
    // c now holds everything a holds (its own event besides), the folded events rebuilt and verified.
    expect(c.store.vv()).toEqual({ ...a.store.vv(), [c.store.origin]: 1 })
    const total = Object.values(a.store.vv()).reduce((n, s) => n + s, 0)
    expect(c.store.count()).toBe(total + 1)
    expect(c.store.verifyLog().events).toBe(total + 1)
    sync(c, a)
    sync(b, c)
    sync(c, b)
    sync(a, b)
    for (const n of [a, b, c]) expect(n.docs.clusterDigest()).toEqual(a.docs.clusterDigest())
    expect(c.store.fingerprint()).toEqual(a.store.fingerprint())
    expect(allDocs(c)).toEqual(allDocs(b))
    // c compacts too, and then bootstraps the next newcomer the same way.
    runCompact(c, meetVv([a.store.vv(), b.store.vv(), c.store.vv()]))
    const d = make('sa-east')
    sync(c, d)
    expect(d.docs.clusterDigest()).toEqual(a.docs.clusterDigest())
    expect(d.store.fingerprint()).toEqual(c.store.fingerprint())
  })

  it('a crash after the base moved but before the deletes finished loses nothing; compacting again finishes', () => {
    const path = tempDb()
    let a = make('us-east', path)
    for (let i = 0; i < 50; i++) write(a, `doc-${i % 5}`, 'k', i)
    const before = allDocs(a)
    const steps = a.docs.compact(a.store.vv(), { deleteChunk: 10, progressEvery: 1000 })
    let r = steps.next()
    while (!r.done && r.value.phase !== 'delete') r = steps.next()
    steps.next() // one chunk deleted
    const remaining = a.store.count()
    expect(remaining).toBeGreaterThan(0)
    expect(remaining).toBeLessThan(50)
    // The process dies here: reopen the file.
    a.store.db.close()
    ;(a.store as unknown as { close(): void }).close = () => {}
    open.splice(open.indexOf(a), 1)
    a = make('us-east', path)
    expect(allDocs(a)).toEqual(before)
    const again = runCompact(a, a.store.vv())
    expect(again.eventsDeleted).toBe(remaining)
    expect(a.store.count()).toBe(0)
    expect(allDocs(a)).toEqual(before)
  })

  it('a document with changes waiting for missing dependencies holds the floor back instead of losing them', () => {
    const a = make('us-east')
    const b = make('eu-west')
    const c = make('ap-south')
    write(b, 'x', 'k', 1)
    sync(b, a)
    write(a, 'x', 'k', 2) // depends on b's change
    write(a, 'y', 'k', 3)
    // c gets a's events but not b's: a's change to x waits for its dependency.
    for (const batch of a.store.eventsMissing(c.store.vv()))
      c.store.ingest(batch.filter((e) => e.origin === a.store.origin))
    const result = runCompact(c, c.store.vv())
    expect(result.heldBack).toEqual([a.store.origin])
    expect(result.eventsDeleted).toBe(0)
    sync(b, c)
    expect(c.docs.get('x')).toEqual(a.docs.get('x'))
    const second = runCompact(c, c.store.vv())
    expect(second.heldBack).toEqual([])
    expect(c.store.count()).toBe(0)
    expect(c.docs.get('x')).toEqual(a.docs.get('x'))
  })

  it('a bootstrap proves what it delivers: a change nobody folded, a wrong envelope or a forged field is refused and changes nothing', () => {
    const a = make('us-east')
    const b = make('eu-west')
    for (let i = 0; i < 8; i++) write(a, i % 2 ? 'd' : 'e', 'k', i)
    sync(a, b)
    runCompact(a, meetVv([a.store.vv(), b.store.vv()]))
    write(a, 'd', 'after', 99)
    const c = make('ap-south')
    stageSnapshots(a, c)
    const [run] = foldedFor(a, c)
    expect(run).toHaveLength(8)
    const fp = c.store.fingerprint()
    const tampered: Array<[string, FoldedEnvelope[], string]> = [
      [
        'an unknown change hash',
        run!.map((e, i) => (i === 3 ? { ...e, changeHash: new Uint8Array(32).fill(7) } : e)),
        'MALFORMED',
      ],
      [
        'a change staged for another document',
        run!.map((e, i) => (i === 3 ? { ...e, docId: e.docId === 'd' ? 'e' : 'd' } : e)),
        'MALFORMED',
      ],
      [
        'a forged HLC (the next link breaks)',
        run!.map((e, i) =>
          i === 3 ? { ...e, hlc: encodeHlc({ ...decodeHlc(e.hlc), counter: decodeHlc(e.hlc).counter + 1 }) } : e,
        ),
        'CHAIN_BROKEN',
      ],
    ]
    for (const [name, envs, code] of tampered) {
      let got: string | undefined
      try {
        const rebuilt = c.store.rebuildFolded(envs)
        // The rebuilt run is chained from the forged event; the first real event above the base does not link to it.
        c.store.ingest([...rebuilt, ...[...a.store.eventsMissing({ [a.store.origin]: 8 })].flat()])
      } catch (err) {
        got = (err as { code?: string }).code
      }
      expect(got, name).toBe(code)
      expect(c.store.fingerprint(), name).toEqual(fp)
    }
    // Untampered, the same evidence rebuilds a's history.
    sync(a, c)
    expect(c.docs.clusterDigest()).toEqual(a.docs.clusterDigest())
    // Re-delivering compacted events to a is harmless: it holds their boundary hash.
    const old = [...c.store.eventsMissing({})].flat().filter((e) => e.origin === a.store.origin && e.seq <= 8)
    expect(a.store.ingest(old).duplicates).toBe(old.length)
    expect(() => a.store.ingest([{ ...old[old.length - 1]!, hash: 'e'.repeat(64) }])).toThrow()
  })

  it('bad snapshot bytes are MALFORMED and stage nothing', () => {
    const a = make('us-east')
    write(a, 'd', 'k', 1)
    expect(() => a.docs.changesOf('d', new Uint8Array([1, 2, 3, 4]))).toThrow(
      expect.objectContaining({ code: 'MALFORMED' }),
    )
  })

  it('property: random writes, exchanges and compactions at the members’ floor; a newcomer bootstrapped from any DRU converges', () => {
    const ids = ['us-east', 'eu-west', 'ap-south']
    const step = fc.oneof(
      fc.record({ kind: fc.constant('write' as const), node: fc.nat(2), doc: fc.nat(5), value: fc.nat(1000) }),
      fc.record({ kind: fc.constant('sync' as const), from: fc.nat(2), to: fc.nat(2) }),
      fc.record({ kind: fc.constant('compact' as const), node: fc.nat(2) }),
    )
    fc.assert(
      fc.property(fc.array(step, { minLength: 5, maxLength: 60 }), fc.nat(2), (steps, source) => {
        const nodes = ids.map((id) => make(id))
        try {
          for (const s of steps) {
            if (s.kind === 'write') write(nodes[s.node]!, `doc-${s.doc}`, `k${s.value % 3}`, s.value)
            else if (s.kind === 'sync') {
              if (s.from !== s.to) sync(nodes[s.from]!, nodes[s.to]!)
            } else {
              // The floor: what every member holds (acks are what they hold, here exactly).
              const floor = meetVv(nodes.map((n) => n.store.vv()))
              runCompact(nodes[s.node]!, floor)
            }
          }
          const newcomer = make('sa-east')
          sync(nodes[source]!, newcomer)
          for (let round = 0; round < 2; round++)
            for (const x of [...nodes, newcomer]) for (const y of [...nodes, newcomer]) if (x !== y) sync(x, y)
          const digest = nodes[0]!.docs.clusterDigest()
          for (const n of [...nodes, newcomer]) {
            expect(n.docs.clusterDigest()).toEqual(digest)
            expect(n.store.fingerprint()).toEqual(nodes[0]!.store.fingerprint())
          }
        } finally {
          for (const n of open.splice(0)) {
            n.docs.close()
            n.store.close()
          }
        }
      }),
      { numRuns: Number(process.env.DRU_PROPERTY_RUNS ?? 60), seed: Number(process.env.DRU_PROPERTY_SEED ?? 20261125) },
    )
  })
})
