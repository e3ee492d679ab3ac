import * as A from '@automerge/automerge'
import { describe, expect, it } from 'vitest'
import { actorForOrigin } from '@dru/documents'
import { chain, useNodes } from './fixtures/nodes.js'
import { MAX_DOCUMENT_DEPTH } from '../src/depth-screen.js'

// A member may nest objects at most 256 levels in one change, but could build on its own
// deepest object change after change: 32 changes of 250 levels reached 8,000, and applying
// them trapped inside Automerge's WASM ("Module terminated"), after which every Automerge call
// of the process failed. The depth screen keeps such a change from Automerge.

const { node, tempPath } = useNodes()

/** `count` changes of `perChange` maps, each made inside the last map made: depth count × perChange. */
function nestingChanges(origin: string, count: number, perChange: number): Uint8Array[] {
  const actor = actorForOrigin(origin)
  const out: Uint8Array[] = []
  let made = 0
  let deps: string[] = []
  for (let c = 0; c < count; c++) {
    const ops = Array.from({ length: perChange }, (_, i) => ({
      action: 'makeMap',
      obj: made + i === 0 ? '_root' : `${made + i}@${actor}`,
      key: 'a',
      pred: [] as string[],
    }))
    const bytes = A.encodeChange({ actor, seq: c + 1, startOp: made + 1, deps, time: 0, message: null, ops } as never)
    deps = [A.decodeChange(bytes).hash!]
    made += perChange
    out.push(bytes)
  }
  return out
}

function depthOf(doc: unknown): number {
  let d = 0
  for (let o = (doc as { a?: unknown }).a; o !== undefined; o = (o as { a?: unknown }).a) d++
  return d
}

describe('a document nested deeper and deeper over many changes', () => {
  const attack = chain('m/1', 'deep', nestingChanges('m/1', 32, 250))

  it('stops at the depth limit: the change past it is rejected, the module and every other document keep working', () => {
    const x = node('x')
    x.docs.change('other', (d: { n?: number }) => void (d.n = 1))
    x.docs.change('deep', (d: { mine?: number }) => void (d.mine = 1)) // cached
    x.store.ingest(attack)
    const deep = x.docs.get('deep')
    expect(depthOf(deep)).toBe(MAX_DOCUMENT_DEPTH)
    expect(x.docs.rejectedChanges()).toMatchObject({ count: 1, changes: [{ origin: 'm/1', seq: 5, docId: 'deep' }] })
    expect(x.errors.some((m) => m.includes(`at most ${MAX_DOCUMENT_DEPTH}`))).toBe(true)
    expect(x.docs.isolated().count).toBe(0)
    // Automerge still works in this process.
    x.docs.change('other', (d: { n?: number }) => void (d.n = 2))
    expect(x.docs.get('other')).toEqual({ n: 2 })
  }, 60_000)

  it('decides the same on a cold load, and after a restart', () => {
    const path = tempPath()
    const y = node('y', path)
    y.store.ingest(attack) // not cached: loaded from the log on the first read
    expect(depthOf(y.docs.get('deep'))).toBe(MAX_DOCUMENT_DEPTH)
    const digest = y.docs.digest('deep')!.digest
    y.close()
    const again = node('y', path)
    expect(depthOf(again.docs.get('deep'))).toBe(MAX_DOCUMENT_DEPTH)
    expect(again.docs.digest('deep')!.digest).toBe(digest)
    expect(again.docs.rejectedChanges().count).toBe(1)
    const x = node('x')
    x.store.ingest(attack.slice(0, 6))
    x.store.ingest(attack.slice(6))
    expect(x.docs.digest('deep')!.digest).toBe(digest)
  }, 60_000)

  it('leaves legitimate nesting alone: a change made inside an object deleted concurrently applies alike in either order', () => {
    const a = A.change(A.init<Record<string, unknown>>({ actor: actorForOrigin('a/1') }), (d) => {
      d.box = { inner: {} }
    })
    const base = chain('a/1', 'doc', [A.getLastLocalChange(a)!])
    const b = A.change(A.clone(a, { actor: actorForOrigin('b/1') }), (d) => {
      ;(d.box as { inner: Record<string, unknown> }).inner.deeper = { x: 1 }
    })
    const c = A.change(a, (d) => {
      delete d.box
    })
    const bEv = chain('b/1', 'doc', [A.getLastLocalChange(b)!])
    const cEv = chain('a/1', 'doc', [A.getLastLocalChange(c)!], 2, base[0]!.hash)
    const p = node('p')
    const q = node('q')
    p.store.ingest(base)
    expect(p.docs.get('doc')).toEqual({ box: { inner: {} } })
    p.store.ingest(cEv)
    p.store.ingest(bEv) // made inside an object p no longer shows
    q.store.ingest(bEv)
    q.store.ingest([...base, ...cEv])
    expect(p.docs.digest('doc')!.digest).toBe(q.docs.digest('doc')!.digest)
    expect(p.docs.rejectedChanges().count).toBe(0)
    expect(q.docs.rejectedChanges().count).toBe(0)
    expect(A.getAllChanges(p.docs.doc('doc')!)).toHaveLength(3)
  })

  it('a local document never nears the bound: chained local changes stop at the value guard (256 levels)', () => {
    const { docs } = node('local')
    let depth = 0
    let code: string | undefined
    for (; depth < 300; depth++) {
      try {
        docs.change('deep', (doc: any) => {
          let o = doc
          for (let i = 0; i < depth; i++) o = o.a
          o.a = {}
        })
      } catch (err) {
        code = (err as { code?: string }).code
        break
      }
    }
    expect({ depth, code }).toEqual({ depth: 256, code: 'INVALID_VALUE' })
    expect(depthOf(docs.get('deep'))).toBe(256)
    expect(256).toBeLessThan(MAX_DOCUMENT_DEPTH)
  })
})
