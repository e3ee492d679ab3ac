import { createHash } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  DruError,
  GENESIS_HASH,
  MAX_SEQ,
  MAX_UNIT_CHANGE_BYTES,
  MAX_UNIT_EVENTS,
  UNIT_TAG,
  canonicalEventBytes,
  cutUnits,
  decodeUnit,
  openUnit,
  decodeEntry,
  ENTRY_TAG,
  encodeHlc,
  encodeUnit,
  hashEvent,
  isDocId,
  legacyUnitHash,
  sealUnits,
  entryHash,
  entryHashes,
  unitHashOf,
  unitHash,
  verifyUnitChain,
  type Origin,
  type Unit,
  type UnitEntry,
} from '../src/index.js'

const runs = Number(process.env.DRU_PROPERTY_RUNS ?? 300)

const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'))
const origin = fc
  .tuple(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/), fc.integer({ min: 1, max: 2 ** 32 }))
  .map(([id, n]) => `${id}/${n}` as Origin)
// Well-formed text without control characters or line breaks: what a document id and an HLC node may be.
const text = (max: number) =>
  fc
    .string({ unit: 'grapheme', minLength: 1, maxLength: max })
    .filter((s) => s.length <= max && isDocId(s) && !/[\u2028\u2029]/.test(s))
const entry = (o: Origin): fc.Arbitrary<UnitEntry> =>
  fc
    .record({
      wall: fc.integer({ min: 0, max: 999_999_999_999_999 }),
      counter: fc.integer({ min: 0, max: 9_999_999_999 }),
      node: fc.option(text(30), { nil: undefined }),
      docId: fc.oneof(fc.constantFrom('doc-a', 'doc-b'), text(40)),
      change: fc.uint8Array({ maxLength: 200 }),
    })
    // the node is absent when it is the unit's origin
    .map(({ node, ...e }) => (node === undefined || node === o ? e : { ...e, node }))
/** An entry as the legacy event it would have been. */
const asEvent = (u: Unit, e: UnitEntry) => ({
  origin: u.origin,
  seq: u.seq,
  hlc: encodeHlc({ wall: e.wall, counter: e.counter, node: e.node ?? u.origin }),
  docId: e.docId,
  change: e.change,
  prev: u.prev,
})
const unit: fc.Arbitrary<Unit> = origin.chain((o) =>
  fc
    .record({
      seq: fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.constant(MAX_SEQ - 40)),
      prev: hex64,
      entries: fc.array(entry(o), { minLength: 1, maxLength: 24 }),
    })
    .map(({ seq, prev, entries }) => ({ origin: o, seq, prev: seq === 1 ? GENESIS_HASH : prev, entries })),
)

function codeOf(f: () => unknown): string | undefined {
  try {
    f()
    return undefined
  } catch (e) {
    expect(e).toBeInstanceOf(DruError)
    return (e as DruError).code
  }
}

