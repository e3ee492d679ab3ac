import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { encodeHlc } from '@dru/core'
import { RunBodyDamaged, RunBodyWriter, decodeRunBody, decodeRunEvent, docsOfRunBody } from '../src/run-body.js'
import { encodeStoredHlc } from '../src/stored-form.js'

const ORIGIN = 'a/1'
const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'))
const node = fc.oneof(fc.constant(ORIGIN), fc.constantFrom('b/2', 'ü/3', 'x'.repeat(96)))
const event = fc.record({
  doc: fc.nat({ max: 2 ** 40 }),
  hlc: fc
    .tuple(fc.nat({ max: 10 ** 15 - 1 }), fc.nat({ max: 10 ** 10 - 1 }), node)
    .map(([wall, counter, n]) => encodeHlc({ wall, counter, node: n })),
  change: fc.uint8Array({ maxLength: 300 }),
  hash: hex64,
})

function write(events: Array<{ doc: number; hlc: string; change: Uint8Array; hash: string }>): {
  body: Buffer
  hashes: string
} {
  const w = new RunBodyWriter()
  for (const e of events) w.add(e.doc, encodeStoredHlc(e.hlc, ORIGIN), e.change, e.hash)
  const { body, hashes } = w.take()
  return { body, hashes: hashes.toString('hex') }
}

describe('run body (schema 6)', () => {
  it('round-trips every event, one at a time or all, and their documents (property)', () => {
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 40 }), hex64, (events, prev) => {
        const { body, hashes } = write(events)
        const all = decodeRunBody(body, hashes, events.length, 100, 7, prev, ORIGIN)
        expect(docsOfRunBody(body, events.length)).toEqual(events.map((e) => e.doc))
        events.forEach((e, i) => {
          const want = {
            lsn: 100 + i,
            seq: 7 + i,
            doc: e.doc,
            hlc: e.hlc,
            change: Buffer.from(e.change),
            prev: i === 0 ? prev : events[i - 1]!.hash,
            hash: e.hash,
            damaged: false,
          }
          expect({ ...all[i]!, change: Buffer.from(all[i]!.change) }).toEqual(want)
          const one = decodeRunEvent(body, hashes, events.length, i, 100, 7, prev, ORIGIN)
          expect({ ...one, change: Buffer.from(one.change) }).toEqual(want)
        })
      }),
    )
  })

  it('a body cut short, extended or counted wrong is RunBodyDamaged, never other events (property)', () => {
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 10 }), fc.nat(), (events, at) => {
        const { body, hashes } = write(events)
        const n = events.length
        const cut = body.subarray(0, at % body.byteLength)
        expect(() => decodeRunBody(cut, hashes, n, 1, 1, '', ORIGIN)).toThrow(RunBodyDamaged)
        expect(() => docsOfRunBody(cut, n)).toThrow(RunBodyDamaged)
        expect(() => decodeRunEvent(cut, hashes, n, n - 1, 1, 1, '', ORIGIN)).toThrow(RunBodyDamaged)
        const longer = Buffer.concat([body, Buffer.from([0])])
        expect(() => decodeRunBody(longer, hashes, n, 1, 1, '', ORIGIN)).toThrow(RunBodyDamaged)
        expect(() => docsOfRunBody(longer, n)).toThrow(RunBodyDamaged)
        expect(() => decodeRunBody(body, hashes + '00'.repeat(32), n + 1, 1, 1, '', ORIGIN)).toThrow(RunBodyDamaged)
        expect(() => decodeRunEvent(body, hashes, n, n, 1, 1, '', ORIGIN)).toThrow(RunBodyDamaged)
        // Hashes of another count than the row's events.
        expect(() => decodeRunBody(body, hashes.slice(64), n, 1, 1, '', ORIGIN)).toThrow(RunBodyDamaged)
        expect(() => decodeRunEvent(body, hashes + 'ab'.repeat(32), n, 0, 1, 1, '', ORIGIN)).toThrow(RunBodyDamaged)
      }),
    )
  })

  it('keeps an HLC that is not an encoded one verbatim, and marks a damaged event', () => {
    const w = new RunBodyWriter()
    w.add(3, encodeStoredHlc('not an hlc', ORIGIN), new Uint8Array([1, 2]), 'ab'.repeat(32), true)
    const { body, hashes } = w.take()
    const [e] = decodeRunBody(body, hashes.toString('hex'), 1, 1, 1, '00'.repeat(32), ORIGIN)
    expect(e).toMatchObject({ hlc: 'not an hlc', doc: 3, damaged: true })
  })
})
