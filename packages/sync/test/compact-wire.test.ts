import { createPrivateKey, createPublicKey } from 'node:crypto'
import { brotliCompressSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import {
  DruError,
  GENESIS_HASH,
  encodeHlc,
  eventHashMatches,
  isHashComputed,
  pack,
  sealEvent,
  validateEvent,
  type DruEvent,
  type Origin,
} from '@dru/core'
import {
  COMPRESSED_FRAME_MARK,
  PeerProtocol,
  compressFrame,
  COMPRESS_MIN_SAVING,
  decodeFrame,
  decompressFrame,
  encodeFrame,
  generateKeys,
  signerFor,
  silentLogger,
  type Frame,
} from '../src/index.js'
import { checkRuns } from '../src/protocol/batch-check.js'
import { unitLimits } from './helpers/limits.js'
import { MemberEnd } from './helpers/member-end.js'
import { SignedLog } from './helpers/signed-log.js'

// Protocol 6's events frame carries no hash and no prev per event (the receiver recomputes
// them), HLCs as numbers, origins and documents once per frame, and one signature per
// origin; frames after the handshake may be brotli-compressed. What must hold: the batch
// decoded is the batch sent (save the signatures nobody checks), and any changed byte is
// refused with a typed error that names what failed, never silently accepted.

const RUNS = Number(process.env.DRU_PROPERTY_RUNS ?? 0) || undefined
const keys = { a: generateKeys(), b: generateKeys(), c: generateKeys() }
const signers = { a: signerFor(keys.a.privateKey), b: signerFor(keys.b.privateKey), c: signerFor(keys.c.privateKey) }
const publicKeys = new Map(Object.entries(keys).map(([id, k]) => [id, createPublicKey(k.publicKey)]))

type Writer = keyof typeof signers

/** Per writer a hash-linked chain from `from`, every `signEvery`-th event signed, the last one always. */
function chains(spec: Array<{ w: Writer; from: number; n: number; signEvery: number; docs: number }>) {
  const out = new Map<Writer, DruEvent[]>()
  for (const { w, from, n, signEvery, docs } of spec) {
    const list: DruEvent[] = []
    let prev = from === 1 ? GENESIS_HASH : 'ab'.repeat(32)
    for (let i = 0; i < n; i++) {
      const seq = from + i
      const e = sealEvent({
        origin: `${w}/1` as Origin,
        seq,
        hlc: encodeHlc({ wall: 1_800_000_000_000 + seq * 7, counter: seq % 3, node: `${w}/1` }),
        docId: `doc-${seq % docs}`,
        change: new Uint8Array([seq & 255, 0x85, 0x6f, 0x4a, i & 255]),
        prev,
      })
      list.push((i + 1) % signEvery === 0 || i === n - 1 ? { ...e, sig: signers[w](e.hash) } : e)
      prev = e.hash
    }
    out.set(w, list)
  }
  return out
}

/** Interleaves the chains in a seeded order, keeping each chain's own order. */
function interleave(lists: DruEvent[][], picks: number[]): DruEvent[] {
  const at = lists.map(() => 0)
  const out: DruEvent[] = []
  let k = 0
  while (out.length < lists.reduce((n, l) => n + l.length, 0)) {
    const open = lists.map((l, i) => i).filter((i) => at[i]! < lists[i]!.length)
    const i = open[(picks[k++ % picks.length] ?? 0) % open.length]!
    out.push(lists[i]![at[i]!++]!)
  }
  return out
}

/** An event as comparable plain values (msgpack hands back Buffers for Uint8Arrays). */
const plainEvent = (e: DruEvent) => ({
  ...e,
  change: Buffer.from(e.change).toString('hex'),
  ...(e.sig ? { sig: Buffer.from(e.sig).toString('hex') } : {}),
})

/** What the receiver can rely on: every field, and each origin's last signature. */
function expected(batch: DruEvent[]): ReturnType<typeof plainEvent>[] {
  const lastIndex = new Map<string, number>()
  batch.forEach((e, i) => lastIndex.set(e.origin, i))
  return batch
    .map((e, i) => {
      if (lastIndex.get(e.origin) === i || e.sig === undefined) return e
      const { sig: _dropped, ...rest } = e
      return rest
    })
    .map(plainEvent)
}

const roundTrip = (batch: DruEvent[]) => {
  const frame = decodeFrame(encodeFrame({ type: 'events', batch }))
  if (frame.type !== 'events') throw new Error('not an events frame')
  return frame.batch.map(plainEvent)
}

describe('the compact events frame', () => {
  it('property: any batch of interleaved signed chains decodes to the same events, hashes recomputed', () => {
    const writer = fc.constantFrom<Writer>('a', 'b', 'c')
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.record({
            w: writer,
            from: fc.integer({ min: 1, max: 5 }),
            n: fc.integer({ min: 1, max: 12 }),
            signEvery: fc.integer({ min: 1, max: 5 }),
            docs: fc.integer({ min: 1, max: 4 }),
          }),
          { minLength: 1, maxLength: 3, selector: (s) => s.w },
        ),
        fc.array(fc.nat(10), { minLength: 1, maxLength: 40 }),
        (spec, picks) => {
          const batch = interleave([...chains(spec).values()], picks)
          const frame = decodeFrame(encodeFrame({ type: 'events', batch }))
          if (frame.type !== 'events') throw new Error('not an events frame')
          expect(frame.batch.map(plainEvent)).toEqual(expected(batch))
          // The decoder's own checks are no weaker than core's event check.
          for (const e of frame.batch) expect(validateEvent({ ...e })).toBeDefined()
          // Each is marked as hashed from its contents (ingest then skips a second hash), truly.
          for (const e of frame.batch) {
            expect(isHashComputed(e)).toBe(true)
            expect(eventHashMatches(e)).toBe(true)
          }
          // checkRuns keeps the events and names each origin's last one, in order of first appearance.
          const { events, tips } = checkRuns(frame.batch, publicKeys)
          expect(events).toEqual(frame.batch)
          const origins = [...new Set(batch.map((e) => e.origin))]
          expect([...tips.keys()]).toEqual(origins)
          for (const o of origins) expect(tips.get(o)).toBe(frame.batch.findLast((e) => e.origin === o))
        },
      ),
      { seed: 61, numRuns: RUNS ?? 200 },
    )
  })

  it('checkRuns refuses an origin whose events are not consecutive, across runs of other origins too', () => {
    const all = chains([
      { w: 'a', from: 1, n: 4, signEvery: 1, docs: 2 },
      { w: 'b', from: 1, n: 2, signEvery: 1, docs: 2 },
    ])
    const [a1, a2, a3, a4] = all.get('a')!
    const [b1, b2] = all.get('b')!
    const code = (batch: DruEvent[]) => {
      try {
        checkRuns(batch, publicKeys)
        return 'ok'
      } catch (err) {
        return (err as DruError).code
      }
    }
    expect(code([a1!, a2!, b1!, a3!, b2!, a4!])).toBe('ok')
    expect(code([a1!, b1!, a3!])).toBe('OUT_OF_ORDER')
    expect(code([a1!, a2!, b1!, b2!, a2!])).toBe('OUT_OF_ORDER')
    expect(code([a1!, a1!])).toBe('OUT_OF_ORDER')
    expect(code([b2!, a1!, b1!])).toBe('OUT_OF_ORDER')
  })

  it('carries a broken link or a gap as it is, so the log refuses it as before', () => {
    const [a] = [...chains([{ w: 'a', from: 1, n: 4, signEvery: 1, docs: 2 }]).values()]
    // Event 3 names another prev; event 4 is missing (a gap between 2 and 5 is not a run).
    const broken = [a![0]!, a![1]!, sealEvent({ ...a![2]!, prev: 'cd'.repeat(32) })]
    expect(roundTrip(broken)).toEqual(expected(broken))
    const gap = [a![0]!, a![3]!]
    expect(roundTrip(gap).map((e) => [e.seq, e.prev])).toEqual(gap.map((e) => [e.seq, e.prev]))
  })

  it('is about a quarter of the version-5 form for small changes', () => {
    const batch = [...chains([{ w: 'a', from: 1, n: 500, signEvery: 1, docs: 50 }]).values()][0]!
    const v5 = pack(['events', batch.map((e) => [e.origin, e.seq, e.hlc, e.docId, e.change, e.prev, e.hash, e.sig])])
    const v6 = encodeFrame({ type: 'events', batch })
    expect(v6.byteLength).toBeLessThan(v5.byteLength / 4)
  })

  it('every single changed byte of a frame is refused with a typed error naming what failed', () => {
    const lists = [
      ...chains([
        { w: 'a', from: 1, n: 3, signEvery: 3, docs: 2 },
        { w: 'b', from: 4, n: 2, signEvery: 1, docs: 1 },
      ]).values(),
    ]
    const batch = interleave(lists, [0, 1, 0, 1, 0])
    const plain = encodeFrame({ type: 'events', batch })
    const check = (bytes: Uint8Array): string => {
      try {
        const f = decodeFrame(bytes)
        if (f.type !== 'events') return 'not events'
        checkRuns(f.batch, publicKeys)
        // Accepted: only if it is exactly the batch (a byte msgpack reads the same way).
        expect(f.batch.map(plainEvent)).toEqual(expected(batch))
        return 'same'
      } catch (err) {
        if (!(err instanceof DruError)) throw err
        // A refusal that names the event is one the operator can act on.
        if (err.code === 'BAD_SIGNATURE') expect(err.message).toMatch(/^\w\/1#\d+ is not signed/)
        return err.code
      }
    }
    const codes = new Map<string, number>()
    for (let i = 0; i < plain.byteLength; i++) {
      for (const flip of [0x01, 0x80]) {
        const bytes = new Uint8Array(plain)
        bytes[i] = bytes[i]! ^ flip
        const code = check(bytes)
        codes.set(code, (codes.get(code) ?? 0) + 1)
      }
    }
    expect(
      [...codes.keys()].every((c) =>
        ['MALFORMED', 'INVALID_FRAME', 'BAD_SIGNATURE', 'UNKNOWN_ORIGIN', 'OUT_OF_ORDER', 'same'].includes(c),
      ),
    ).toBe(true)
    // Most flips land in a change, a signature or the HLC: the signature check catches them.
    expect(codes.get('BAD_SIGNATURE') ?? 0).toBeGreaterThan(plain.byteLength / 2)
    expect(codes.get('same') ?? 0).toBe(0)
  })

  it.each([
    ['a run without prev that continues nothing', (r: unknown[]) => ((r[0] as unknown[])[2] = null)],
    ['an origin index past the dictionary', (r: unknown[]) => ((r[0] as unknown[])[0] = 9)],
    ['a document index past the dictionary', (r: unknown[]) => (((r[0] as unknown[])[3] as unknown[][])[0]![3] = 9)],
    ['a fractional wall delta', (r: unknown[]) => (((r[0] as unknown[])[3] as unknown[][])[0]![0] = 1.5)],
    ['a negative counter', (r: unknown[]) => (((r[0] as unknown[])[3] as unknown[][])[0]![1] = -1)],
    ['a wall clock below zero', (r: unknown[]) => (((r[0] as unknown[])[3] as unknown[][])[0]![0] = -1)],
    ['a short prev', (r: unknown[]) => ((r[0] as unknown[])[2] = new Uint8Array(31))],
    ['a short signature', (r: unknown[]) => ((r[0] as unknown[])[4] = new Uint8Array(63))],
    ['an empty run', (r: unknown[]) => ((r[0] as unknown[])[3] = [])],
    ['a run of four fields', (r: unknown[]) => (r[0] as unknown[]).pop()],
    ['no runs', (r: unknown[]) => r.splice(0)],
    ['seq 0', (r: unknown[]) => ((r[0] as unknown[])[1] = 0)],
    ['a counter past its ten digits', (r: unknown[]) => (((r[0] as unknown[])[3] as unknown[][])[0]![1] = 1e10)],
    ['a wall clock past its fifteen digits', (r: unknown[]) => (((r[0] as unknown[])[3] as unknown[][])[0]![0] = 1e15)],
    ['a change that is not bytes', (r: unknown[]) => (((r[0] as unknown[])[3] as unknown[][])[0]![4] = 'x')],
    [
      'seq 1 after a prev that is not the genesis',
      (r: unknown[]) => ((r[0] as unknown[])[2] = new Uint8Array(32).fill(1)),
    ],
  ])('refuses %s with INVALID_FRAME', (_name, mutate) => {
    const batch = [...chains([{ w: 'a', from: 1, n: 2, signEvery: 1, docs: 1 }]).values()][0]!
    const wire = decodeWire(encodeFrame({ type: 'events', batch }))
    mutate(wire[3] as unknown[])
    expect(() => decodeFrame(pack(wire))).toThrow(expect.objectContaining({ code: 'INVALID_FRAME' }))
  })
})