describe('unit bytes', () => {
  it('round-trip: decoding the encoding gives the unit back, and encoding it again the same bytes', () => {
    fc.assert(
      fc.property(unit, (u) => {
        const bytes = encodeUnit(u)
        const back = decodeUnit(bytes)
        expect(back).toEqual({ ...u, entries: u.entries.map((e) => ({ ...e })) })
        expect(Buffer.from(encodeUnit(back)).equals(Buffer.from(bytes))).toBe(true)
      }),
      { numRuns: runs },
    )
  })

  it('are canonical: any byte string that decodes is the encoding of what it decodes to', () => {
    // The receiver may hash a unit as it came; a second encoding of the same content would
    // give it a second hash. Flipped, cut and extended encodings, and random bytes.
    fc.assert(
      fc.property(unit, fc.nat(), fc.integer({ min: 1, max: 255 }), fc.nat({ max: 3 }), (u, pos, xor, how) => {
        const good = encodeUnit(u)
        const i = pos % good.byteLength
        let bytes: Uint8Array
        if (how === 0) {
          bytes = Uint8Array.from(good)
          bytes[i] = bytes[i]! ^ xor
        } else if (how === 1) bytes = good.subarray(0, i)
        else if (how === 2) bytes = Uint8Array.from([...good, xor])
        else bytes = Uint8Array.from([...good.subarray(0, i), xor, ...good.subarray(i)])
        let decoded: Unit | undefined
        const code = codeOf(() => (decoded = decodeUnit(bytes)))
        if (code !== undefined) expect(code).toBe('MALFORMED')
        else expect(Buffer.from(encodeUnit(decoded!)).equals(Buffer.from(bytes))).toBe(true)
      }),
      { numRuns: runs * 3 },
    )
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (raw) => {
        const bytes = Uint8Array.from([UNIT_TAG, ...raw])
        let decoded: Unit | undefined
        const code = codeOf(() => (decoded = decodeUnit(bytes)))
        if (code === undefined) expect(Buffer.from(encodeUnit(decoded!)).equals(Buffer.from(bytes))).toBe(true)
        else expect(code).toBe('MALFORMED')
      }),
      { numRuns: runs * 3 },
    )
  })

  it('an entry read alone is canonical too: what decodes hashes, as decoded, to the hash of the bytes it came from', () => {
    fc.assert(
      fc.property(unit, fc.nat(), fc.nat(), fc.integer({ min: 1, max: 255 }), (u, pick, pos, xor) => {
        const sealed = openUnit(encodeUnit(u))
        const i = pick % u.entries.length
        const bytes = Uint8Array.from(sealed.bytes.subarray(sealed.entryStarts[i], sealed.entryStarts[i + 1]))
        bytes[pos % bytes.length] = bytes[pos % bytes.length]! ^ xor
        let e: UnitEntry | undefined
        const code = codeOf(() => (e = decodeEntry(u.origin, bytes)))
        if (code !== undefined) expect(code).toBe('MALFORMED')
        else expect(Buffer.from(entryHash(u.origin, e!)).equals(createHash('sha256').update(bytes).digest())).toBe(true)
      }),
      { numRuns: runs * 2 },
    )
  })

  it('name their content: a change to any one field changes the hash', () => {
    const fields = fc.constantFrom('origin', 'seq', 'prev', 'wall', 'counter', 'node', 'docId', 'change', 'drop', 'add')
    fc.assert(
      fc.property(unit, fields, fc.nat(), (u, field, pick) => {
        const i = pick % u.entries.length
        const e = u.entries[i]!
        const { wall, counter } = e
        const node = e.node ?? u.origin
        const withEntry = (next: UnitEntry): Unit => ({ ...u, entries: u.entries.map((x, j) => (j === i ? next : x)) })
        const changed: Unit =
          field === 'origin'
            ? { ...u, origin: (u.origin.replace(/\/\d+$/, '') + 'x/1') as Origin }
            : field === 'seq'
              ? { ...u, seq: u.seq + 1, prev: u.seq === 1 ? 'ab'.repeat(32) : u.prev }
              : field === 'prev'
                ? {
                    ...u,
                    seq: u.seq === 1 ? 2 : u.seq,
                    prev: u.prev === GENESIS_HASH ? 'cd'.repeat(32) : GENESIS_HASH.replace(/0$/, '1'),
                  }
                : field === 'wall'
                  ? withEntry({ ...e, wall: wall === 0 ? 1 : wall - 1 })
                  : field === 'counter'
                    ? withEntry({ ...e, counter: counter === 0 ? 1 : counter - 1 })
                    : field === 'node'
                      ? withEntry({ ...e, node: node === 'n' ? 'm' : 'n' })
                      : field === 'docId'
                        ? withEntry({ ...e, docId: e.docId === 'z' ? 'y' : 'z' })
                        : field === 'change'
                          ? withEntry({ ...e, change: Uint8Array.from([...e.change, 1]) })
                          : field === 'drop'
                            ? {
                                ...u,
                                entries:
                                  u.entries.length > 1 ? u.entries.slice(1) : [{ ...e, change: new Uint8Array([9]) }],
                              }
                            : { ...u, entries: [...u.entries, e] }
        expect(unitHash(changed)).not.toBe(unitHash(u))
      }),
      { numRuns: runs },
    )
  })

  it('never share bytes with a legacy event: the tag is not the byte every legacy envelope starts with', () => {
    fc.assert(
      fc.property(unit, (u) => {
        const e = u.entries[0]!
        const legacy = canonicalEventBytes(asEvent(u, e))
        expect(legacy[0]).toBe(0x97)
        expect(encodeUnit(u)[0]).toBe(UNIT_TAG)
        // and so a legacy unit of these fields and a one-event unit of them are two names
        expect(legacyUnitHash(asEvent(u, e))).not.toBe(unitHash({ ...u, entries: [e] }))
      }),
      { numRuns: runs },
    )
  })

  it("a legacy unit's hash is its event's hash, so signatures over it stay valid", () => {
    fc.assert(
      fc.property(unit, (u) => {
        const e = asEvent(u, u.entries[0]!)
        expect(legacyUnitHash(e)).toBe(hashEvent(e))
      }),
      { numRuns: runs },
    )
  })

  it('check one event alone: its entry hash, and the list of entry hashes gives the unit hash', () => {
    fc.assert(
      fc.property(unit, fc.nat(), (u, pick) => {
        const i = pick % u.entries.length
        const list = entryHashes(u)
        expect(list.byteLength).toBe(32 * u.entries.length)
        const own = entryHash(u.origin, u.entries[i]!)
        expect(Buffer.from(list.subarray(32 * i, 32 * i + 32)).equals(Buffer.from(own))).toBe(true)
        expect(unitHashOf(u.origin, u.seq, u.prev, list)).toBe(unitHash(u))
        expect(openUnit(encodeUnit(u)).hash).toBe(unitHash(u))
        expect(unitHash(u)).toMatch(/^[0-9a-f]{64}$/)
        // the entry hash names the event's content and nothing of where it stands
        const e = u.entries[i]!
        expect(
          Buffer.from(entryHash(u.origin, { ...e, change: Uint8Array.from([...e.change, 0]) })).equals(
            Buffer.from(own),
          ),
        ).toBe(false)
        expect(Buffer.from(entryHash(u.origin, { ...e, docId: e.docId + 'x' })).equals(Buffer.from(own))).toBe(false)
        // (not counter ^ 1: a 32-bit operation, negative from 2^31 on, which entryHash refuses)
        const counter = e.counter > 0 ? e.counter - 1 : 1
        expect(Buffer.from(entryHash(u.origin, { ...e, counter })).equals(Buffer.from(own))).toBe(false)
        // a changed list (another event in its place) is another unit
        const other = Uint8Array.from(list)
        other[32 * i] = other[32 * i]! ^ 1
        expect(unitHashOf(u.origin, u.seq, u.prev, other)).not.toBe(unitHash(u))
      }),
      { numRuns: runs },
    )
  })
})

