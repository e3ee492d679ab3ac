import { Packr, Unpackr } from 'msgpackr'
import { DruError, decodeHlc, isOrigin, parseDocId, validateEvent, MAX_SEQ, type DruEvent, type Fingerprint, type VersionVector } from '@dru/core'

/**
 * The wire frames of the dru peer protocol and their codec. Pure: no socket, no store.
 *
 * Every frame is a msgpack array whose first element names its type; arrays (not maps)
 * keep frames compact and make "no extra keys" a length check. Decoding is size-checked
 * before msgpack runs, guarded (msgpackr throws Error, RangeError and TypeError) and
 * followed by a strict schema check, so a caller gets a {@link Frame} or a DruError with
 * code FRAME_TOO_LARGE, MALFORMED or INVALID_FRAME — nothing else.
 */

/** Version of this frame grammar and handshake. Peers with another version are refused. 2 added snapshot frames. */
export const PROTOCOL_VERSION = 2

/** Most documents one snapshot frame may carry (the frame's byte cap bounds it too). */
export const MAX_SNAPSHOT_DOCS = 100_000

/** Length of handshake nonces and HMACs (bytes). */
export const NONCE_BYTES = 32
export const HMAC_BYTES = 32

/**
 * Most origins one fingerprint or ack may list. Origins grow by one per DRU incarnation,
 * so a cluster of tens of DRUs stays far below; the cap bounds a hostile frame's work.
 */
export const MAX_ORIGINS = 10_000

/** Longest error message carried in an error frame. */
export const MAX_ERROR_MESSAGE = 1024

/** Default cap on one frame's bytes, checked before decoding (16 MiB). */
export const DEFAULT_MAX_FRAME_BYTES = 16 << 20

export interface HelloFrame {
  readonly type: 'hello'
  readonly protocol: number
  readonly druId: string
  readonly origin: string
  readonly nonce: Uint8Array
}
export interface AuthFrame {
  readonly type: 'auth'
  readonly hmac: Uint8Array
}
export interface VvFrame {
  readonly type: 'vv'
  readonly fingerprint: Fingerprint
}
export interface EventsFrame {
  readonly type: 'events'
  readonly batch: readonly DruEvent[]
}
export interface AckFrame {
  readonly type: 'ack'
  readonly vv: VersionVector
}
export interface PingFrame {
  readonly type: 'ping'
  readonly n: number
}
export interface PongFrame {
  readonly type: 'pong'
  readonly n: number
}
export interface ErrorFrame {
  readonly type: 'error'
  readonly code: string
  readonly message: string
}

/** Asks the peer for its current fingerprint (and, when `deep`, its materialised state digest). */
export interface ProbeFrame {
  readonly type: 'probe'
  readonly id: number
  readonly deep: boolean
}
/** Answer to a probe: the peer's fingerprint now, and its state digest if it was asked and can give one. */
export interface ReportFrame {
  readonly type: 'report'
  readonly id: number
  readonly fingerprint: Fingerprint
  readonly stateDigest: string | null
  readonly documents: number | null
}

/** Document snapshots for a peer below our compaction base (bootstrap). */
export interface SnapshotFrame {
  readonly type: 'snapshot'
  readonly docs: ReadonlyArray<{ readonly docId: string; readonly bytes: Uint8Array }>
}
/** Ends a bootstrap: per origin the compacted seq with its hash and HLC, which the peer adopts as its head. */
export interface SnapshotEndFrame {
  readonly type: 'snapshot-end'
  readonly base: Readonly<Record<string, { readonly seq: number; readonly hash: string; readonly hlc: string }>>
}

export type Frame =
  | SnapshotFrame
  | SnapshotEndFrame
  | HelloFrame
  | AuthFrame
  | VvFrame
  | EventsFrame
  | AckFrame
  | PingFrame
  | PongFrame
  | ErrorFrame
  | ProbeFrame
  | ReportFrame

export const FrameType = {
  hello: 'hello',
  auth: 'auth',
  vv: 'vv',
  events: 'events',
  ack: 'ack',
  ping: 'ping',
  pong: 'pong',
  error: 'error',
  probe: 'probe',
  report: 'report',
  snapshot: 'snapshot',
  snapshotEnd: 'snapshot-end',
} as const
export type FrameType = (typeof FrameType)[keyof typeof FrameType]

// Private instances: no records/structures extension a hostile peer could use to smuggle shapes.
const packr = new Packr({ useRecords: false, moreTypes: false })
const unpackr = new Unpackr({ useRecords: false, moreTypes: false, mapsAsObjects: true })

/** The msgpack array of one event on the wire (same field order as core's encodeEvent). */
export function eventToWire(e: DruEvent): unknown[] {
  const f: unknown[] = [e.origin, e.seq, e.hlc, e.docId, e.change, e.prev, e.hash]
  if (e.sig !== undefined) f.push(e.sig)
  return f
}

function vvToWire(vv: VersionVector): unknown[] {
  return Object.keys(vv)
    .sort()
    .map((o) => [o, vv[o]])
}

