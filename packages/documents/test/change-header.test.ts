import { createHash } from 'node:crypto'
import * as A from '@automerge/automerge'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  ChangeChecksumError,
  changeHeaderOf,
  headerFromDecoded,
  readChangeHeader,
  readChangeOpCount,
} from '../src/change-header.js'

// The reader stands in for Automerge's full decode at ingest. It may decline (and the caller
// asks Automerge), but whatever it answers must be what Automerge decodes, and it must never
// answer for a change Automerge refuses.

type Doc = Record<string, unknown>

/** One edit a member may make; interpreted against the document's current shape. */
const edit = fc.oneof(
  fc.record({ kind: fc.constant('put' as const), key: fc.constantFrom('a', 'b', 'c', 'ü'), value: scalar() }),
  fc.record({ kind: fc.constant('map' as const), key: fc.constantFrom('m', 'n'), depth: fc.nat(3) }),
  fc.record({ kind: fc.constant('list' as const), values: fc.array(scalar(), { maxLength: 4 }) }),
  fc.record({ kind: fc.constant('listEdit' as const), at: fc.nat(5), del: fc.nat(2), value: scalar() }),
  fc.record({ kind: fc.constant('text' as const), at: fc.nat(8), del: fc.nat(3), insert: fc.string({ maxLength: 6 }) }),
  fc.record({ kind: fc.constant('counter' as const), by: fc.integer({ min: -5, max: 5 }) }),
  fc.record({ kind: fc.constant('delete' as const), key: fc.constantFrom('a', 'b', 'm', 'list') }),
)

function scalar() {
  return fc.oneof(
    fc.integer(),
    fc.double({ noNaN: true }),
    fc.string({ maxLength: 8 }),
    fc.boolean(),
    fc.constant(null),
    fc.uint8Array({ maxLength: 4 }),
    fc.integer({ min: 0, max: 2 ** 40 }).map((n) => new Date(n)),
    fc.bigInt({ min: -(2n ** 50n), max: 2n ** 50n }).map((n) => Number(n)),
  )
}

function apply(d: Doc, e: Edit): void {
  switch (e.kind) {
    case 'put':
      d[e.key] = e.value
      break
    case 'map': {
      let inner: Record<string, unknown> = {}
      const outer = inner
      for (let i = 0; i < e.depth; i++) inner = inner[`l${i}`] = {}
      d[e.key] = outer
      break
    }
    case 'list':
      d.list = e.values
      break
    case 'listEdit':
      if (Array.isArray(d.list)) {
        const list = d.list as unknown[]
        const at = Math.min(e.at, list.length)
        list.splice(at, Math.min(e.del, list.length - at), e.value)
      }
      break
    case 'text':
      if (typeof d.t === 'string') {
        const at = Math.min(e.at, d.t.length)
        A.splice(d, ['t'], at, Math.min(e.del, d.t.length - at), e.insert)
      } else d.t = e.insert
      break
    case 'counter':
      if (d.k instanceof A.Counter) d.k.increment(e.by)
      else d.k = new A.Counter(e.by)
      break
    case 'delete':
      delete d[e.key]
      break
  }
}
type Edit = typeof edit extends fc.Arbitrary<infer T> ? T : never

/** Every change of a history written by up to three actors, each change a batch of edits, merging now and then. */
const history = fc
  .array(fc.record({ actor: fc.nat(2), edits: fc.array(edit, { minLength: 1, maxLength: 4 }), merge: fc.boolean() }), {
    minLength: 1,
    maxLength: 8,
  })
  .map((steps) => {
    const actors = ['aa01', 'bb0202', '6f726967696e2d63']
    let docs = actors.map((actor) => A.init<Doc>({ actor }))
    for (const step of steps) {
      docs[step.actor] = A.change(docs[step.actor]!, (d) => {
        for (const e of step.edits) apply(d, e)
      })
      if (step.merge) docs = docs.map((d, i) => (i === step.actor ? d : A.merge(d, A.clone(docs[step.actor]!))))
    }
    const changes = docs.flatMap((d) => A.getAllChanges(d))
    for (const d of docs) A.free(d)
    return changes
  })
  .filter((changes) => changes.length > 0)

/** Whether the reader answers: undefined when it declines or refuses. */
function answer(change: Uint8Array) {
  try {
    return readChangeHeader(change)
  } catch (err) {
    expect(err).toBeInstanceOf(ChangeChecksumError)
    return undefined
  }
}

function decoded(change: Uint8Array) {
  try {
    return headerFromDecoded(A.decodeChange(change))
  } catch {
    return undefined
  }
}

/** The change with its checksum rewritten to match its (altered) contents, as a forger would. */
function resealed(change: Uint8Array): Uint8Array {
  const out = Uint8Array.from(change)
  out.set(createHash('sha256').update(out.subarray(8)).digest().subarray(0, 4), 4)
  return out
}

/** The law: the reader declines, or Automerge decodes the change to exactly the reader's header. */
function agrees(change: Uint8Array): void {
  const mine = answer(change)
  if (mine === undefined) return
  const theirs = decoded(change)
  expect(theirs, 'the reader accepted a change Automerge refuses').toBeDefined()
  expect(mine).toEqual(theirs)
}

