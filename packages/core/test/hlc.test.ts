import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { DruError, HlcClock, compareHlc, decodeHlc, encodeHlc, isHlcText, type Hlc } from '../src/index.js'

const runs = Number(process.env.DRU_PROPERTY_RUNS ?? 300)

type Step =
  | { kind: 'tick' }
  | { kind: 'wall'; delta: number } // wall clock jumps (may go backwards)
  | { kind: 'receive'; ahead: number; counter: number }

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.constant<Step>({ kind: 'tick' }),
  fc.integer({ min: -3_600_000, max: 5_000 }).map<Step>((delta) => ({ kind: 'wall', delta })),
  fc
    .record({ ahead: fc.integer({ min: -100_000, max: 1_000 }), counter: fc.integer({ min: 0, max: 50 }) })
    .map<Step>((r) => ({ kind: 'receive', ...r })),
)

describe('hybrid logical clock', () => {
  it('local timestamps are strictly increasing under any interleaving of ticks, clock jumps and remote timestamps within the bound', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 200 }), (steps) => {
        let wall = 1_700_000_000_000
        const clock = new HlcClock({ node: 'a/1', now: () => wall, maxSkewMs: 1_000 })
        let last: Hlc | undefined
        let lastRemote: Hlc | undefined
        for (const s of steps) {
          if (s.kind === 'wall') wall = Math.max(0, wall + s.delta)
          else if (s.kind === 'receive') {
            const remote = { wall: Math.max(0, wall + s.ahead), counter: s.counter, node: 'b/1' }
            clock.receive(remote)
            lastRemote = remote
          } else {
            const t = clock.tick()
            if (last) expect(compareHlc(t, last)).toBeGreaterThan(0)
            if (lastRemote) expect(compareHlc(t, lastRemote)).toBeGreaterThan(0)
            expect(encodeHlc(t) > (last ? encodeHlc(last) : '')).toBe(true)
            last = t
          }
        }
      }),
      { numRuns: runs, seed: 11 },
    )
  })

  it('refuses a remote timestamp beyond the skew bound and does not absorb it', () => {
    const wall = 1_700_000_000_000
    const clock = new HlcClock({ node: 'a/1', now: () => wall, maxSkewMs: 1_000 })
    const before = clock.tick()
    const err = (() => {
      try {
        clock.receive({ wall: wall + 3_600_000, counter: 0, node: 'evil/1' })
      } catch (e) {
        return e
      }
    })()
    expect(err).toBeInstanceOf(DruError)
    expect((err as DruError).code).toBe('CLOCK_SKEW')
    const after = clock.tick()
    expect(after.wall).toBe(before.wall) // not dragged an hour forward
    expect(compareHlc(after, before)).toBe(1)
    // within the bound it is absorbed
    clock.receive({ wall: wall + 500, counter: 3, node: 'b/1' })
    expect(clock.tick()).toEqual({ wall: wall + 500, counter: 4, node: 'a/1' })
  })

  it('restores its high-water mark so a restart never issues an older timestamp', () => {
    const clock = new HlcClock({ node: 'a/1', now: () => 1_000, highWater: { wall: 5_000, counter: 7, node: 'a/1' } })
    expect(clock.tick()).toEqual({ wall: 5_000, counter: 8, node: 'a/1' })
  })

  it('encoding sorts like compareHlc and round-trips', () => {
    const hlc = fc.record({
      wall: fc.integer({ min: 0, max: 2 ** 45 }),
      counter: fc.integer({ min: 0, max: 9_999_999_999 }),
      node: fc.constantFrom('a/1', 'b/2', 'eu-west-1/3'),
    })
    fc.assert(
      fc.property(hlc, hlc, (a, b) => {
        expect(decodeHlc(encodeHlc(a))).toEqual(a)
        const byText = encodeHlc(a) < encodeHlc(b) ? -1 : encodeHlc(a) > encodeHlc(b) ? 1 : 0
        expect(byText).toBe(compareHlc(a, b))
      }),
      { numRuns: runs, seed: 12 },
    )
  })

  it('encoding a run of timestamps that share walls gives each its own text (the wall text is reused)', () => {
    const wall = fc.constantFrom(0, 1, 9, 10, 1_764_000_000_000, 1_764_000_000_001, 999_999_999_999_999)
    const hlc = fc.record({
      wall,
      counter: fc.integer({ min: 0, max: 9_999_999_999 }),
      node: fc.constantFrom('a/1', 'b'),
    })
    const plain = (h: Hlc) => `${String(h.wall).padStart(15, '0')}-${String(h.counter).padStart(10, '0')}-${h.node}`
    fc.assert(
      fc.property(fc.array(hlc, { maxLength: 30 }), (run) => {
        for (const h of run) expect(encodeHlc(h)).toBe(plain(h))
      }),
      { numRuns: runs, seed: 13 },
    )
  })

  // decodeHlc reads by hand what this expression matches: the two must agree on every string.
  const ENCODED = /^(\d{15})-(\d{10})-(.{1,96})$/
  const byRegex = (text: string) => {
    const m = ENCODED.exec(text)
    return m ? { wall: Number(m[1]), counter: Number(m[2]), node: m[3]! } : undefined
  }
  const byDecode = (text: string) => {
    try {
      return decodeHlc(text)
    } catch (err) {
      expect(err).toMatchObject({ code: 'INVALID_EVENT' })
      return undefined
    }
  }

  it('reads exactly what its encoding expression matches, on valid timestamps and on any edit of them', () => {
    const valid = fc
      .record({
        wall: fc.integer({ min: 0, max: 10 ** 15 - 1 }),
        counter: fc.integer({ min: 0, max: 10 ** 10 - 1 }),
        // Short nodes, and nodes about the 96-character bound.
        node: fc.oneof(
          fc.string({ minLength: 1, maxLength: 12, unit: 'binary' }),
          fc.string({ minLength: 94, maxLength: 98, unit: 'binary' }),
        ),
      })
      .map(encodeHlc)
    const edited = fc
      .tuple(valid, fc.nat(), fc.nat(0x2030), fc.constantFrom('flip', 'cut', 'insert'))
      .map(([text, pick, code, how]) => {
        const at = pick % (text.length + 1)
        const ch = String.fromCharCode(code)
        if (how === 'cut') return text.slice(0, at) + text.slice(at + 1)
        if (how === 'insert') return text.slice(0, at) + ch + text.slice(at)
        return text.slice(0, at) + ch + text.slice(at + 1)
      })
    const breaks = fc.constantFrom('\n', '\r', '\u2028', '\u2029', '\u0085', '\t', '-', '٣', '０')
    const withBreak = fc.tuple(valid, fc.nat(), breaks).map(([text, pick, b]) => {
      const at = pick % (text.length + 1)
      return text.slice(0, at) + b + text.slice(at + 1)
    })
    fc.assert(
      fc.property(fc.oneof(valid, edited, withBreak, fc.string({ maxLength: 130 })), (text) => {
        expect(byDecode(text)).toEqual(byRegex(text))
        // isHlcText (ingest's check, which builds nothing) accepts exactly what decodeHlc reads.
        expect(isHlcText(text)).toBe(byRegex(text) !== undefined)
      }),
      { numRuns: runs * 10, seed: 13 },
    )
  })

  it('rejects malformed encodings with INVALID_EVENT', () => {
    const head = `${'9'.repeat(15)}-${'0'.repeat(10)}-`
    // A line break or a 97-character node: what a hand-written reader is likeliest to let through.
    for (const bad of ['', 'x', '12-3-a', 42, null, head, `${head}a\nb`, `${head}\u2028`, head + 'a'.repeat(97)]) {
      expect(() => decodeHlc(bad)).toThrowError(expect.objectContaining({ code: 'INVALID_EVENT' }))
    }
  })
})
