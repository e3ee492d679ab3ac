import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { DruError, classifyArrival, type ArrivingEvent } from '../src/index.js'

const RUNS = Number(process.env.DRU_PROPERTY_RUNS ?? 0) || 200
const GENESIS = '0'.repeat(64)

/** A held chain: hashes[i] is the hash at seq i + 1; positions below `forgotten` are compacted away. */
const chainArb = fc.record({
  hashes: fc.array(fc.stringMatching(/^[0-9a-f]{8}$/), { maxLength: 12 }).map((hs) => hs.map((h, i) => `${h}${i}`)),
  forgotten: fc.nat({ max: 12 }),
})

function outcome(e: ArrivingEvent, hashes: string[], forgotten: number): string {
  const head = { seq: hashes.length, hash: hashes.at(-1) ?? GENESIS }
  try {
    return classifyArrival(e, head, (seq) => (seq <= forgotten ? undefined : hashes[seq - 1]))
  } catch (err) {
    if (err instanceof DruError) return err.code
    throw err
  }
}

describe('classifyArrival (the one new / duplicate / FORK / SEQ_GAP / CHAIN_BROKEN decision)', () => {
  it('agrees with the model for any chain and any arriving event', () => {
    fc.assert(
      fc.property(
        chainArb,
        fc.nat({ max: 15 }),
        fc.boolean(),
        fc.boolean(),
        ({ hashes, forgotten }, rawSeq, sameHash, linked) => {
          const seq = rawSeq + 1
          const n = hashes.length
          const heldAt = seq <= n ? hashes[seq - 1]! : undefined
          const head = hashes.at(-1) ?? GENESIS
          const e: ArrivingEvent = {
            origin: 'a/1',
            seq,
            hash: sameHash && heldAt ? heldAt : `other${seq}`,
            prev: linked ? (seq === n + 1 ? head : (hashes[seq - 2] ?? GENESIS)) : 'not-a-link',
          }
          const known = seq === n || seq > forgotten
          const expected =
            seq <= n
              ? known && e.hash !== heldAt
                ? 'FORK'
                : 'duplicate'
              : seq > n + 1
                ? 'SEQ_GAP'
                : e.prev !== head
                  ? 'CHAIN_BROKEN'
                  : 'new'
          expect(outcome(e, hashes, forgotten)).toBe(expected)
          // Pure: the same question gets the same answer.
          expect(outcome(e, hashes, forgotten)).toBe(expected)
        },
      ),
      { numRuns: RUNS },
    )
  })

  it('examples: each refusal names the origin and seq', () => {
    const hashes = ['h1', 'h2', 'h3']
    expect(outcome({ origin: 'a/1', seq: 2, prev: 'h1', hash: 'h2' }, hashes, 0)).toBe('duplicate')
    expect(outcome({ origin: 'a/1', seq: 2, prev: 'h1', hash: 'evil' }, hashes, 0)).toBe('FORK')
    expect(outcome({ origin: 'a/1', seq: 2, prev: 'h1', hash: 'evil' }, hashes, 2)).toBe('duplicate') // compacted: cannot tell
    expect(outcome({ origin: 'a/1', seq: 3, prev: 'h2', hash: 'evil' }, hashes, 3)).toBe('FORK') // the head is always known
    expect(outcome({ origin: 'a/1', seq: 4, prev: 'h3', hash: 'h4' }, hashes, 0)).toBe('new')
    expect(outcome({ origin: 'a/1', seq: 4, prev: 'h2', hash: 'h4' }, hashes, 0)).toBe('CHAIN_BROKEN')
    expect(outcome({ origin: 'a/1', seq: 6, prev: 'h5', hash: 'h6' }, hashes, 0)).toBe('SEQ_GAP')
    expect(outcome({ origin: 'a/1', seq: 1, prev: GENESIS, hash: 'h1' }, [], 0)).toBe('new')
    try {
      classifyArrival({ origin: 'b/7', seq: 9, prev: 'x', hash: 'y' }, { seq: 2, hash: 'h2' }, () => undefined)
    } catch (err) {
      expect((err as DruError).details).toMatchObject({ origin: 'b/7', seq: 9, held: 2 })
    }
  })
})
