import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { DruError, GENESIS_HASH, sealEvent, encodeHlc, type DruEvent } from '@dru/core'
import { Rng } from '@dru/testkit'
import {
  decodeFrame,
  encodeFrame,
  signerFor,
  generateKeys,
  MAX_EVENTS_PER_FRAME,
  PROTOCOL_VERSION,
  type Frame,
} from '../src/index.js'

const RUNS = Number(process.env.DRU_PROPERTY_RUNS ?? 0) || undefined

const { privateKey } = generateKeys()
const sign = signerFor(privateKey)

function chain(n: number): DruEvent[] {
  const out: DruEvent[] = []
  let prev = GENESIS_HASH
  for (let i = 1; i <= n; i++) {
    const e = sealEvent({
      origin: 'a/1' as never,
      seq: i,
      hlc: encodeHlc({ wall: 1_700_000_000_000 + i, counter: 0, node: 'a/1' }),
      docId: `d${i}`,
      change: new Uint8Array([i, 1, 2]),
      prev,
    })
    out.push(i === n ? { ...e, sig: sign(e.hash) } : e)
    prev = e.hash
  }
  return out
}

const retired = { count: 2, digest: 'e'.repeat(64) }
const valid: Frame[] = [
  {
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    druId: 'eu-west-1',
    origin: 'eu-west-1/4503599627370495',
    key: new Uint8Array(32).fill(3),
  },
  { type: 'auth', hmac: new Uint8Array(32).fill(9), sig: new Uint8Array(64).fill(5) },
  {
    type: 'vv',
    summary: { live: { vv: { 'a/1': 3, 'b/2': 9 }, heads: { 'a/1': 'a'.repeat(64), 'b/2': 'b'.repeat(64) } }, retired },
    bases: { 'b/2': 4 },
    full: false,
  },
  { type: 'events', batch: chain(3) },
  { type: 'ack', vv: { 'a/1': 3, 'b/1': 0 } },
  { type: 'ack', vv: {}, withVv: true },
  { type: 'routes', vv: { 'a/1': 3, 'b/1': 0 }, neighbours: ['c', 'eu-west-1'] },
  { type: 'routes', vv: {}, neighbours: [] },
  { type: 'ping', n: 5 },
  { type: 'ping', n: 6, state: { name: 'catching-up', since: 1_700_000_000_000 } },
  { type: 'pong', n: 5 },
  { type: 'error', code: 'AUTH_FAILED', message: 'nope' },
  { type: 'probe', id: 7, deep: true },
  {
    type: 'report',
    id: 7,
    summary: { live: { vv: { 'a/1': 3 }, heads: { 'a/1': 'a'.repeat(64) } }, retired },
    stateDigest: 'c'.repeat(64),
    documents: 12,
  },
  {
    type: 'report',
    id: 8,
    summary: { live: { vv: {}, heads: {} }, retired: { count: 0, digest: 'f'.repeat(64) } },
    stateDigest: null,
    documents: null,
  },
  { type: 'tree-probe', id: 9, level: 2, nodes: [0, 255] },
  { type: 'tree-probe', id: 10, level: 4, nodes: [65_535] },
  {
    type: 'tree-report',
    id: 9,
    hashes: Array.from({ length: 32 }, (_, i) => new Uint8Array(32).fill(i)),
    docs: [],
  },
  {
    type: 'tree-report',
    id: 10,
    hashes: [],
    docs: [
      { docId: 'order-1', digest: 'd'.repeat(64), heads: ['a'.repeat(64), 'b'.repeat(64)] },
      { docId: 'order-2', digest: 'isolated', heads: [] },
    ],
  },
  { type: 'expand' },
  { type: 'bootstrap' },
  { type: 'snapshot', docs: [{ docId: 'order-1', bytes: new Uint8Array([0x85, 0x6f, 0x4a, 0x83]) }] },
  {
    type: 'folded',
    envelopes: [
      {
        origin: 'a/1' as never,
        seq: 1,
        hlc: encodeHlc({ wall: 1_700_000_000_000, counter: 0, node: 'a/1' }),
        docId: 'd',
        changeHash: new Uint8Array(32).fill(1),
      },
      {
        origin: 'a/1' as never,
        seq: 2,
        hlc: encodeHlc({ wall: 1_700_000_000_001, counter: 0, node: 'a/1' }),
        docId: 'd',
        changeHash: new Uint8Array(32).fill(2),
        sig: new Uint8Array(64).fill(3),
      },
    ],
  },
  { type: 'bootstrap-end' },
]

function decodeOrCode(bytes: Uint8Array, max?: number): string {
  try {
    decodeFrame(bytes, max)
    return 'ok'
  } catch (err) {
    if (!(err instanceof DruError)) throw err
    return err.code
  }
}

