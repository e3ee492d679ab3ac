import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { DruEvent } from '@dru/core'
import { MemoryLog } from '@dru/testkit'
import { signedBatches } from '../src/protocol/outbound-frames.js'

const sign = (hash: string) => new TextEncoder().encode(`sig:${hash}`)
const bytes = (n: number, tag: number) => new Uint8Array(n).fill(tag & 0xff)

/** Every origin's run inside each batch ends at a signed event. */
function runsEndSigned(batch: readonly DruEvent[]): boolean {
  for (let i = 0; i < batch.length; i++) {
    const last = i === batch.length - 1 || batch[i + 1]!.origin !== batch[i]!.origin
    if (last && batch[i]!.sig === undefined) return false
  }
  return true
}

describe('signedBatches never ends an origin’s run at an unsigned event', () => {
  it('holds back an own tip still waiting for its signature, and sends the origins after it', () => {
    const a = new MemoryLog('a')
    const b = new MemoryLog('b')
    a.append('d', [bytes(10, 1), bytes(10, 2)], sign)
    // The tip a store could not sign yet (an application's transaction held open).
    a.append('d', [bytes(10, 3)])
    a.ingest(b.append('e', [bytes(10, 4), bytes(10, 5)], sign))
    const batches = [...signedBatches(a, {}, 1 << 20)].map((f) => (f.type === 'events' ? f.batch : []))
    const sent = batches.flat().map((e) => `${e.origin.split('/')[0]}#${e.seq}`)
    // Before the hold-back the unsigned a#3 went out and the peer refused the run (BAD_SIGNATURE).
    expect(sent.sort()).toEqual(['a#1', 'a#2', 'b#1', 'b#2'])
    expect(batches.every(runsEndSigned)).toBe(true)
  })

  it('for any commits, signed or not, and any batch size: runs end signed, each origin sent up to its last signature, once, in order (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            who: fc.integer({ min: 0, max: 2 }),
            n: fc.integer({ min: 1, max: 6 }),
            size: fc.integer({ min: 1, max: 300 }),
            signed: fc.boolean(),
          }),
          { maxLength: 25 },
        ),
        fc.integer({ min: 64, max: 4_000 }),
        (commits, maxBatchBytes) => {
          const logs = [new MemoryLog('a'), new MemoryLog('b'), new MemoryLog('c')]
          const target = logs[0]!
          for (const [i, c] of commits.entries()) {
            const written = logs[c.who]!.append(
              `d${i % 3}`,
              Array.from({ length: c.n }, (_, k) => bytes(c.size, i + k)),
              c.signed ? sign : undefined,
            )
            if (c.who !== 0) target.ingest(written)
          }
          const batches = [...signedBatches(target, {}, maxBatchBytes)].map((f) => (f.type === 'events' ? f.batch : []))
          expect(batches.every((b) => b.length > 0 && runsEndSigned(b))).toBe(true)
          const sent = new Map<string, number[]>()
          for (const e of batches.flat()) sent.set(e.origin, [...(sent.get(e.origin) ?? []), e.seq])
          for (const log of logs) {
            const all = [...target.eventsMissing({})].flat().filter((e) => e.origin === log.origin)
            const lastSigned = all.reduce((m, e) => (e.sig !== undefined ? e.seq : m), 0)
            const want = all.filter((e) => e.seq <= lastSigned).map((e) => e.seq)
            expect(sent.get(log.origin) ?? []).toEqual(want)
          }
        },
      ),
      { numRuns: 150 },
    )
  })
})
