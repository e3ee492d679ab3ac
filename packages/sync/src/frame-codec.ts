import { Packr, Unpackr } from 'msgpackr'
import {
  DruError,
  decodeHlc,
  isHex64,
  isLifecycleState,
  isOrigin,
  parseDocId,
  MAX_SEQ,
  NO_RETIRED,
  TREE_FANOUT,
  TREE_HASH_BYTES,
  isTreeNode,
  type FoldedEnvelope,
  type LifecycleState,
  type LogSummary,
  type Origin,
  type VersionVector,
} from '@dru/core'
import {
  DEFAULT_MAX_FRAME_BYTES,
  HMAC_BYTES,
  MAX_ERROR_MESSAGE,
  MAX_EVENTS_PER_FRAME,
  MAX_FRAME_DEPTH,
  MAX_FRAME_VALUES,
  MAX_ORIGINS,
  MAX_SNAPSHOT_DOCS,
  MAX_TREE_DOCS,
  MAX_TREE_HEADS,
  MAX_TREE_NODES,
  PROTOCOL_VERSION,
  SIGNATURE_BYTES,
} from './limits.js'
import { EPHEMERAL_KEY_BYTES } from './frame-seal.js'
import { batchFromWire, batchToWire } from './events-wire.js'
import { checkFrameShape } from './frame-shape.js'
import type { ErrorFrame, Frame, HelloFrame } from './frames.js'

/**
 * The codec of the dru peer protocol's frames (version 7; their shapes are in frames.ts, an `events` batch's compact form in events-wire.ts).
 * Pure: no socket, no store.
 *
 * Every frame is a msgpack array whose first element names its type; arrays (not maps)
 * keep frames compact and make "no extra keys" a length check. Decoding is size- and
 * shape-checked (frame-shape.ts) before msgpack runs, guarded (msgpackr throws Error,
 * RangeError and TypeError) and followed by a strict schema check, so a caller gets a {@link Frame} or a DruError with
 * code FRAME_TOO_LARGE, MALFORMED or INVALID_FRAME — nothing else. Whether a valid frame
 * is allowed *now* is the session's business (protocol/session-rules.ts).
 */

// Private instances: no records/structures extension a hostile peer could use to smuggle shapes.
const packr = new Packr({ useRecords: false, moreTypes: false })
const unpackr = new Unpackr({ useRecords: false, moreTypes: false, mapsAsObjects: true })

function vvToWire(vv: VersionVector): unknown[] {
  return Object.keys(vv)
    .sort()
    .map((o) => [o, vv[o]])
}

function summaryToWire(s: LogSummary, bases: VersionVector): unknown[] {
  const fp = s.live
  return [
    Object.keys(fp.vv)
      .sort()
      .map((o) => [o, fp.vv[o], Buffer.from(fp.heads[o]!, 'hex'), bases[o] ?? 0]),
    // No retired origins: the digest of nothing is a constant, so it is left out (protocol 7).
    s.retired.count === 0 ? [0] : [s.retired.count, Buffer.from(s.retired.digest, 'hex')],
  ]
}

