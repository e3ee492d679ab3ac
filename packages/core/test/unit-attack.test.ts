import { describe, expect, it } from 'vitest'
import {
  DruError,
  GENESIS_HASH,
  cutUnits,
  decodeUnit,
  encodeUnit,
  entryHash,
  entryHashes,
  openUnit,
  sealUnits,
  unitHash,
  unitHashOf,
  verifyUnitChain,
  type Origin,
  type Unit,
  type UnitEntry,
} from '../src/index.js'

// Inputs that try to break a unit's promises: one encoding, one hash per content, typed refusals.

const o = 'a/1' as Origin
const e = (fields: Partial<UnitEntry> = {}): UnitEntry => ({
  wall: 1_700_000_000_000,
  counter: 0,
  docId: 'd',
  change: new Uint8Array([1, 2, 3]),
  ...fields,
})
const unit = (entries: unknown[]): Unit => ({ origin: o, seq: 1, prev: GENESIS_HASH, entries: entries as UnitEntry[] })

function codeOf(f: () => unknown): string | undefined {
  try {
    f()
    return undefined
  } catch (x) {
    expect(x).toBeInstanceOf(DruError)
    return (x as DruError).code
  }
}

describe('unit attacks: values the writer must refuse', () => {
  it('refuses a first entry without a document or an entry that is not one with INVALID_EVENT, not a TypeError', () => {
    // The document check skipped an entry whose document equals the one before, and before
    // the first that was `undefined`: a first entry with no docId slipped through to the writer.
    const cases: unknown[][] = [[{ ...e(), docId: undefined }], [undefined], [null], [e(), undefined]]
    for (const entries of cases) {
      expect(codeOf(() => encodeUnit(unit(entries)))).toBe('INVALID_EVENT')
      expect(codeOf(() => unitHash(unit(entries)))).toBe('INVALID_EVENT')
      expect(codeOf(() => sealUnits(o, 1, GENESIS_HASH, entries as UnitEntry[]))).toBe('INVALID_EVENT')
      // cutting reads only sizes, so it refuses only entries without change bytes
      const sized = entries.every((x) => x instanceof Object)
      expect(codeOf(() => cutUnits(entries as UnitEntry[]))).toBe(sized ? undefined : 'INVALID_EVENT')
    }
  })

  it('entryHash refuses what cannot be an entry: no two entries share a hash through a lax writer, none hangs', () => {
    // Before: 1.5 was written as 1, lone surrogates as U+FFFD (so 'a\ud800' and 'a\udc00'
    // hashed alike), and a wall of Infinity never left the varint loop. The hanging case is last.
    const bad: UnitEntry[] = [
      e({ wall: 1.5 }),
      e({ counter: -1 }),
      // fast-check's counterexample to unit.test's old 'another counter': 2147483648 ^ 1, negative
      e({ counter: 2147483648 ^ 1 }),
      e({ docId: 'a\ud800' }),
      e({ docId: '' }),
      e({ node: 'x\udc00' }),
      e({ node: '' }),
      e({ change: [1, 2] as unknown as Uint8Array }),
      e({ wall: 2 ** 60 }),
      e({ wall: Infinity }),
    ]
    for (const entry of bad) expect(codeOf(() => entryHash(o, entry))).toBe('INVALID_EVENT')
    expect(codeOf(() => entryHash('no origin' as Origin, e()))).toBe('INVALID_EVENT')
  })

  it('unitHashOf refuses a header or list that cannot be a unit: no other spelling of prev hashes as genesis, none hangs', () => {
    const hashes = entryHashes(unit([e()]))
    const good = unitHashOf(o, 2, 'ab'.repeat(32), hashes)
    expect(good).toBe(unitHash({ ...unit([e()]), seq: 2, prev: 'ab'.repeat(32) }))
    // Before: prev was parsed two hex digits at a time with parseInt, so 'AB…' hashed as 'ab…'
    // and 'zz…' (NaN, written 0) as the genesis hash; seq Infinity never left the varint loop.
    const bad: Array<[string, number, string, Uint8Array]> = [
      [o, 2, 'AB'.repeat(32), hashes],
      [o, 2, 'zz'.repeat(32), hashes],
      [o, 2, 'ab'.repeat(31), hashes],
      [o, 1, 'ab'.repeat(32), hashes],
      [o, 1.5, GENESIS_HASH, hashes],
      [o, 0, GENESIS_HASH, hashes],
      ['no origin', 2, GENESIS_HASH, hashes],
      [o, 2, GENESIS_HASH, new Uint8Array(33)],
      [o, 2, GENESIS_HASH, new Uint8Array(0)],
      [o, 2, GENESIS_HASH, new Uint8Array(32 * 257)],
      [o, Number.MAX_SAFE_INTEGER, GENESIS_HASH, new Uint8Array(64)],
      [o, Infinity, GENESIS_HASH, hashes],
    ]
    for (const [origin, seq, prev, list] of bad)
      expect(codeOf(() => unitHashOf(origin as Origin, seq, prev, list))).toBe('INVALID_EVENT')
  })
})