/** Encodes a frame to bytes. */
export function encodeFrame(frame: Frame): Uint8Array {
  switch (frame.type) {
    case 'hello':
      return packr.pack(['hello', frame.protocol, frame.druId, frame.origin, frame.nonce])
    case 'auth':
      return packr.pack(['auth', frame.hmac])
    case 'vv':
      return packr.pack(['vv', fingerprintToWire(frame.fingerprint)])
    case 'events':
      return packr.pack(['events', frame.batch.map(eventToWire)])
    case 'ack':
      return packr.pack(['ack', vvToWire(frame.vv)])
    case 'ping':
    case 'pong':
      return packr.pack([frame.type, frame.n])
    case 'error':
      return packr.pack(['error', frame.code, frame.message.slice(0, MAX_ERROR_MESSAGE)])
    case 'probe':
      return packr.pack(['probe', frame.id, frame.deep])
    case 'report':
      return packr.pack(['report', frame.id, fingerprintToWire(frame.fingerprint), frame.stateDigest, frame.documents])
    case 'snapshot':
      return packr.pack(['snapshot', frame.docs.map((d) => [d.docId, d.bytes])])
    case 'snapshot-end':
      return packr.pack([
        'snapshot-end',
        Object.keys(frame.base)
          .sort()
          .map((o) => [o, frame.base[o]!.seq, frame.base[o]!.hash, frame.base[o]!.hlc]),
      ])
  }
}

function fingerprintToWire(fp: Fingerprint): unknown[] {
  return Object.keys(fp.vv)
    .sort()
    .map((o) => [o, fp.vv[o], fp.heads[o]])
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
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_SEQ) invalid(`${what} must be an integer in ${min}..${MAX_SEQ}`)
  return v as number
}

function expectList(v: unknown, max: number, what: string): unknown[] {
  if (!Array.isArray(v)) invalid(`${what} must be an array`)
  if ((v as unknown[]).length > max) invalid(`${what} lists more than ${max} entries`)
  return v as unknown[]
}

function expectId(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) invalid(`${what} must be an integer in 0..2^32-1`)
  return v as number
}

const HEX64 = /^[0-9a-f]{64}$/
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

function readFingerprint(v: unknown): Fingerprint {
  const vv: Record<string, number> = Object.create(null)
  const heads: Record<string, string> = Object.create(null)
  for (const [i, entry] of expectList(v, MAX_ORIGINS, 'vv.fingerprint').entries()) {
    if (!Array.isArray(entry) || entry.length !== 3) invalid(`vv.fingerprint[${i}] must be [origin, seq, head]`)
    const [origin, seq, head] = entry as unknown[]
    if (!isOrigin(origin)) invalid(`vv.fingerprint[${i}] origin is malformed`)
    if (Object.hasOwn(vv, origin as string)) invalid(`vv.fingerprint repeats origin ${origin as string}`)
    vv[origin as string] = expectSeq(seq, `vv.fingerprint[${i}] seq`, 1)
    if (typeof head !== 'string' || !HEX64.test(head)) invalid(`vv.fingerprint[${i}] head must be 64 lowercase hex characters`)
    heads[origin as string] = head as string
  }
  return { vv: { ...vv }, heads: { ...heads } }
}

function readEvent(v: unknown, i: number): DruEvent {
  if (!Array.isArray(v) || (v.length !== 7 && v.length !== 8)) invalid(`events.batch[${i}] must be a 7- or 8-field array`)
  const a = v as unknown[]
  const e: Record<string, unknown> = { origin: a[0], seq: a[1], hlc: a[2], docId: a[3], change: a[4], prev: a[5], hash: a[6] }
  if (a.length === 8) {
    if (!(a[7] instanceof Uint8Array) || a[7].byteLength !== 64) invalid(`events.batch[${i}].sig must be a 64-byte Ed25519 signature`)
    e.sig = a[7]
  }
  try {
    return validateEvent(e, `events.batch[${i}]`)
  } catch (err) {
    throw new DruError('INVALID_FRAME', (err as Error).message, { cause: err })
  }
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
  let v: unknown
  try {
    v = unpackr.unpack(bytes)
  } catch (cause) {
    throw new DruError('MALFORMED', `frame does not decode as msgpack: ${String((cause as Error)?.message ?? cause).slice(0, 200)}`, { cause })
  }
  try {
    return readFrame(v)
  } catch (err) {
    if (err instanceof DruError) throw err
    // A schema check must never crash the socket handler, whatever the value looks like.
    throw new DruError('INVALID_FRAME', `frame failed validation: ${String((err as Error)?.message ?? err).slice(0, 200)}`, { cause: err })
  }
}