describe('unit bounds', () => {
  const o = 'a/1' as Origin
  const e = (bytes = 10, docId = 'd'): UnitEntry => ({
    wall: 1_700_000_000_000,
    counter: 0,
    docId,
    change: new Uint8Array(bytes),
  })

  it('refuses to write what cannot be a unit, with INVALID_EVENT', () => {
    const bad: Unit[] = [
      { origin: o, seq: 1, prev: GENESIS_HASH, entries: [] },
      { origin: o, seq: 1, prev: GENESIS_HASH, entries: Array.from({ length: MAX_UNIT_EVENTS + 1 }, () => e()) },
      { origin: o, seq: 1, prev: GENESIS_HASH, entries: [e(MAX_UNIT_CHANGE_BYTES), e(1)] },
      { origin: o, seq: 1, prev: 'ab'.repeat(32), entries: [e()] },
      { origin: o, seq: 2, prev: 'AB'.repeat(32), entries: [e()] },
      { origin: 'not an origin' as Origin, seq: 2, prev: GENESIS_HASH, entries: [e()] },
      { origin: o, seq: 0, prev: GENESIS_HASH, entries: [e()] },
      { origin: o, seq: MAX_SEQ, prev: 'ab'.repeat(32), entries: [e(), e()] },
      { origin: o, seq: 1, prev: GENESIS_HASH, entries: [{ ...e(), docId: '' }] },
      { origin: o, seq: 1, prev: GENESIS_HASH, entries: [{ ...e(), wall: 10 ** 15 }] },
      {
        origin: o,
        seq: 1,
        prev: GENESIS_HASH,
        entries: [{ ...e(), node: 'x\ud800' }],
      },
    ]
    expect(bad.map((u) => codeOf(() => encodeUnit(u)))).toEqual(bad.map(() => 'INVALID_EVENT'))
  })

  it('holds the largest values: one event past the byte bound alone, the last seq, the widest HLC', () => {
    const big: Unit = { origin: o, seq: 1, prev: GENESIS_HASH, entries: [e(MAX_UNIT_CHANGE_BYTES * 4)] }
    expect(decodeUnit(encodeUnit(big)).entries[0]!.change.byteLength).toBe(MAX_UNIT_CHANGE_BYTES * 4)
    const far: Unit = {
      origin: o,
      seq: MAX_SEQ - 1,
      prev: 'ab'.repeat(32),
      entries: [
        {
          wall: 999_999_999_999_999,
          counter: 9_999_999_999,
          node: 'n'.repeat(96),
          docId: 'd'.repeat(256),
          change: new Uint8Array(),
        },
        e(),
      ],
    }
    expect(decodeUnit(encodeUnit(far))).toEqual(far)
  })

  /** A one-entry unit's bytes written by hand, with `docId` as given (checks bypassed). */
  const encodeWith = ({ docId }: { docId: string }) =>
    Uint8Array.from([
      UNIT_TAG,
      ...Buffer.from('ab'.repeat(32), 'hex'),
      3,
      97,
      47,
      49,
      5,
      1,
      ENTRY_TAG,
      1,
      0,
      0,
      docId.length,
      ...Buffer.from(docId),
      1,
      7,
    ])

  it('refuses bytes that are not a unit with MALFORMED naming the offset', () => {
    expect(decodeUnit(encodeWith({ docId: 'd' })).entries).toEqual([
      { wall: 1, counter: 0, docId: 'd', change: Uint8Array.from([7]) },
    ])
    const good = encodeUnit({ origin: o, seq: 5, prev: 'ab'.repeat(32), entries: [e(3, 'x'), e(3, 'y')] })
    const prefix = 1 + 32 + 1 + 3 // tag, prev, origin length + 'a/1'
    const cases: Array<[string, Uint8Array]> = [
      ['cut short', good.subarray(0, good.byteLength - 1)],
      ['trailing byte', Uint8Array.from([...good, 0])],
      ['wrong tag', Uint8Array.from([0x97, ...good.subarray(1)])],
      // seq 5 written as the two-byte form 0x85 0x00
      ['long varint', Uint8Array.from([...good.subarray(0, prefix), 0x85, 0x00, ...good.subarray(prefix + 1)])],
      ['no events', Uint8Array.from([...good.subarray(0, prefix + 1), 0])],
      // the first entry's document written empty ('' is no document id; a check skipped for a
      // document equal to the one before once let it through, as the "previous" of the first)
      ['empty document', encodeWith({ docId: '' })],
    ]
    for (const [, bytes] of cases) {
      const err = (() => {
        try {
          decodeUnit(bytes)
        } catch (x) {
          return x as DruError
        }
      })()
      expect(err?.code).toBe('MALFORMED')
      expect(err?.message).toMatch(/^unit at byte \d+: /)
    }
  })

  it('refuses a second spelling of the same content (the origin as node) and an entry without its tag', () => {
    const u: Unit = { origin: o, seq: 5, prev: 'ab'.repeat(32), entries: [e(1, 'x'), e(1, 'y')] }
    const good = encodeUnit(u)
    // entries start after: tag, prev, origin, seq, count; each is tag, wall (6), counter, node, docId, change
    const at = 1 + 32 + 4 + 1 + 1
    const first = good.subarray(at, at + 13)
    expect([first[0], first[8]]).toEqual([ENTRY_TAG, 0])
    const rest = good.subarray(at + 13)
    const withFirst = (entry: number[]) => Uint8Array.from([...good.subarray(0, at), ...entry, ...rest])
    expect(decodeUnit(withFirst([...first]))).toEqual(u)
    const nodeAsOrigin = withFirst([...first.subarray(0, 8), 3, 97, 47, 49, ...first.subarray(9)])
    expect(codeOf(() => decodeUnit(nodeAsOrigin))).toBe('MALFORMED')
    expect(codeOf(() => decodeUnit(withFirst([UNIT_TAG, ...first.subarray(1)])))).toBe('MALFORMED')
  })
})

