import * as A from '@automerge/automerge'
import { describe, expect, it } from 'vitest'
import { GENESIS_HASH, encodeHlc, sealEvent, type DruEvent, type Origin } from '@dru/core'
import { actorForOrigin } from '../src/actor.js'
import { checkChanges, checkedChange } from '../src/change-validation.js'

// checkChanges records what it read from each change it accepted on the change's bytes
// object (a private field), for the storing check and conflict recording to read instead of
// decoding again. Only that object carries the record, and only when it was checked.

const origin = 'a/1' as Origin

function events(n: number): DruEvent[] {
  let d = A.init<Record<string, number>>({ actor: actorForOrigin(origin) })
  let prev = GENESIS_HASH
  const out: DruEvent[] = []
  for (let i = 0; i < n; i++) {
    d = A.change(d, (x) => (x[`k${i}`] = i))
    const e = sealEvent({
      origin,
      seq: i + 1,
      hlc: encodeHlc({ wall: 1_700_000_000_000 + i, counter: 0, node: origin }),
      docId: 'd',
      change: A.getLastLocalChange(d)!,
      prev,
    })
    out.push(e)
    prev = e.hash
  }
  return out
}

describe('checkedChange', () => {
  it('knows a change checkChanges accepted, with its seq and op range, and no copy of its bytes', () => {
    const batch = events(3)
    for (const e of batch) expect(checkedChange(e.change)).toBeUndefined()
    checkChanges(batch)
    batch.forEach((e, i) => {
      expect(checkedChange(e.change)).toMatchObject({ seq: i + 1, startOp: i + 1, endOp: i + 2, made: [] })
      // A copy of the bytes, however made, was not checked.
      expect(checkedChange(e.change.slice())).toBeUndefined()
      expect(checkedChange(new Uint8Array(e.change))).toBeUndefined()
      expect(checkedChange(Buffer.from(e.change))).toBeUndefined()
      expect(checkedChange(structuredClone(e.change))).toBeUndefined()
      expect(checkedChange(Object.assign(new Uint8Array(e.change.length), e.change))).toBeUndefined()
    })
  })

  it('is invisible on the bytes: no own key, equal to a copy, the same bytes to every reader', () => {
    const [e] = events(1)
    const before = Reflect.ownKeys(e!.change)
    checkChanges([e!])
    expect(Reflect.ownKeys(e!.change)).toEqual(before)
    expect(e!.change).toEqual(e!.change.slice())
    expect(A.decodeChange(e!.change).seq).toBe(1)
  })

  it('records nothing for a batch it refuses at that event, and a change checked again keeps one record', () => {
    const [good, other] = events(2)
    // Another origin's event carrying this change: not its actor, refused.
    const forged = { ...other!, origin: 'b/2' as Origin }
    expect(() => checkChanges([good!, forged])).toThrow(/not by this origin's actor/)
    expect(checkedChange(good!.change)).toMatchObject({ seq: 1, startOp: 1, endOp: 2 })
    expect(checkedChange(forged.change)).toBeUndefined()
    checkChanges([good!])
    checkChanges([good!])
    expect(checkedChange(good!.change)).toMatchObject({ seq: 1, startOp: 1, endOp: 2 })
  })
})
