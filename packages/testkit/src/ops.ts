import * as A from '@automerge/automerge'
import fc from 'fast-check'

/** A scalar written by the generated operations. */
export type Scalar = string | number | boolean | null

/** One document operation, as data (so failures print readably and replay exactly). */
export type DocOp =
  | { kind: 'set'; docId: string; path: string[]; key: string; value: Scalar }
  | { kind: 'delete'; docId: string; path: string[]; key: string }
  | { kind: 'increment'; docId: string; key: string; by: number }
  | { kind: 'listInsert'; docId: string; key: string; index: number; value: Scalar }
  | { kind: 'listDelete'; docId: string; key: string; index: number }
  | { kind: 'textSplice'; docId: string; key: string; index: number; del: number; insert: string }

type Obj = any

const isMap = (v: unknown): boolean =>
  v !== null &&
  typeof v === 'object' &&
  !Array.isArray(v) &&
  !(v instanceof A.Counter) &&
  !(v instanceof Date) &&
  !(v instanceof Uint8Array)

/**
 * Applies an operation inside an Automerge change callback. Operations never throw on
 * a document in any state: a missing or differently typed target is (re)created, so
 * any interleaving of operations from any DRUs is valid.
 */
export function applyOp(doc: Obj, op: DocOp): void {
  switch (op.kind) {
    case 'set':
    case 'delete': {
      let obj = doc
      for (const p of op.path) {
        if (!isMap(obj[p])) obj[p] = {}
        obj = obj[p]
      }
      if (op.kind === 'set') obj[op.key] = op.value
      else delete obj[op.key]
      return
    }
    case 'increment':
      if (!(doc[op.key] instanceof A.Counter)) doc[op.key] = new A.Counter(0)
      doc[op.key].increment(op.by)
      return
    case 'listInsert': {
      if (!Array.isArray(doc[op.key])) doc[op.key] = []
      const list = doc[op.key]
      list.insertAt(Math.min(op.index, list.length), op.value)
      return
    }
    case 'listDelete': {
      const list = doc[op.key]
      if (Array.isArray(list) && list.length > 0) (list as Obj).deleteAt(op.index % list.length)
      return
    }
    case 'textSplice': {
      if (typeof doc[op.key] !== 'string') doc[op.key] = ''
      const len = (doc[op.key] as string).length
      const at = Math.min(op.index, len)
      A.splice(doc, [op.key], at, Math.min(op.del, len - at), op.insert)
      return
    }
  }
}

export interface OpArbOptions {
  /** Document ids to pick from (few ids make concurrent edits collide). Default `doc-a`, `doc-b`. */
  docIds?: readonly string[]
  /** Map keys to pick from. Default `a`, `b`, `c`. */
  keys?: readonly string[]
}

/** Small scalars: collisions between DRUs are likely, which is the point. */
export const scalarArb: fc.Arbitrary<Scalar> = fc.oneof(
  fc.integer({ min: -100, max: 100 }),
  fc.string({ maxLength: 4 }),
  fc.boolean(),
  fc.constant(null),
)

/** fast-check arbitrary of {@link DocOp}: set/delete keys (also in nested maps), counters, list insert/delete, text splices. */
export function docOpArb(options: OpArbOptions = {}): fc.Arbitrary<DocOp> {
  const docId = fc.constantFrom(...(options.docIds ?? ['doc-a', 'doc-b']))
  const key = fc.constantFrom(...(options.keys ?? ['a', 'b', 'c']))
  const path = fc.array(fc.constantFrom('m', 'n'), { maxLength: 2 })
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('set' as const), docId, path, key, value: scalarArb }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), docId, path, key }) },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('increment' as const),
        docId,
        key: fc.constantFrom('n1', 'n2'),
        by: fc.integer({ min: -5, max: 5 }),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('listInsert' as const),
        docId,
        key: fc.constant('l'),
        index: fc.nat(6),
        value: scalarArb,
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('listDelete' as const),
        docId,
        key: fc.constant('l'),
        index: fc.nat(6),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('textSplice' as const),
        docId,
        key: fc.constant('t'),
        index: fc.nat(8),
        del: fc.nat(2),
        insert: fc.string({ maxLength: 3 }),
      }),
    },
  )
}