function readFrame(v: unknown): Frame {
  if (!Array.isArray(v) || v.length === 0) return invalid('a frame must be a non-empty array')
  const type = v[0]
  switch (type) {
    case 'hello': {
      expectLength(v, 5, 'hello')
      const [, protocol, druId, origin, nonce] = v
      if (typeof protocol !== 'number' || !Number.isInteger(protocol) || protocol < 0 || protocol > 0xffff) invalid('hello.protocol must be an integer in 0..65535')
      if (typeof druId !== 'string' || !DRU_ID.test(druId)) invalid('hello.druId is malformed')
      if (!isOrigin(origin)) invalid('hello.origin is malformed')
      return { type, protocol, druId, origin, nonce: expectBytes(nonce, NONCE_BYTES, 'hello.nonce') } as HelloFrame
    }
    case 'auth':
      expectLength(v, 2, 'auth')
      return { type, hmac: expectBytes(v[1], HMAC_BYTES, 'auth.hmac') }
    case 'vv':
      expectLength(v, 2, 'vv')
      return { type, fingerprint: readFingerprint(v[1]) }
    case 'events': {
      expectLength(v, 2, 'events')
      const raw = expectList(v[1], 1_000_000, 'events.batch')
      if (raw.length === 0) invalid('events.batch must not be empty')
      return { type, batch: raw.map(readEvent) }
    }
    case 'ack':
      expectLength(v, 2, 'ack')
      return { type, vv: readVv(v[1], 'ack.vv') }
    case 'ping':
    case 'pong':
      expectLength(v, 2, type)
      if (typeof v[1] !== 'number' || !Number.isInteger(v[1]) || v[1] < 0 || v[1] > 0xffffffff) invalid(`${type}.n must be an integer in 0..2^32-1`)
      return { type, n: v[1] as number }
    case 'error': {
      expectLength(v, 3, 'error')
      const [, code, message] = v
      if (typeof code !== 'string' || !ERROR_CODE.test(code)) invalid('error.code must be an upper-case code')
      if (typeof message !== 'string' || message.length > MAX_ERROR_MESSAGE) invalid(`error.message must be a string of at most ${MAX_ERROR_MESSAGE} characters`)
      return { type, code, message } as ErrorFrame
    }
    case 'probe': {
      expectLength(v, 3, 'probe')
      if (typeof v[2] !== 'boolean') invalid('probe.deep must be a boolean')
      return { type, id: expectId(v[1], 'probe.id'), deep: v[2] as boolean }
    }
    case 'report': {
      expectLength(v, 5, 'report')
      const [, id, fp, digest, documents] = v
      if (digest !== null && (typeof digest !== 'string' || !HEX64.test(digest))) invalid('report.stateDigest must be null or 64 lowercase hex characters')
      if (documents !== null && (typeof documents !== 'number' || !Number.isInteger(documents) || documents < 0 || documents > MAX_SEQ)) {
        invalid('report.documents must be null or a non-negative integer')
      }
      return { type, id: expectId(id, 'report.id'), fingerprint: readFingerprint(fp), stateDigest: digest as string | null, documents: documents as number | null }
    }
    case 'snapshot': {
      expectLength(v, 2, 'snapshot')
      const raw = expectList(v[1], MAX_SNAPSHOT_DOCS, 'snapshot.docs')
      if (raw.length === 0) invalid('snapshot.docs must not be empty')
      const docs = raw.map((entry, i) => {
        if (!Array.isArray(entry) || entry.length !== 2) invalid(`snapshot.docs[${i}] must be [docId, bytes]`)
        const [docId, bytes] = entry as unknown[]
        try {
          parseDocId(docId)
        } catch {
          invalid(`snapshot.docs[${i}].docId is malformed`)
        }
        if (!(bytes instanceof Uint8Array) || bytes.byteLength === 0) invalid(`snapshot.docs[${i}].bytes must be non-empty bytes`)
        return { docId: docId as string, bytes: bytes as Uint8Array }
      })
      return { type, docs }
    }
    case 'snapshot-end': {
      expectLength(v, 2, 'snapshot-end')
      const base: Record<string, { seq: number; hash: string; hlc: string }> = Object.create(null)
      for (const [i, entry] of expectList(v[1], MAX_ORIGINS, 'snapshot-end.base').entries()) {
        if (!Array.isArray(entry) || entry.length !== 4) invalid(`snapshot-end.base[${i}] must be [origin, seq, hash, hlc]`)
        const [origin, seq, hash, hlc] = entry as unknown[]
        if (!isOrigin(origin)) invalid(`snapshot-end.base[${i}] origin is malformed`)
        if (Object.hasOwn(base, origin as string)) invalid(`snapshot-end.base repeats origin ${origin as string}`)
        if (typeof hash !== 'string' || !HEX64.test(hash)) invalid(`snapshot-end.base[${i}] hash must be 64 lowercase hex characters`)
        try {
          decodeHlc(hlc)
        } catch {
          invalid(`snapshot-end.base[${i}] hlc is malformed`)
        }
        base[origin as string] = { seq: expectSeq(seq, `snapshot-end.base[${i}] seq`, 1), hash: hash as string, hlc: hlc as string }
      }
      return { type, base: { ...base } }
    }
    default:
      return invalid(`unknown frame type ${JSON.stringify(String(type)).slice(0, 40)}`)
  }
}