/** Encodes a frame to bytes. */
export function encodeFrame(frame: Frame): Uint8Array {
  switch (frame.type) {
    case 'hello':
      return packr.pack(
        frame.key
          ? ['hello', frame.protocol, frame.druId, frame.origin, frame.key]
          : ['hello', frame.protocol, frame.druId, frame.origin],
      )
    case 'auth':
      return packr.pack(['auth', frame.hmac, frame.sig])
    case 'vv':
      return packr.pack(['vv', ...summaryToWire(frame.summary, frame.bases), frame.full])
    case 'events':
      return packr.pack(['events', ...batchToWire(frame.batch)])
    case 'ack':
      return packr.pack(frame.withVv ? ['ack', vvToWire(frame.vv), true] : ['ack', vvToWire(frame.vv)])
    case 'routes':
      return packr.pack([frame.type, vvToWire(frame.vv), [...frame.neighbours].sort()])
    case 'ping':
      return packr.pack(frame.state ? ['ping', frame.n, frame.state.name, frame.state.since] : ['ping', frame.n])
    case 'pong':
      return packr.pack([frame.type, frame.n])
    case 'error':
      return packr.pack(['error', frame.code, frame.message.slice(0, MAX_ERROR_MESSAGE)])
    case 'probe':
      return packr.pack(['probe', frame.id, frame.deep])
    case 'report':
      return packr.pack(['report', frame.id, ...summaryToWire(frame.summary, {}), frame.stateDigest, frame.documents])
    case 'tree-probe':
      return packr.pack(['tree-probe', frame.id, frame.level, frame.nodes])
    case 'tree-report':
      return packr.pack([
        'tree-report',
        frame.id,
        Buffer.concat(frame.hashes),
        frame.docs.map((d) => [d.docId, d.digest, Buffer.from(d.heads.join(''), 'hex')]),
      ])
    case 'expand':
    case 'bootstrap':
    case 'bootstrap-end':
      return packr.pack([frame.type])
    case 'snapshot':
      return packr.pack(['snapshot', frame.docs.map((d) => [d.docId, d.bytes])])
    case 'folded':
      return packr.pack([
        'folded',
        frame.envelopes.map((e) => [e.origin, e.seq, e.hlc, e.docId, e.changeHash, e.sig ?? null]),
      ])
  }
}

const invalid = (message: string): never => {
  throw new DruError('INVALID_FRAME', message)
}

function expectLength(v: unknown[], n: number, type: string): void {
  if (v.length !== n) invalid(`${type} frame must have ${n - 1} field(s), got ${v.length - 1}`)
}

function expectBytes(v: unknown, n: number, what: string): Uint8Array {
  if (!(v instanceof Uint8Array) || v.byteLength !== n) invalid(`${what} must be ${n} bytes`)
  return v as Uint8Array
}

function expectSeq(v: unknown, what: string, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_SEQ)
    invalid(`${what} must be an integer in ${min}..${MAX_SEQ}`)
  return v as number
}

function expectList(v: unknown, max: number, what: string): unknown[] {
  if (!Array.isArray(v)) invalid(`${what} must be an array`)
  if ((v as unknown[]).length > max) invalid(`${what} lists more than ${max} entries`)
  return v as unknown[]
}

function expectId(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff)
    invalid(`${what} must be an integer in 0..2^32-1`)
  return v as number
}

function expectDocId(v: unknown, what: string): string {
  try {
    return parseDocId(v)
  } catch {
    return invalid(`${what} is not a valid document id`)
  }
}

const ERROR_CODE = /^[A-Z][A-Z_]{0,63}$/
const DRU_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

function readVv(v: unknown, what: string): VersionVector {
  const out: Record<string, number> = Object.create(null)
  for (const [i, entry] of expectList(v, MAX_ORIGINS, what).entries()) {
    if (!Array.isArray(entry) || entry.length !== 2) invalid(`${what}[${i}] must be [origin, seq]`)
    const [origin, seq] = entry as unknown[]
    if (!isOrigin(origin)) invalid(`${what}[${i}] origin is malformed`)
    if (Object.hasOwn(out, origin as string)) invalid(`${what} repeats origin ${origin as string}`)
    out[origin as string] = expectSeq(seq, `${what}[${i}] seq`, 0)
  }
  return { ...out }
}

