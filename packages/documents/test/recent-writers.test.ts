import * as A from '@automerge/automerge'
import type { DruEvent } from '@dru/core'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { actorForOrigin } from '../src/actor.js'
import { checkChanges } from '../src/change-validation.js'
import type { CachedDoc } from '../src/doc-cache.js'
import { RECENT_WRITERS, RecentWriters, remember } from '../src/recent-writers.js'

const ORIGINS = ['eu-west-1/1', 'us-east-1/1', 'ap-south-1/1']

/** A stand-in event: only the fields RecentWriters and checkChanges read. */
function event(origin: string, seq: number, change: Uint8Array): DruEvent {
  return { origin, seq, hlc: `hlc:${origin}:${seq}`, docId: 'd', change } as unknown as DruEvent
}

type Step = { writer: number; keys: number; merge: boolean; checked: boolean }

/**
 * Three origins write one document, sometimes merging each other's state first (so start ops
 * jump), in the order drawn; returns every event as applied and each op's true writer.
 */
function history(steps: Step[]): { events: DruEvent[]; writerOf: Map<string, string> } {
  const docs = ORIGINS.map((o) => A.init<Record<string, number>>({ actor: actorForOrigin(o) }))
  const seqs = ORIGINS.map(() => 0)
  const events: DruEvent[] = []
  const writerOf = new Map<string, string>()
  steps.forEach((s, i) => {
    if (s.merge)
      for (let o = 0; o < docs.length; o++) if (o !== s.writer) docs[s.writer] = A.merge(docs[s.writer]!, docs[o]!)
    docs[s.writer] = A.change(docs[s.writer]!, (d) => {
      for (let k = 0; k <= s.keys; k++) d[`k${(i + k) % 5}`] = i
    })
    const change = A.getLastLocalChange(docs[s.writer]!)!
    const e = event(ORIGINS[s.writer]!, ++seqs[s.writer]!, change)
    // Remote events come with the op range ingest read when it checked them; local ones do not.
    if (s.checked) checkChanges([e])
    events.push(e)
    const d = A.decodeChange(change)
    for (let op = d.startOp; op < d.startOp + d.ops.length; op++) writerOf.set(`${op}@${ORIGINS[s.writer]}`, e.hlc)
  })
  return { events, writerOf }
}

const step = fc.record({ writer: fc.nat(2), keys: fc.nat(3), merge: fc.boolean(), checked: fc.boolean() })

describe('RecentWriters', () => {
  it('names the exact writer of every op of a remembered change and nothing wrong for any other op', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: RECENT_WRITERS + 30 }), (steps) => {
        const { events, writerOf } = history(steps)
        const recent = new RecentWriters()
        for (const e of events) recent.add(e)
        const kept = new Set(events.slice(-RECENT_WRITERS).map((e) => e.hlc))
        expect(recent.size).toBe(Math.min(events.length, RECENT_WRITERS))
        for (const [op, hlc] of writerOf) {
          const [counter, origin] = op.split('@') as [string, string]
          const answer = recent.hlcOf(origin, Number(counter))
          // Exact or silent, and never silent about a change still in the window.
          if (kept.has(hlc)) expect(answer).toBe(hlc)
          else expect(answer).toBeUndefined()
        }
        // Ops no change wrote are never named.
        for (const origin of ORIGINS) expect(recent.hlcOf(origin, 1e6)).toBeUndefined()
      }),
      { numRuns: 150 },
    )
  })

  it('gives up, rather than guess, for an origin whose change it cannot read', () => {
    const { events } = history([{ writer: 0, keys: 1, merge: false, checked: false }])
    const recent = new RecentWriters()
    recent.add(events[0]!)
    recent.add(event(ORIGINS[0]!, 2, new Uint8Array([1, 2, 3])))
    expect(recent.hlcOf(ORIGINS[0]!, 1)).toBeUndefined()
  })

  it('remember() in batches knows what adding every event one by one knows, and costs the same bytes', () => {
    // remember() skips a batch's events older than the window: they would be forgotten at once.
    fc.assert(
      fc.property(
        // Lengths drawn over the whole range, so batches longer than the window come up.
        fc.array(step, { minLength: 1, maxLength: 2 * RECENT_WRITERS + 20, size: 'max' }),
        fc.array(fc.nat(RECENT_WRITERS + 40), { maxLength: 4 }),
        (steps, cuts) => {
          const { events, writerOf } = history(steps)
          const one = new RecentWriters()
          let oneBytes = 0
          for (const e of events) oneBytes += one.add(e)
          const entry = { bytes: 0 } as CachedDoc
          let at = 0
          for (const n of [...cuts, events.length]) {
            remember(entry, events.slice(at, at + n))
            at = Math.min(events.length, at + n)
          }
          expect(entry.bytes).toBe(oneBytes)
          expect(entry.writers!.size).toBe(one.size)
          for (const op of writerOf.keys()) {
            const [counter, origin] = op.split('@') as [string, string]
            expect(entry.writers!.hlcOf(origin, Number(counter))).toBe(one.hlcOf(origin, Number(counter)))
          }
        },
      ),
      { numRuns: 100 },
    )
  })

  it('adds to the cache estimate only while the window grows', () => {
    const { events } = history(
      Array.from({ length: RECENT_WRITERS + 5 }, () => ({ writer: 1, keys: 0, merge: false, checked: false })),
    )
    const recent = new RecentWriters()
    const added = events.map((e) => recent.add(e))
    expect(added.slice(0, RECENT_WRITERS).every((b) => b > 0)).toBe(true)
    expect(added.slice(RECENT_WRITERS).every((b) => b === 0)).toBe(true)
  })
})
