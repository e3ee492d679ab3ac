import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { EventStore, signOwnHistory, unsignedOrigins } from '../src/index.js'
import { RUN_BYTES, RUN_EVENTS } from '../src/deferred-signing.js'
import { bytes, memStore, tempDir } from './helpers.js'

// A commit stores its events unsigned; the tip of the unsigned run is signed once, soon
// after or when something needs it first (deferred-signing.ts). These count signatures.

const cleanups: Array<() => void> = []
afterEach(() => {
  while (cleanups.length) cleanups.pop()!()
})

/** A fake signer that counts its calls and whose signature names the hash. */
function countingSigner() {
  const signer = { calls: 0, sign: (hash: string) => (signer.calls++, Buffer.from(`sig:${hash}`)) }
  return signer
}
const tick = () => new Promise<void>((resolve) => setImmediate(resolve))
const sigOf = (s: EventStore, seq: number) => {
  const sig = s.getEvent(s.origin, seq)?.sig
  return sig === undefined ? undefined : Buffer.from(sig).toString()
}

describe('deferred signing of own commits', () => {
  it('signs nothing inside a commit, then the tip once for every commit since the last signature', async () => {
    const signer = countingSigner()
    const s = memStore('a', { sign: signer.sign })
    const events = [1, 2, 3, 4, 5].map((i) => s.append('d', bytes(i)))
    expect(signer.calls).toBe(0)
    expect(s.ownTipUnsigned).toBe(true)
    await tick()
    expect(signer.calls).toBe(1)
    expect(s.ownTipUnsigned).toBe(false)
    expect(sigOf(s, 5)).toBe(`sig:${events[4]!.hash}`)
    for (const seq of [1, 2, 3, 4]) expect(sigOf(s, seq)).toBeUndefined()
    // Not a fault: the chain verifies end to end.
    expect(s.verifyLog().events).toBe(5)
    s.close()
  })

  it('signs before every page read for sending, so no run read out ends at an unsigned own event', () => {
    const signer = countingSigner()
    const s = memStore('a', { sign: signer.sign })
    for (let i = 0; i < 7; i++) s.append('d', bytes(i))
    const pages = s.eventsMissing({}, { pageSize: 3 })
    const first = pages.next().value!
    expect(signer.calls).toBe(1)
    // A commit between two pages (the stream stops at the vector it started from).
    s.append('d', bytes(99))
    const all = [...first, ...[...pages].flat()]
    expect(all.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7])
    expect(all[6]!.sig).toBeDefined()
    const next = [...s.eventsMissing({ [s.origin]: 7 })].flat()
    expect(next.map((e) => [e.seq, e.sig !== undefined])).toEqual([[8, true]])
    expect(signer.calls).toBe(2)
    s.close()
  })

  it('signs inline where the unsigned run reaches RUN_EVENTS or RUN_BYTES, so the tail stays bounded and a burst can be cut into frames', () => {
    const signer = countingSigner()
    const s = memStore('a', { sign: signer.sign })
    s.transact((tx) => {
      for (let i = 0; i < RUN_EVENTS - 1; i++) tx.append('d', bytes(1))
    })
    expect(signer.calls).toBe(0)
    // The run counts across commits: this one crosses the bound.
    s.transact((tx) => [tx.append('d', bytes(2)), tx.append('d', bytes(3))])
    expect(signer.calls).toBe(1)
    expect(sigOf(s, RUN_EVENTS)).toBeDefined()
    expect(sigOf(s, RUN_EVENTS + 1)).toBeUndefined()
    expect(s.ownTipUnsigned).toBe(true)
    // By bytes: single-event commits each a quarter of the bound; the fourth reaches it.
    s.signOwnTip()
    const before = signer.calls
    const quarter = new Uint8Array(RUN_BYTES / 4)
    for (let i = 0; i < 3; i++) s.append('d', quarter)
    expect(signer.calls).toBe(before)
    const fourth = s.append('d', quarter)
    expect(signer.calls).toBe(before + 1)
    expect(sigOf(s, fourth.seq)).toBe(`sig:${fourth.hash}`)
    expect(s.ownTipUnsigned).toBe(false)
    s.close()
  })

  it('a failed commit leaves the pending tip as it was', () => {
    const signer = countingSigner()
    const s = memStore('a', { sign: signer.sign })
    const kept = s.append('d', bytes(1))
    expect(() =>
      s.transact((tx) => {
        tx.append('d', bytes(2))
        throw new Error('app failure')
      }),
    ).toThrow('app failure')
    s.signOwnTip()
    expect(sigOf(s, 1)).toBe(`sig:${kept.hash}`)
    expect(s.vv()).toEqual({ [s.origin]: 1 })
    s.close()
  })

  it('close signs the tip; a tail left unsigned (a crash) shows as an own unsigned origin and signOwnHistory signs its head only', () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    const path = join(dir, 'a.db')
    const signer = countingSigner()
    const s = EventStore.open({ path, druId: 'a', durability: 'process', sign: signer.sign })
    const origin = s.origin
    for (let i = 0; i < 4; i++) s.append('d', bytes(i))
    s.close()
    expect(signer.calls).toBe(1)
    const reopened = EventStore.open({ path, druId: 'a', durability: 'process' })
    expect(reopened.getEvent(origin, 4)?.sig).toBeDefined()
    expect(unsignedOrigins(reopened)).toEqual([])
    // Without a signer (as a crash leaves it): unsigned, verifiable, and signed at the next open.
    for (let i = 0; i < 3; i++) reopened.append('d', bytes(i))
    const crashed = reopened.origin
    expect(unsignedOrigins(reopened)).toEqual([{ origin: crashed, druId: 'a', head: 3 }])
    expect(reopened.verifyLog().events).toBe(7)
    expect(signOwnHistory(reopened, 'a', signer.sign)).toBe(1)
    expect(reopened.getEvent(crashed, 3)?.sig).toBeDefined()
    expect(unsignedOrigins(reopened)).toEqual([])
    reopened.close()
  })
})
