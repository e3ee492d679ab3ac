import * as A from '@automerge/automerge'
import { beforeAll, describe, expect, it } from 'vitest'
import type { DruEvent } from '@dru/core'
import { actorForOrigin } from '@dru/documents'
import { chain, useNodes, type TestNode } from './fixtures/nodes.js'

// One apply can report far more patches than a JavaScript call can take as arguments: a
// change that fills a map reports one patch per key, and a document's queue (or a cold
// load's tail) is applied in one call. Two legitimate changes of 70,000 keys each, under the
// change size limit, used to overflow the stack where the patches were joined with a spread
// (`push(...patches)`), and the document was isolated on every DRU that received them.

const KEYS = 70_000
const { node } = useNodes()

function filled(doc: A.Doc<Record<string, unknown>>, field: string): A.Doc<Record<string, unknown>> {
  return A.change(doc, (d) => {
    const m: Record<string, number> = {}
    for (let i = 0; i < KEYS; i++) m[`k${i}`] = i
    d[field] = m
    d.owner = `a:${field}`
  })
}

let bEvents: DruEvent[]
let aEvents: DruEvent[]
let refused: DruEvent[]
beforeAll(() => {
  const b = A.change(A.init<Record<string, unknown>>({ actor: actorForOrigin('b/1') }), (d) => (d.owner = 'b'))
  bEvents = chain('b/1', 'big', [A.getLastLocalChange(b)!])
  // a writes concurrently with b: `owner` is a conflict hidden among 140,000 patches.
  let a = filled(A.init<Record<string, unknown>>({ actor: actorForOrigin('a/1') }), 'm')
  const first = A.getLastLocalChange(a)!
  a = filled(a, 'n')
  aEvents = chain('a/1', 'big', [first, A.getLastLocalChange(a)!])
  expect(aEvents.every((e) => e.change.byteLength < 1 << 20)).toBe(true)
  // A member's change Automerge refuses (an operation on an object that does not exist):
  // its document is then rebuilt change by change (tolerant-apply.ts).
  const mActor = actorForOrigin('m/1')
  const m = A.change(A.clone(b, { actor: mActor }), (d) => (d.x = 1))
  const ok = A.decodeChange(A.getLastLocalChange(m)!)
  refused = chain('m/1', 'big', [A.encodeChange({ ...ok, ops: ok.ops.map((op) => ({ ...op, obj: `7@${mActor}` })) })])
}, 60_000)

function expectWhole(x: TestNode): void {
  const doc = x.docs.get('big') as { m: object; n: object }
  expect(Object.keys(doc.m)).toHaveLength(KEYS)
  expect(Object.keys(doc.n)).toHaveLength(KEYS)
  expect(x.docs.isolated().count).toBe(0)
  expect(x.docs.listConflicts('open').map((c) => c.path)).toContainEqual(['owner'])
}

describe('an apply that reports more patches than a call can take arguments', () => {
  it('reaches a cached document whole, with its conflict found', () => {
    const x = node('x')
    x.store.ingest(bEvents)
    expect(x.docs.get('big')).toEqual({ owner: 'b' }) // cached from here on
    x.store.ingest(aEvents)
    expectWhole(x)
    expect(x.errors).toEqual([])
  }, 60_000)

  it('loads a cold document whole, with its conflict found', () => {
    const y = node('y')
    y.store.ingest([...bEvents, ...aEvents])
    expectWhole(y)
    expect(y.errors).toEqual([])
  }, 60_000)

  it('rebuilds a document change by change around a refused change, keeping every other one', () => {
    const z = node('z')
    z.store.ingest([...bEvents, ...refused, ...aEvents])
    expectWhole(z)
    expect(z.docs.rejectedChanges()).toMatchObject({ count: 1, changes: [{ origin: 'm/1', seq: 1 }] })
  }, 60_000)
})
