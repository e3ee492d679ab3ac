import { createHash } from 'node:crypto'
import * as A from '@automerge/automerge'
import { describe, expect, it } from 'vitest'
import { GENESIS_HASH, encodeHlc, sealEvent, type Origin } from '@dru/core'
import { actorForOrigin, checkChanges } from '@dru/documents'

// checkChanges alone (no store): the nesting count at its bound, and the dependency checks
// on a change forged to name its head twice. The store-level refusals are in change-validation.test.ts.

const origin = 'm/1'
type Doc = Record<string, unknown>

function eventOf(change: Uint8Array) {
  return sealEvent({
    origin: origin as Origin,
    seq: 1,
    hlc: encodeHlc({ wall: 1_700_000_000_000, counter: 0, node: origin }),
    docId: 'd',
    change,
    prev: GENESIS_HASH,
  })
}

function codeOf(change: Uint8Array): string | undefined {
  try {
    checkChanges([eventOf(change)])
  } catch (err) {
    return (err as { code?: string }).code
  }
  return undefined
}

/** A map holding `levels - 1` maps inside one another (so `levels` maps once put in a document). */
function tower(levels: number): Doc {
  const value: Doc = {}
  let at = value
  for (let i = 1; i < levels; i++) at = (at.n = {}) as Doc
  return value
}

function changeOf(fn: (d: Doc) => void, from = A.init<Doc>({ actor: actorForOrigin(origin) })): Uint8Array {
  return A.getLastLocalChange(A.change(from, fn))!
}

function leb(n: number): number[] {
  const out: number[] = []
  do {
    out.push((n & 0x7f) | (n >= 0x80 ? 0x80 : 0))
    n >>>= 7
  } while (n > 0)
  return out
}

/** `change` (which names one dependency, a one-byte count) rewritten to name it twice, checksum fixed as a forger would. */
function namingItsDependencyTwice(change: Uint8Array): Uint8Array {
  let at = 9
  while (change[at]! & 0x80) at++
  const body = change.subarray(at + 1)
  expect(body[0]).toBe(1)
  const dep = body.subarray(1, 33)
  const newBody = Uint8Array.from([2, ...dep, ...dep, ...body.subarray(33)])
  const out = Uint8Array.from([...change.subarray(0, 9), ...leb(newBody.length), ...newBody])
  out.set(createHash('sha256').update(out.subarray(8)).digest().subarray(0, 4), 4)
  return out
}

describe('checkChanges', () => {
  it('accepts a change nesting 256 levels of objects and refuses one nesting 257', () => {
    expect(codeOf(changeOf((d) => (d.deep = tower(256))))).toBeUndefined()
    expect(codeOf(changeOf((d) => (d.deep = tower(257))))).toBe('INVALID_EVENT')
  })

  it('counts levels, not objects: 300 maps side by side, or lists of maps, are one or two levels', () => {
    expect(
      codeOf(
        changeOf((d) => {
          for (let i = 0; i < 300; i++) d[`m${i}`] = {}
        }),
      ),
    ).toBeUndefined()
    expect(codeOf(changeOf((d) => (d.items = Array.from({ length: 300 }, () => ({ n: 1 })))))).toBeUndefined()
  })

  it('counts from the objects a change finds: 200 levels under 200 levels made earlier are 200', () => {
    const doc = A.change(A.init<Doc>({ actor: actorForOrigin(origin) }), (d) => (d.deep = tower(200)))
    const second = changeOf((d) => {
      let at = d.deep as Doc
      while (at.n) at = at.n as Doc
      at.more = tower(200)
    }, doc)
    expect(codeOf(second)).toBeUndefined()
  })

  it('refuses a change naming its dependency twice', () => {
    const first = A.change(A.init<Doc>({ actor: actorForOrigin(origin) }), (d) => (d.a = 1))
    const twice = namingItsDependencyTwice(changeOf((d) => (d.b = 2), first))
    // Automerge decodes it; the check is ours.
    expect(A.decodeChange(twice).deps).toHaveLength(2)
    expect(codeOf(twice)).toBe('INVALID_EVENT')
  })
})