describe('readChangeHeader', () => {
  it('reads every change Automerge writes, to the fields Automerge decodes', () => {
    fc.assert(
      fc.property(history, (changes) => {
        for (const change of changes) {
          // Automerge writes integers its own decode refuses (beyond 2^53); the reader must decline those.
          if (decoded(change) === undefined) {
            expect(readChangeHeader(change)).toBeUndefined()
            continue
          }
          const mine = readChangeHeader(change)
          expect(mine, 'the reader declined a change Automerge wrote').toBeDefined()
          expect(mine).toEqual(headerFromDecoded(A.decodeChange(change)))
        }
      }),
      { numRuns: 150 },
    )
  })

  it('refuses every single-byte corruption, or reads it as Automerge does', () => {
    fc.assert(
      fc.property(history, fc.nat(), fc.integer({ min: 1, max: 255 }), (changes, pick, mask) => {
        const change = changes[pick % changes.length]!
        for (let at = 0; at < change.length; at++) {
          const bad = Uint8Array.from(change)
          bad[at]! ^= mask
          // The checksum catches a flipped byte (Automerge's decode alone would not, see below).
          expect(() => changeHeaderOf(bad)).toThrow()
          // A forger fixes the checksum: then the reader must still never answer otherwise than Automerge.
          agrees(resealed(bad))
        }
      }),
      { numRuns: 60 },
    )
  })

  it('never answers otherwise than Automerge for a truncated or extended change', () => {
    fc.assert(
      fc.property(history, fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 3 }), (changes, pick, tail) => {
        const change = changes[pick % changes.length]!
        for (let cut = 9; cut < change.length; cut++) agrees(resealed(change.subarray(0, cut)))
        const longer = new Uint8Array(change.length + tail.length)
        longer.set(change)
        longer.set(tail, change.length)
        agrees(resealed(longer))
      }),
      { numRuns: 40 },
    )
  })

  it('refuses a flipped checksum byte, which Automerge alone would accept', () => {
    const d = A.change(A.init<Doc>({ actor: 'aa01' }), (x) => {
      x.list = ['a']
    })
    const [change] = A.getAllChanges(d)
    const bad = Uint8Array.from(change!)
    bad[4]! ^= 1
    expect(() => A.decodeChange(bad)).not.toThrow()
    expect(() => changeHeaderOf(bad)).toThrow(ChangeChecksumError)
    // A change stored before this check is still read as Automerge reads it.
    expect(changeHeaderOf(bad, { ignoreChecksum: true })).toEqual(headerFromDecoded(A.decodeChange(bad)))
  })

  // Shrunk from the first property: Automerge writes an integer of 2^53 or beyond, and its own
  // decode then refuses the change ("can't be represented as a JavaScript number").
  it('declines a change holding an integer Automerge writes but its decode refuses', () => {
    const d = A.change(A.init<Doc>({ actor: 'aa01' }), (x) => {
      x.big = -(2 ** 53)
    })
    const [change] = A.getAllChanges(d)
    expect(() => A.decodeChange(change!)).toThrow()
    expect(readChangeHeader(change!)).toBeUndefined()
    expect(() => changeHeaderOf(change!)).toThrow()
  })

  it('leaves a compressed change to Automerge', () => {
    let d = A.init<Doc>({ actor: 'aa01' })
    d = A.change(d, (x) => {
      x.text = 'x'.repeat(2000)
    })
    const [change] = A.getAllChanges(d)
    // Automerge deflates large changes' columns in its document format, not in a change chunk;
    // build a chunk of type 2 (compressed) by hand: the reader must decline it.
    const compressed = Uint8Array.from(change!)
    compressed[8] = 2
    expect(readChangeHeader(resealed(compressed))).toBeUndefined()
    expect(readChangeHeader(change!)).toEqual(headerFromDecoded(A.decodeChange(change!)))
  })
})

describe('readChangeOpCount', () => {
  it('counts the ops Automerge decodes in every change Automerge writes', () => {
    fc.assert(
      fc.property(history, (changes) => {
        for (const change of changes) {
          const theirs = decoded(change)
          // Changes Automerge's own decode refuses are never applied, so never asked about.
          if (theirs === undefined) continue
          expect(readChangeOpCount(change)).toBe(theirs.opCount)
        }
      }),
      { numRuns: 150 },
    )
  })

  it('declines what it cannot read rather than guess: cut, padded or not a change chunk', () => {
    const doc = A.change(A.init<{ a?: number }>({ actor: 'aa01' }), (d) => {
      d.a = 1
    })
    const change = A.getLastLocalChange(doc)!
    expect(readChangeOpCount(change)).toBe(1)
    expect(readChangeOpCount(change.subarray(0, change.length - 1))).toBeUndefined()
    expect(readChangeOpCount(Uint8Array.from([...change, 0]))).toBeUndefined()
    expect(readChangeOpCount(Uint8Array.from([0, ...change.subarray(1)]))).toBeUndefined()
    A.free(doc)
  })
})