describe('the compact events frame: dictionaries', () => {
  it.each([
    ['an origin that is no origin', (w: unknown[]) => ((w[1] as string[])[0] = 'a')],
    ['a document id with a control character', (w: unknown[]) => ((w[2] as string[])[0] = 'doc\u0001')],
    ['an empty document id', (w: unknown[]) => ((w[2] as string[])[0] = '')],
    ['a name that is not a string', (w: unknown[]) => ((w[1] as unknown[])[0] = 7)],
    ['a dictionary that is not a list', (w: unknown[]) => (w[2] = 'doc-0')],
  ])('refuses %s with INVALID_FRAME', (_name, mutate) => {
    const batch = [...chains([{ w: 'a', from: 1, n: 2, signEvery: 1, docs: 1 }]).values()][0]!
    const wire = decodeWire(encodeFrame({ type: 'events', batch }))
    mutate(wire)
    expect(() => decodeFrame(pack(wire))).toThrow(expect.objectContaining({ code: 'INVALID_FRAME' }))
  })

  it('refuses an HLC node with a line break (not core text form)', () => {
    const e = sealEvent({
      origin: 'a/1' as Origin,
      seq: 1,
      hlc: encodeHlc({ wall: 1_800_000_000_000, counter: 0, node: 'a/1' }),
      docId: 'd',
      change: new Uint8Array([1]),
      prev: GENESIS_HASH,
    })
    const wire = decodeWire(encodeFrame({ type: 'events', batch: [{ ...e, sig: new Uint8Array(64) }] }))
    ;(wire[1] as string[]).push('a\nb')
    ;(((wire[3] as unknown[][])[0]![3] as unknown[][])[0]![2] as number) = 1
    expect(() => decodeFrame(pack(wire))).toThrow(expect.objectContaining({ code: 'INVALID_FRAME' }))
  })
})

