import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as A from '@automerge/automerge'
import { afterEach, describe, expect, it } from 'vitest'
import { chain } from './fixtures/nodes.js'
import { EventStore } from '@dru/store-sqlite'
import { DocumentStore, actorForOrigin } from '@dru/documents'

// A member can sign a well-formed change of its own actor and seq that Automerge still
// refuses (an operation on an object that does not exist) or that applies but does not
// survive save and load (an operation naming a predecessor that never existed). Neither may
// take its document away from anybody: the first is skipped identically on every DRU, the
// second is never snapshotted, so compaction and restarts cannot lose the document.

const open: Array<{ close(): void }> = []
const dirs: string[] = []
afterEach(() => {
  for (const x of open.splice(0).reverse()) x.close()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function node(druId: string, path = ':memory:') {
  const store = EventStore.open({ path, druId, skewPolicy: 'tolerate' })
  const errors: string[] = []
  const docs = new DocumentStore(store, {
    onError: (e) => errors.push((e as { code?: string }).code ?? String(e)),
    snapshotAfter: 4,
  })
  const handle = { store, docs, errors, close: () => (docs.close(), store.close()) }
  open.push(handle)
  return handle
}

function tempPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'dru-rejected-'))
  dirs.push(dir)
  return join(dir, 'x.db')
}

/** b writes the victim document; m (a member) then sends a crafted change to it. */
function scenario(craft: (ok: A.DecodedChange, actor: string) => A.DecodedChange) {
  const b = A.change(A.init<Record<string, unknown>>({ actor: actorForOrigin('b/1') }), (d) => {
    d.owner = 'b'
    d.items = [1]
  })
  const bEvents = chain('b/1', 'victim', [A.getLastLocalChange(b)!])
  const mActor = actorForOrigin('m/1')
  const m = A.change(A.clone(b, { actor: mActor }), (d) => (d.x = 1))
  const crafted = A.encodeChange(craft(A.decodeChange(A.getLastLocalChange(m)!), mActor))
  const mEvents = chain('m/1', 'victim', [crafted])
  // b keeps writing after the attack.
  const b2 = A.change(b, (d) => (d.after = true))
  const bLater = chain('b/1', 'victim', [A.getLastLocalChange(b2)!], 2, bEvents[0]!.hash)
  return { bEvents, mEvents, bLater }
}

const missingObject = (ok: A.DecodedChange, actor: string) => ({
  ...ok,
  ops: ok.ops.map((op) => ({ ...op, obj: `7@${actor}` })),
})
const phantomPred = (ok: A.DecodedChange, actor: string) => ({
  ...ok,
  ops: ok.ops.map((op) => ({ ...op, pred: [`99@${actor}`] })),
})

describe('a change Automerge refuses does not take its document away', () => {
  it('an operation on an object that does not exist: stored, skipped on every DRU alike (cached, cold, any order, after a restart), recorded', () => {
    const { bEvents, mEvents, bLater } = scenario(missingObject)
    const path = tempPath()
    const x = node('x', path)
    x.store.ingest(bEvents)
    expect(x.docs.get('victim')).toEqual({ items: [1], owner: 'b' }) // cached from here on
    x.store.ingest(mEvents)
    x.store.ingest(bLater)
    expect(x.docs.get('victim')).toEqual({ after: true, items: [1], owner: 'b' })
    expect(A.getAllChanges(x.docs.doc('victim')!)).toHaveLength(2) // whole inside, not just on the surface
    expect(x.store.vv()['m/1']).toBe(1) // the event is stored (the logs stay equal)
    expect(x.docs.rejectedChanges()).toMatchObject({ count: 1, changes: [{ origin: 'm/1', seq: 1, docId: 'victim' }] })
    expect(x.errors).toContain('INVALID_EVENT')
    expect(x.docs.isolated().count).toBe(0)

    // Another DRU, the events in another order, the document cold when they arrive.
    const y = node('y')
    y.store.ingest(mEvents)
    y.store.ingest([...bEvents, ...bLater])
    expect(y.docs.get('victim')).toEqual({ after: true, items: [1], owner: 'b' })
    expect(y.docs.digest('victim')!.digest).toBe(x.docs.digest('victim')!.digest)

    // Restarted: the decision is remembered, nothing is reported twice.
    x.close()
    open.splice(open.indexOf(x), 1)
    const again = node('x', path)
    expect(again.docs.get('victim')).toEqual({ after: true, items: [1], owner: 'b' })
    expect(again.docs.rejectedChanges().count).toBe(1)
    expect(again.errors).toEqual([])
  })

  it('an operation naming a predecessor that never existed: applies alike everywhere, is never snapshotted, and survives compaction and a restart', () => {
    const { bEvents, mEvents, bLater } = scenario(phantomPred)
    const path = tempPath()
    const x = node('x', path)
    x.store.ingest([...bEvents, ...mEvents, ...bLater])
    const read = x.docs.get('victim')
    expect(read).toEqual({ after: true, items: [1], owner: 'b', x: 1 })
    // Compaction would fold everything into a snapshot: this document's snapshot does not load back, so it is held.
    const gen = x.docs.compact(x.store.vv())
    let r = gen.next()
    while (!r.done) r = gen.next()
    expect(x.errors).toContain('INVALID_EVENT')
    x.close()
    open.splice(open.indexOf(x), 1)
    const again = node('x', path)
    expect(again.docs.get('victim')).toEqual(read)
    expect(again.docs.isolated().count).toBe(0)
    const y = node('y')
    y.store.ingest([...mEvents, ...bEvents, ...bLater])
    expect(y.docs.digest('victim')!.digest).toBe(again.docs.digest('victim')!.digest)
  })
})