describe('cutting and chaining units', () => {
  const o = 'a/1' as Origin
  const entries = fc.array(
    fc.record({
      wall: fc.constant(1_700_000_000_000),
      counter: fc.nat(),
      docId: fc.constantFrom('d1', 'd2', 'd3'),
      change: fc
        .oneof(
          { arbitrary: fc.integer({ min: 0, max: 300 }), weight: 30 },
          { arbitrary: fc.integer({ min: 0, max: MAX_UNIT_CHANGE_BYTES + 100 }), weight: 1 },
        )
        .map((n) => new Uint8Array(n)),
    }),
    { minLength: 1, maxLength: 700 },
  )

  it('cuts every event into exactly one unit, each within the bounds, none ended early', () => {
    fc.assert(
      fc.property(entries, (list) => {
        const sizes = cutUnits(list)
        expect(sizes.reduce((a, b) => a + b, 0)).toBe(list.length)
        let at = 0
        for (const [k, size] of sizes.entries()) {
          const part = list.slice(at, at + size)
          const bytes = part.reduce((n, x) => n + x.change.byteLength, 0)
          expect(size).toBeGreaterThan(0)
          expect(size).toBeLessThanOrEqual(MAX_UNIT_EVENTS)
          if (size > 1) expect(bytes).toBeLessThanOrEqual(MAX_UNIT_CHANGE_BYTES)
          // greedy: the next unit's first event would not have fitted
          const next = list[at + size]
          if (k < sizes.length - 1)
            expect(size === MAX_UNIT_EVENTS || bytes + next!.change.byteLength > MAX_UNIT_CHANGE_BYTES).toBe(true)
          at += size
        }
      }),
      { numRuns: runs / 3 },
    )
  })

  it('seals a chain that verifies, whose bytes decode to each unit and hash to its hash', () => {
    fc.assert(
      fc.property(entries, fc.boolean(), (list, fromGenesis) => {
        const start = fromGenesis ? 1 : 42
        const prev = fromGenesis ? GENESIS_HASH : 'ef'.repeat(32)
        const units = sealUnits(o, start, prev, list)
        expect(units.map((u) => u.entries.length)).toEqual(cutUnits(list))
        for (const u of units) {
          expect(unitHash(decodeUnit(u.bytes))).toBe(u.hash)
          // each entry's bytes, where they lie, are what its hash covers
          expect(u.entryStarts.length).toBe(u.entries.length + 1)
          expect(u.entryStarts.at(-1)).toBe(u.bytes.byteLength)
          const i = u.entries.length >> 1
          const own = createHash('sha256')
            .update(u.bytes.subarray(u.entryStarts[i], u.entryStarts[i + 1]))
            .digest()
          expect(own.equals(Buffer.from(entryHash(o, u.entries[i]!)))).toBe(true)
          // and read alone give the entry back
          expect(decodeEntry(o, u.bytes.subarray(u.entryStarts[i], u.entryStarts[i + 1]))).toEqual(u.entries[i])
          const opened = openUnit(u.bytes)
          expect(opened.entryStarts).toEqual(u.entryStarts)
          expect(opened.hash).toBe(u.hash)
          expect(Buffer.from(opened.entryHashes).equals(Buffer.from(u.entryHashes))).toBe(true)
          expect(Buffer.from(entryHashes(u)).equals(Buffer.from(u.entryHashes))).toBe(true)
          expect(decodeUnit(u.bytes)).toEqual({ origin: u.origin, seq: u.seq, prev: u.prev, entries: u.entries })
        }
        const last = verifyUnitChain(
          units.map((u) => ({ unit: u, hash: u.hash })),
          prev,
        )
        expect(last).toBe(units.at(-1)!.hash)
        expect(units.at(-1)!.seq + units.at(-1)!.entries.length).toBe(start + list.length)
      }),
      { numRuns: runs / 3 },
    )
  })

  it('names a unit out of order or off the chain', () => {
    const list = Array.from({ length: 600 }, (_, i) => ({
      wall: 1_700_000_000_000 + i,
      counter: 0,
      docId: `d${i % 7}`,
      change: new Uint8Array([i & 0xff, i >> 8]),
    }))
    const units = sealUnits(o, 1, GENESIS_HASH, list).map((u) => ({ unit: u as Unit, hash: u.hash }))
    expect(units.length).toBe(3)
    const gap = (() => {
      try {
        verifyUnitChain([units[0]!, units[2]!], GENESIS_HASH)
      } catch (x) {
        return x as DruError
      }
    })()
    expect(gap?.code).toBe('SEQ_GAP')
    expect(gap?.details).toEqual({ origin: o, seq: 513 })
    // the same content under another prev: the next unit no longer links to it
    const relinked = { ...units[1]!.unit, prev: GENESIS_HASH.replace(/0$/, '1') }
    expect(codeOf(() => verifyUnitChain([units[0]!, { unit: relinked, hash: unitHash(relinked) }], GENESIS_HASH))).toBe(
      'CHAIN_BROKEN',
    )
    expect(codeOf(() => verifyUnitChain(units.slice(1), GENESIS_HASH))).toBe('CHAIN_BROKEN')
    // cutting the same events otherwise names them otherwise
    const other = sealUnits(o, 1, GENESIS_HASH, list.slice(0, 100))
    expect(other[0]!.hash).not.toBe(units[0]!.hash)
  })
})