function decodeWire(bytes: Uint8Array): unknown[] {
  // The frame as plain msgpack (to mutate fields of the wire form).
  return decodeFramePlain(bytes) as unknown[]
}
import { Unpackr } from 'msgpackr'
const decodeFramePlain = (b: Uint8Array) => new Unpackr({ useRecords: false, mapsAsObjects: true }).unpack(b)

describe('compressed frames', () => {
  it('round-trip; short frames, and frames brotli cannot shorten, go as they are', () => {
    const big = encodeFrame({
      type: 'events',
      batch: [...chains([{ w: 'a', from: 1, n: 200, signEvery: 1, docs: 9 }]).values()][0]!,
    })
    const packed = compressFrame(big)
    expect(packed[0]).toBe(COMPRESSED_FRAME_MARK)
    expect(packed.byteLength).toBeLessThan(big.byteLength)
    expect(decompressFrame(packed, big.byteLength)).toEqual(Buffer.from(big))
    const small = encodeFrame({ type: 'ping', n: 1 })
    expect(compressFrame(small)).toBe(small)
    const random = new Uint8Array(4096).map(() => Math.floor(Math.random() * 256))
    expect(compressFrame(random)).toBe(random)
  })

  it('a frame goes compressed only when that saves at least an eighth of it', () => {
    // random bytes with a run of zeros: brotli saves about the zeros' share
    const mixed = (zeros: number) =>
      Uint8Array.from({ length: 8192 }, (_, i) => (i < 8192 * zeros ? 0 : Math.floor(Math.random() * 256)))
    const little = mixed(0.05)
    expect(compressFrame(little)).toBe(little)
    const enough = mixed(0.2)
    const packed = compressFrame(enough)
    expect(packed[0]).toBe(COMPRESSED_FRAME_MARK)
    expect(packed.byteLength).toBeLessThanOrEqual(enough.byteLength * (1 - COMPRESS_MIN_SAVING))
    expect(decompressFrame(packed, enough.byteLength)).toEqual(Buffer.from(enough))
  })

  it('a frame that inflates past the limit is FRAME_TOO_LARGE; a broken stream is MALFORMED', () => {
    const bomb = Buffer.concat([Buffer.from([COMPRESSED_FRAME_MARK]), brotliCompressSync(Buffer.alloc(64 << 20))])
    expect(bomb.byteLength).toBeLessThan(64 << 10)
    expect(() => decompressFrame(bomb, 1 << 20)).toThrow(expect.objectContaining({ code: 'FRAME_TOO_LARGE' }))
    const broken = Buffer.from([COMPRESSED_FRAME_MARK, 1, 2, 3, 4, 5])
    expect(() => decompressFrame(broken, 1 << 20)).toThrow(expect.objectContaining({ code: 'MALFORMED' }))
  })

  function session() {
    const keysXm = { x: generateKeys(), m: generateKeys() }
    const store = new SignedLog('x', keysXm.x.privateKey)
    const out: Frame[] = []
    const wire: Uint8Array[] = []
    const m = new MemberEnd('m', 'm/1', 'compact-wire-secret-0123456789', 'x')
    const p = new PeerProtocol(
      {
        log: store,
        druId: 'x',
        secret: 'compact-wire-secret-0123456789',
        privateKey: createPrivateKey(keysXm.x.privateKey),
        publicKeys: new Map(Object.entries(keysXm).map(([id, k]) => [id, createPublicKey(k.publicKey)])),
        limits: unitLimits,
        logger: silentLogger,
        now: () => 1_800_000_000_000,
      },
      {},
      {
        send: (b) => {
          wire.push(b)
          out.push(m.decode(b))
        },
        close: () => undefined,
        bufferedAmount: 0,
      },
      'acceptor',
    )
    p.start()
    return { p, m, out, wire, store, keys: keysXm }
  }

  it('a bomb from an authenticated member closes its session with FRAME_TOO_LARGE, nothing stored', () => {
    const { p, m, store, keys: k } = session()
    p.receive(m.encode(m.hello()))
    p.receive(m.encode(m.auth(k.m.privateKey)))
    expect(p.phase).toBe('open')
    const before = store.vv()
    const bomb = Buffer.concat([Buffer.from([COMPRESSED_FRAME_MARK]), brotliCompressSync(Buffer.alloc(64 << 20))])
    p.receive(m.encode(bomb))
    expect(p.closeReason?.code).toBe('FRAME_TOO_LARGE')
    expect(store.vv()).toEqual(before)
  })

  it('a stranger cannot make us decompress: before auth a compressed frame is refused as it is', () => {
    const { p } = session()
    const packed = compressFrame(
      encodeFrame({
        type: 'events',
        batch: [...chains([{ w: 'a', from: 1, n: 200, signEvery: 1, docs: 9 }]).values()][0]!,
      }),
    )
    p.receive(packed.subarray(0, 4000))
    expect(p.phase).toBe('closed')
    expect(p.closeReason?.code).toBe('MALFORMED')
  })

  it('a session sends its stream compressed, and the peer reads it', () => {
    const { p, m, out, wire, store, keys: k } = session()
    for (let i = 0; i < 300; i++) store.commit(`doc-${i % 20}`, new Uint8Array([i & 255, 1, 2, 3, 4, 5, 6, 7]))
    p.receive(m.encode(m.hello()))
    p.receive(m.encode(m.auth(k.m.privateKey)))
    const empty = new SignedLog('m', k.m.privateKey)
    p.receive(m.encode({ type: 'vv', summary: empty.summary(), bases: {}, full: false }))
    const events = out.filter((f): f is Extract<Frame, { type: 'events' }> => f.type === 'events')
    expect(events.flatMap((f) => f.batch).map((e) => e.seq)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1))
    expect(wire.some((b) => b[0] === COMPRESSED_FRAME_MARK)).toBe(true)
  })
})