describe('frame codec', () => {
  it('round-trips every frame type', () => {
    for (const f of valid) {
      const back = decodeFrame(encodeFrame(f))
      expect(back.type).toBe(f.type)
      expect(encodeFrame(back)).toEqual(encodeFrame(f))
    }
  })

  it("decodes another version's hello only as far as its version, so the session refuses it by name", () => {
    const v3 = encodePlain(['hello', 3, 'a', 'a/1', new Uint8Array(32)])
    expect(decodeFrame(v3)).toMatchObject({ type: 'hello', protocol: 3 })
  })

  it('checks the size before decoding', () => {
    const bytes = encodeFrame(valid[3]!)
    expect(decodeOrCode(bytes, bytes.byteLength - 1)).toBe('FRAME_TOO_LARGE')
    expect(decodeOrCode(bytes, bytes.byteLength)).toBe('ok')
  })

  const h = 'a'.repeat(64)
  const r32 = new Uint8Array(32)
  const hlc = encodeHlc({ wall: 1_700_000_000_000, counter: 0, node: 'a/1' })
  it.each([
    ['extra field', ['auth', new Uint8Array(32), new Uint8Array(64), 1]],
    ['auth without a signature', ['auth', new Uint8Array(32)]],
    ['auth with a short signature', ['auth', new Uint8Array(32), new Uint8Array(63)]],
    [
      "a current-protocol hello with protocol 6's nonce beside its key",
      ['hello', PROTOCOL_VERSION, 'a', 'a/1', r32, r32],
    ],
    ['bad origin', ['hello', PROTOCOL_VERSION, 'a', 'a/0', r32]],
    ['an incarnation beyond 2^53', ['hello', PROTOCOL_VERSION, 'a', 'a/9007199254740993', r32]],
    ['a current-protocol hello without its key', ['hello', PROTOCOL_VERSION, 'a', 'a/1']],
    ['a short ephemeral key', ['hello', PROTOCOL_VERSION, 'a', 'a/1', new Uint8Array(31)]],
    ['negative seq in ack', ['ack', [['a/1', -1]]]],
    ['an ack whose withVv is not true', ['ack', [], false]],
    ['an ack with a field after withVv', ['ack', [], true, 1]],
    ['float seq', ['ack', [['a/1', 1.5]]]],
    [
      'repeated origin',
      [
        'ack',
        [
          ['a/1', 1],
          ['a/1', 2],
        ],
      ],
    ],
    ['a head that is not 32 bytes', ['vv', [['a/1', 1, new Uint8Array(31), 0]], [0], false]],
    ["protocol 5's hex head", ['vv', [['a/1', 1, h, 0]], [0], false]],
    ['base above seq', ['vv', [['a/1', 1, r32, 2]], [0], false]],
    ['vv without retired summary', ['vv', [['a/1', 1, r32, 0]], false]],
    ['vv with a short retired digest', ['vv', [['a/1', 1, r32, 0]], [1, new Uint8Array(31)], false]],
    ["vv with protocol 6's digest of no retired origins", ['vv', [['a/1', 1, r32, 0]], [0, r32], false]],
    ['vv with retired origins but no digest', ['vv', [['a/1', 1, r32, 0]], [2], false]],
    ['vv with an empty retired summary', ['vv', [['a/1', 1, r32, 0]], [], false]],
    ['vv full not boolean', ['vv', [['a/1', 1, r32, 0]], [0], 1]],
    ['empty batch', ['events', []]],
    [
      "version 5's events layout (hash and prev per event)",
      ['events', [['a/1', 1, hlc, 'd', new Uint8Array(1), GENESIS_HASH, h, new Uint8Array(64)]]],
    ],
    [
      'too many events in one frame',
      [
        'events',
        ['a/1'],
        ['d'],
        [[0, 1, r32, Array.from({ length: MAX_EVENTS_PER_FRAME + 1 }, () => [0, 0, 0, 0, new Uint8Array(1)]), null]],
      ],
    ],
    ['unknown type', ['gossip', 1]],
    ['map instead of array', { type: 'ping', n: 1 }],
    ['lower-case error code', ['error', 'nope', 'x']],
    ['huge ping', ['ping', 2 ** 40]],
    ['a ping with an unknown lifecycle state', ['ping', 1, 'asleep', 0]],
    ['a ping whose since is not a time', ['ping', 1, 'active', -1]],
    ['a ping with a state but no since', ['ping', 1, 'active']],
    ['a pong with a state', ['pong', 1, 'active', 0]],
    ['probe without deep flag', ['probe', 1]],
    ['probe deep not boolean', ['probe', 1, 1]],
    ['report digest not hex', ['report', 1, [], [0], 'zz', null]],
    ['report negative documents', ['report', 1, [], [0], null, -1]],
    ['tree-probe without nodes', ['tree-probe', 1, 0, []]],
    ['tree-probe naming a node beyond its level', ['tree-probe', 1, 1, [16]]],
    ['tree-probe below the leaves', ['tree-probe', 1, 5, [0]]],
    ['tree-probe with too many nodes', ['tree-probe', 1, 4, Array.from({ length: 1025 }, (_, i) => i)]],
    ['tree-report with a partial node', ['tree-report', 1, new Uint8Array(33), []]],
    ['tree-report with a bad digest', ['tree-report', 1, new Uint8Array(0), [['d', 'zz', new Uint8Array(0)]]]],
    ['tree-report with short heads', ['tree-report', 1, new Uint8Array(0), [['d', 'isolated', new Uint8Array(5)]]]],
    ['tree-report with a bad doc id', ['tree-report', 1, new Uint8Array(0), [['', 'isolated', new Uint8Array(0)]]]],
    ['expand with a field', ['expand', 1]],
    ['routes without its list', ['routes']],
    ['routes without its neighbours (protocol 5)', ['routes', [['a/1', 1]]]],
    ['routes with a negative seq', ['routes', [['a/1', -1]], []]],
    ['routes naming a neighbour that is no DRU id', ['routes', [], ['a/1']]],
    ['routes naming a neighbour twice', ['routes', [], ['b', 'b']]],
    [
      'routes repeating an origin',
      [
        'routes',
        [
          ['a/1', 1],
          ['a/1', 2],
        ],
        [],
      ],
    ],
    ['bootstrap with a field', ['bootstrap', 'please']],
    ['empty snapshot', ['snapshot', []]],
    ['snapshot with bad doc id', ['snapshot', [['', new Uint8Array(4)]]]],
    ['snapshot with empty bytes', ['snapshot', [['d', new Uint8Array(0)]]]],
    ['empty folded', ['folded', []]],
    ['folded with a short change hash', ['folded', [['a/1', 1, hlc, 'd', new Uint8Array(31), null]]]],
    ['folded with seq 0', ['folded', [['a/1', 0, hlc, 'd', r32, null]]]],
    ['folded with a bad hlc', ['folded', [['a/1', 1, 'not an hlc', 'd', r32, null]]]],
    ['folded with a short sig', ['folded', [['a/1', 1, hlc, 'd', r32, new Uint8Array(8)]]]],
    ['bootstrap-end with a field', ['bootstrap-end', 0]],
  ])('rejects %s with INVALID_FRAME', async (_name, value) => {
    const { pack } = await import('@dru/core')
    expect(decodeOrCode(pack(value))).toBe('INVALID_FRAME')
  })

  it('fuzz: 10k random byte strings each give a frame or a typed error, never a crash', () => {
    const rng = new Rng(0xd1)
    const rnd = () => rng.next()
    const seen = new Map<string, number>()
    for (let i = 0; i < 10_000; i++) {
      const len = Math.floor(rnd() * 64)
      const bytes = new Uint8Array(len)
      for (let j = 0; j < len; j++) bytes[j] = Math.floor(rnd() * 256)
      // Bias the first byte towards array headers so the schema checks are reached too.
      if (len > 0 && rnd() < 0.5) bytes[0] = 0x90 + Math.floor(rnd() * 6)
      const code = decodeOrCode(bytes, 48)
      seen.set(code, (seen.get(code) ?? 0) + 1)
    }
    expect([...seen.keys()].every((c) => ['ok', 'MALFORMED', 'INVALID_FRAME', 'FRAME_TOO_LARGE'].includes(c))).toBe(
      true,
    )
    expect(seen.get('MALFORMED')).toBeGreaterThan(0)
    expect(seen.get('INVALID_FRAME')).toBeGreaterThan(0)
  })

  it('fuzz: 1k mutated valid frames each give a frame or a typed error', () => {
    const rng = new Rng(42)
    const rnd = () => rng.next()
    const seeds = valid.map(encodeFrame)
    const codes = new Set<string>()
    for (let i = 0; i < 1000; i++) {
      const base = seeds[i % seeds.length]!
      const bytes = new Uint8Array(base)
      const flips = 1 + Math.floor(rnd() * 4)
      for (let f = 0; f < flips; f++) {
        const at = Math.floor(rnd() * bytes.length)
        const op = rnd()
        if (op < 0.6) bytes[at] = Math.floor(rnd() * 256)
        else if (op < 0.8) bytes[at] = bytes[at]! ^ (1 << Math.floor(rnd() * 8))
        else bytes[at] = [0xc1, 0xd4, 0xd8, 0xc7, 0xdc, 0xde, 0xff][Math.floor(rnd() * 7)]!
      }
      const cut = rnd() < 0.2 ? bytes.subarray(0, Math.floor(rnd() * bytes.length)) : bytes
      codes.add(decodeOrCode(cut))
    }
    expect([...codes].every((c) => ['ok', 'MALFORMED', 'INVALID_FRAME'].includes(c))).toBe(true)
    expect(codes.has('INVALID_FRAME') || codes.has('MALFORMED')).toBe(true)
  })

  it('property: arbitrary msgpack-able values never crash the decoder', () => {
    fc.assert(
      fc.property(fc.anything({ withTypedArray: true, maxDepth: 4 }), (v) => {
        let bytes: Uint8Array
        try {
          bytes = encodePlain(v)
        } catch {
          return true
        }
        expect(['ok', 'MALFORMED', 'INVALID_FRAME']).toContain(decodeOrCode(bytes))
        return true
      }),
      { seed: 7, numRuns: RUNS ?? 300 },
    )
  })
})

import { Packr } from 'msgpackr'
const plain = new Packr({ useRecords: false })
function encodePlain(v: unknown): Uint8Array {
  return plain.pack(v)
}
