import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { DruError, GENESIS_HASH, encodeHlc, isHashComputed, sealEvent, type DruEvent, type Origin } from '@dru/core'
import { batchFromWire, batchToWire } from '../src/events-wire.js'

const RUNS = Number(process.env.DRU_PROPERTY_RUNS ?? 0) || undefined

/** Two origins' chains, interleaved in runs of three, so a frame has several runs of several events. */
function batch(): DruEvent[] {
  const chains = ['a/1', 'b/2'].map((origin) => {
    const out: DruEvent[] = []
    let prev = GENESIS_HASH
    for (let seq = 1; seq <= 12; seq++) {
      const e = sealEvent({
        origin: origin as Origin,
        seq,
        hlc: encodeHlc({ wall: 1_800_000_000_000 + seq, counter: 0, node: origin }),
        docId: `doc-${seq % 3}`,
        change: new Uint8Array([seq]),
        prev,
      })
      out.push(seq === 12 ? { ...e, sig: new Uint8Array(64) } : e)
      prev = e.hash
    }
    return out
  })
  const out: DruEvent[] = []
  for (let i = 0; i < 12; i += 3) for (const c of chains) out.push(...c.slice(i, i + 3))
  return out
}

const errorOf = (fn: () => unknown): DruError => {
  try {
    fn()
  } catch (err) {
    if (err instanceof DruError) return err
    throw err
  }
  throw new Error('did not throw')
}

// Ways to spoil one event of the wire form, with the field the error must name.
const spoilers: Array<[string, (ev: unknown[]) => void]> = [
  ['wall', (ev) => (ev[0] = 0.5)],
  ['counter', (ev) => (ev[1] = -1)],
  ['node', (ev) => (ev[2] = 99)],
  ['doc', (ev) => (ev[3] = 99)],
  ['change', (ev) => (ev[4] = 'not bytes')],
]

describe('batchFromWire error labels (built only on failure)', () => {
  it('a bad event anywhere in a frame is refused naming its own run and index', () => {
    const events = batch()
    fc.assert(
      fc.property(fc.nat(7), fc.nat(2), fc.constantFrom(...spoilers), (r, i, [field, spoil]) => {
        const [names, docs, runs] = batchToWire(events) as [string[], string[], unknown[][]]
        expect(runs).toHaveLength(8)
        const run = runs[r]! as unknown[]
        const evs = (run[3] as unknown[][]).map((ev) => [...ev])
        spoil(evs[i]!)
        const spoiledRuns = runs.map((x, k) => (k === r ? [x[0], x[1], x[2], evs, x[4]] : x))
        const err = errorOf(() => batchFromWire(names, docs, spoiledRuns))
        expect(err.code).toBe('INVALID_FRAME')
        expect(err.message.startsWith(`events.runs[${r}].events[${i}].${field} `)).toBe(true)
      }),
      { numRuns: RUNS ?? 200 },
    )
  })

  it('a bad run is refused naming its index', () => {
    const [names, docs, runs] = batchToWire(batch()) as [string[], string[], unknown[][]]
    const spoiled = runs.map((x, k) => (k === 5 ? [77, ...x.slice(1)] : x))
    expect(errorOf(() => batchFromWire(names, docs, spoiled)).message).toMatch(/^events\.runs\[5\]\.origin must index/)
    const notOrigin = runs.map((x, k) => (k === 6 ? [names.length, ...x.slice(1)] : x))
    const err = errorOf(() => batchFromWire([...names, 'no-slash'], docs, notOrigin))
    expect(err.message).toBe('events.runs[6].origin names "no-slash", not an origin')
  })

  it("builds each event with its hash computed here, the signature on each origin's last event only", () => {
    const events = batch()
    const back = batchFromWire(...(batchToWire(events) as [unknown, unknown, unknown]))
    expect(back.map((e) => e.hash)).toEqual(events.map((e) => e.hash))
    for (const e of back) expect(isHashComputed(e)).toBe(true)
    expect(back.filter((e) => e.sig !== undefined).map((e) => `${e.origin}#${e.seq}`)).toEqual(['a/1#12', 'b/2#12'])
    expect(back.filter((e) => 'sig' in e)).toHaveLength(2)
  })
})