function readSummary(entries: unknown, retired: unknown, what: string): { summary: LogSummary; bases: VersionVector } {
  const vv: Record<string, number> = Object.create(null)
  const heads: Record<string, string> = Object.create(null)
  const bases: Record<string, number> = Object.create(null)
  for (const [i, entry] of expectList(entries, MAX_ORIGINS, what).entries()) {
    if (!Array.isArray(entry) || entry.length !== 4) invalid(`${what}[${i}] must be [origin, seq, head, base]`)
    const [origin, seq, head, base] = entry as unknown[]
    if (!isOrigin(origin)) invalid(`${what}[${i}] origin is malformed`)
    if (Object.hasOwn(vv, origin as string)) invalid(`${what} repeats origin ${origin as string}`)
    vv[origin as string] = expectSeq(seq, `${what}[${i}] seq`, 1)
    heads[origin as string] = Buffer.from(expectBytes(head, 32, `${what}[${i}] head`)).toString('hex')
    const b = expectSeq(base, `${what}[${i}] base`, 0)
    if (b > (seq as number)) invalid(`${what}[${i}] base is above its seq`)
    if (b > 0) bases[origin as string] = b
  }
  if (!Array.isArray(retired) || retired.length === 0 || retired.length > 2)
    invalid(`${what} retired summary must be [0] or [count, digest]`)
  const [count, digest] = retired as unknown[]
  const n = expectSeq(count, `${what} retired count`, 0)
  if ((n === 0) !== ((retired as unknown[]).length === 1))
    invalid(`${what} retired summary must be [0] or [count, digest]`)
  const d = n === 0 ? NO_RETIRED.digest : Buffer.from(expectBytes(digest, 32, `${what} retired digest`)).toString('hex')
  return {
    summary: {
      live: { vv: { ...vv }, heads: { ...heads } },
      retired: { count: n, digest: d },
    },
    bases: { ...bases },
  }
}

function readEnvelope(v: unknown, i: number): FoldedEnvelope {
  if (!Array.isArray(v) || v.length !== 6) invalid(`folded[${i}] must be [origin, seq, hlc, docId, changeHash, sig]`)
  const [origin, seq, hlc, docId, changeHash, sig] = v as unknown[]
  if (!isOrigin(origin)) invalid(`folded[${i}] origin is malformed`)
  try {
    decodeHlc(hlc)
  } catch {
    invalid(`folded[${i}] hlc is malformed`)
  }
  const env: FoldedEnvelope = {
    origin: origin as Origin,
    seq: expectSeq(seq, `folded[${i}] seq`, 1),
    hlc: hlc as string,
    docId: expectDocId(docId, `folded[${i}].docId`),
    changeHash: expectBytes(changeHash, 32, `folded[${i}] changeHash`),
  }
  if (sig === null) return env
  return { ...env, sig: expectBytes(sig, SIGNATURE_BYTES, `folded[${i}] sig`) }
}

/**
 * Decodes and validates one frame. The size is checked before any decoding; every
 * failure is a DruError (FRAME_TOO_LARGE, MALFORMED or INVALID_FRAME).
 */