describe('unit attacks: chains', () => {
  it("refuses a unit of another origin linked to this origin's last hash", () => {
    // Anyone sealing units picks their prev: another origin's unit may name ours as its prev.
    const [a] = sealUnits(o, 1, GENESIS_HASH, [e()])
    const [b] = sealUnits('b/1' as Origin, 2, a!.hash, [e()])
    expect(
      codeOf(() =>
        verifyUnitChain(
          [a!, b!].map((u) => ({ unit: u, hash: u.hash })),
          GENESIS_HASH,
        ),
      ),
    ).toBe('CHAIN_BROKEN')
  })
})

describe('unit attacks: what holds', () => {
  it('results never share the reused write buffers: a later seal, hash or encoding leaves them as they were', () => {
    const sealed = sealUnits(o, 1, GENESIS_HASH, [e(), e({ docId: 'x', node: 'n/2' })])
    const before = sealed.map((u) => [Buffer.from(u.bytes), Buffer.from(u.entryHashes), u.hash] as const)
    const encoded = encodeUnit(unit([e({ change: new Uint8Array(200_000).fill(7) })]))
    const copy = Buffer.from(encoded)
    entryHash(o, e({ change: new Uint8Array(300_000).fill(9) }))
    sealUnits(
      'z/3' as Origin,
      1,
      GENESIS_HASH,
      Array.from({ length: 300 }, () => e({ change: new Uint8Array(900) })),
    )
    unitHashOf(o, 2, GENESIS_HASH, new Uint8Array(32 * 256))
    entryHashes(unit([e({ change: new Uint8Array(5000).fill(5) })]))
    expect(sealed.map((u) => [Buffer.from(u.bytes), Buffer.from(u.entryHashes), u.hash] as const)).toEqual(before)
    expect(Buffer.from(encoded).equals(copy)).toBe(true)
    for (const u of sealed) expect(openUnit(u.bytes).hash).toBe(u.hash)
  })

  it('reads only shortest UTF-8 and keeps a leading BOM: one text, one spelling', () => {
    const good = encodeUnit(unit([e({ docId: '\ufeffé' })]))
    expect(decodeUnit(good).entries[0]!.docId).toBe('\ufeffé')
    const at = good.lastIndexOf(0xc3) // 'é' as C3 A9 (the HLC's varints before may hold a C3 too)
    const spell = (bytes: number[]) => {
      const b = [...good.subarray(0, at - 4), bytes.length + 3, ...good.subarray(at - 3, at), ...bytes]
      return Uint8Array.from([...b, ...good.subarray(at + 2)])
    }
    expect(decodeUnit(spell([0xc3, 0xa9])).entries[0]!.docId).toBe('\ufeffé')
    // overlong 'A', a surrogate half, past U+10FFFF
    for (const bytes of [
      [0xc1, 0x81],
      [0xed, 0xa0, 0x80],
      [0xf4, 0x90, 0x80, 0x80],
    ])
      expect(codeOf(() => decodeUnit(spell(bytes)))).toBe('MALFORMED')
  })
})