export function decodeFrame(bytes: Uint8Array, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Frame {
  if (!(bytes instanceof Uint8Array)) throw new DruError('MALFORMED', 'a frame must be binary')
  if (bytes.byteLength > maxFrameBytes) {
    throw new DruError('FRAME_TOO_LARGE', `frame of ${bytes.byteLength} bytes exceeds the limit of ${maxFrameBytes}`)
  }
  // Counted before msgpack builds anything: a frame of millions of one-byte empty arrays
  // would otherwise cost tens of bytes of heap per byte.
  checkFrameShape(bytes, MAX_FRAME_VALUES, MAX_FRAME_DEPTH)
  let v: unknown
  try {
    v = unpackr.unpack(bytes)
  } catch (cause) {
    throw new DruError(
      'MALFORMED',
      `frame does not decode as msgpack: ${String((cause as Error)?.message ?? cause).slice(0, 200)}`,
      { cause },
    )
  }
  try {
    return readFrame(v)
  } catch (err) {
    if (err instanceof DruError) throw err
    // A schema check must never crash the socket handler, whatever the value looks like.
    throw new DruError(
      'INVALID_FRAME',
      `frame failed validation: ${String((err as Error)?.message ?? err).slice(0, 200)}`,
      { cause: err },
    )
  }
}

function readFrame(v: unknown): Frame {
  if (!Array.isArray(v) || v.length === 0) return invalid('a frame must be a non-empty array')
  const type = v[0]
  switch (type) {
    case 'hello': {
      const [, protocol, druId, origin, key] = v
      if (typeof protocol !== 'number' || !Number.isInteger(protocol) || protocol < 0 || protocol > 0xffff)
        invalid('hello.protocol must be an integer in 0..65535')
      // Another version's hello is decoded as far as its version, so it is refused by name.
      if (protocol !== PROTOCOL_VERSION)
        return {
          type,
          protocol,
          druId: String(druId).slice(0, 64),
          origin: String(origin).slice(0, 90),
        } as HelloFrame
      expectLength(v, 5, 'hello')
      if (typeof druId !== 'string' || !DRU_ID.test(druId)) invalid('hello.druId is malformed')
      if (!isOrigin(origin)) invalid('hello.origin is malformed')
      return {
        type,
        protocol,
        druId,
        origin,
        key: expectBytes(key, EPHEMERAL_KEY_BYTES, 'hello.key'),
      } as HelloFrame
    }
    case 'auth':
      expectLength(v, 3, 'auth')
      return {
        type,
        hmac: expectBytes(v[1], HMAC_BYTES, 'auth.hmac'),
        sig: expectBytes(v[2], SIGNATURE_BYTES, 'auth.sig'),
      }
    case 'vv': {
      expectLength(v, 4, 'vv')
      if (typeof v[3] !== 'boolean') invalid('vv.full must be a boolean')
      return { type, ...readSummary(v[1], v[2], 'vv.origins'), full: v[3] as boolean }
    }
    case 'events': {
      expectLength(v, 4, 'events')
      return { type, batch: batchFromWire(v[1], v[2], v[3]) }
    }
    case 'ack': {
      if (v.length !== 2 && v.length !== 3) invalid(`ack frame must have 1 or 2 fields, got ${v.length - 1}`)
      if (v.length === 3 && v[2] !== true) invalid('ack.withVv must be true when present')
      const vv = readVv(v[1], 'ack.vv')
      return v.length === 3 ? { type, vv, withVv: true } : { type, vv }
    }
    case 'routes': {
      expectLength(v, 3, type)
      const neighbours = expectList(v[2], MAX_ORIGINS, 'routes.neighbours')
      for (const [i, id] of neighbours.entries())
        if (typeof id !== 'string' || !DRU_ID.test(id)) invalid(`routes.neighbours[${i}] is not a DRU id`)
      if (new Set(neighbours).size !== neighbours.length) invalid('routes.neighbours repeats a DRU')
      return { type, vv: readVv(v[1], 'routes.vv'), neighbours: neighbours as string[] }
    }
    case 'ping':
    case 'pong':
      if (!(v.length === 2 || (type === 'ping' && v.length === 4)))
        invalid(`${type} frame must have ${type === 'ping' ? '1 or 3' : '1'} field(s), got ${v.length - 1}`)
      if (typeof v[1] !== 'number' || !Number.isInteger(v[1]) || v[1] < 0 || v[1] > 0xffffffff)
        invalid(`${type}.n must be an integer in 0..2^32-1`)
      if (v.length === 4) {
        if (!isLifecycleState(v[2])) invalid('ping.state must be a lifecycle state')
        if (!Number.isSafeInteger(v[3]) || (v[3] as number) < 0) invalid('ping.since must be a time in ms')
        return { type: 'ping', n: v[1] as number, state: { name: v[2] as LifecycleState, since: v[3] as number } }
      }
      return { type, n: v[1] as number }
    case 'error': {
      expectLength(v, 3, 'error')
      const [, code, message] = v
      if (typeof code !== 'string' || !ERROR_CODE.test(code)) invalid('error.code must be an upper-case code')
      if (typeof message !== 'string' || message.length > MAX_ERROR_MESSAGE)
        invalid(`error.message must be a string of at most ${MAX_ERROR_MESSAGE} characters`)
      return { type, code, message } as ErrorFrame
    }
    case 'probe': {
      expectLength(v, 3, 'probe')
      if (typeof v[2] !== 'boolean') invalid('probe.deep must be a boolean')
      return { type, id: expectId(v[1], 'probe.id'), deep: v[2] as boolean }
    }
    case 'report': {
      expectLength(v, 6, 'report')
      const [, id, entries, retired, digest, documents] = v
      if (digest !== null && (typeof digest !== 'string' || !isHex64(digest)))
        invalid('report.stateDigest must be null or 64 lowercase hex characters')
      if (
        documents !== null &&
        (typeof documents !== 'number' || !Number.isInteger(documents) || documents < 0 || documents > MAX_SEQ)
      ) {
        invalid('report.documents must be null or a non-negative integer')
      }
      const { summary } = readSummary(entries, retired, 'report.origins')
      return {
        type,
        id: expectId(id, 'report.id'),
        summary,
        stateDigest: digest as string | null,
        documents: documents as number | null,
      }
    }
    case 'tree-probe': {
      expectLength(v, 4, 'tree-probe')
      const [, id, level, nodes] = v
      const list = expectList(nodes, MAX_TREE_NODES, 'tree-probe.nodes')
      if (list.length === 0) invalid('tree-probe.nodes must not be empty')
      for (const n of list)
        if (!isTreeNode(level as number, n as number)) invalid('tree-probe.nodes must name nodes of tree-probe.level')
      return { type, id: expectId(id, 'tree-probe.id'), level: level as number, nodes: list as number[] }
    }
    case 'tree-report': {
      expectLength(v, 4, 'tree-report')
      const [, id, hashes, docs] = v
      if (!(hashes instanceof Uint8Array) || hashes.byteLength % (TREE_HASH_BYTES * TREE_FANOUT) !== 0)
        invalid(`tree-report.hashes must be bytes, ${TREE_FANOUT} hashes of ${TREE_HASH_BYTES} per node`)
      const flat = hashes as Uint8Array
      if (flat.byteLength > MAX_TREE_NODES * TREE_FANOUT * TREE_HASH_BYTES) invalid('tree-report.hashes is too long')
      const list: Uint8Array[] = []
      for (let at = 0; at < flat.byteLength; at += TREE_HASH_BYTES) list.push(flat.slice(at, at + TREE_HASH_BYTES))
      const entries = expectList(docs, MAX_TREE_DOCS, 'tree-report.docs').map((entry, i) => {
        if (!Array.isArray(entry) || entry.length !== 3)
          invalid(`tree-report.docs[${i}] must be [docId, digest, heads]`)
        const [docId, digest, heads] = entry as unknown[]
        const d = expectDocId(docId, `tree-report.docs[${i}].docId`)
        if (typeof digest !== 'string' || !(isHex64(digest) || digest === 'isolated'))
          invalid(`tree-report.docs[${i}].digest must be 64 lowercase hex characters or "isolated"`)
        if (!(heads instanceof Uint8Array) || heads.byteLength % 32 !== 0 || heads.byteLength > MAX_TREE_HEADS * 32)
          invalid(`tree-report.docs[${i}].heads must be at most ${MAX_TREE_HEADS} hashes of 32 bytes`)
        const hex = Buffer.from(heads as Uint8Array).toString('hex')
        const list: string[] = []
        for (let at = 0; at < hex.length; at += 64) list.push(hex.slice(at, at + 64))
        return { docId: d, digest: digest as string, heads: list }
      })
      return { type, id: expectId(id, 'tree-report.id'), hashes: list, docs: entries }
    }
    case 'expand':
    case 'bootstrap':
    case 'bootstrap-end':
      expectLength(v, 1, type)
      return { type }
    case 'snapshot': {
      expectLength(v, 2, 'snapshot')
      const raw = expectList(v[1], MAX_SNAPSHOT_DOCS, 'snapshot.docs')
      if (raw.length === 0) invalid('snapshot.docs must not be empty')
      const docs = raw.map((entry, i) => {
        if (!Array.isArray(entry) || entry.length !== 2) invalid(`snapshot.docs[${i}] must be [docId, bytes]`)
        const [docId, bytes] = entry as unknown[]
        const id = expectDocId(docId, `snapshot.docs[${i}].docId`)
        if (!(bytes instanceof Uint8Array) || bytes.byteLength === 0)
          invalid(`snapshot.docs[${i}].bytes must be non-empty bytes`)
        return { docId: id, bytes: bytes as Uint8Array }
      })
      return { type, docs }
    }
    case 'folded': {
      expectLength(v, 2, 'folded')
      const raw = expectList(v[1], MAX_EVENTS_PER_FRAME, 'folded.envelopes')
      if (raw.length === 0) invalid('folded.envelopes must not be empty')
      return { type, envelopes: raw.map(readEnvelope) }
    }
    default:
      return invalid(`unknown frame type ${JSON.stringify(String(type)).slice(0, 40)}`)
  }
}
