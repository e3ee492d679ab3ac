import * as crypto from 'node:crypto'
import { pack, unpack } from './codec.js'
import { DruError } from './errors.js'
import { canonicalBytesFast } from './event-bytes.js'
import { decodeHlc } from './hlc.js'
import { isDocId, parseOrigin, type Origin } from './ids.js'
import { MAX_CHANGE_BYTES, MAX_SEQ } from './limits.js'

/**
 * One entry of the replicated log: an Automerge change to one document, stamped with
 * its writer (`origin`), its place in that writer's gap-free sequence (`seq`), a hybrid
 * logical timestamp, and a hash chain link (`prev`). `hash` covers every other field
 * except `sig`, which signs a hash and so cannot be part of it.
 */
export interface DruEvent {
  readonly origin: Origin
  readonly seq: number
  /** Encoded HLC (see encodeHlc): sortable text. */
  readonly hlc: string
  readonly docId: string
  readonly change: Uint8Array
  /** Hash of the same origin's event `seq - 1`, or GENESIS_HASH for seq 1. */
  readonly prev: string
  /** sha256 (hex) of the canonical bytes of all fields above. */
  readonly hash: string
  /** Optional signature by the origin over this event's hash (a commit boundary). */
  readonly sig?: Uint8Array | undefined
}

/** The fields an event's hash is computed over. */
export type UnhashedEvent = Omit<DruEvent, 'hash' | 'sig'>

/** `prev` of every origin's first event. */
export const GENESIS_HASH = '0'.repeat(64)

/** Version tag inside the hashed bytes, so a future envelope can never collide with this one. */
const ENVELOPE_VERSION = 1
/** 1 at the char codes of 0-9 and a-f. A table lookup per character costs about two thirds of a regex test. */
const LOWER_HEX = new Uint8Array(128)
for (const c of '0123456789abcdef') LOWER_HEX[c.charCodeAt(0)] = 1

/** 64 lowercase hex characters (every event received has two). */
export function isHex64(value: unknown): boolean {
  if (typeof value !== 'string' || value.length !== 64) return false
  for (let i = 0; i < 64; i++) {
    const c = value.charCodeAt(i)
    if (c >= 128 || LOWER_HEX[c] === 0) return false
  }
  return true
}

/** The canonical bytes an event's hash covers (a fixed-order msgpack array). */
export function canonicalEventBytes(e: UnhashedEvent): Uint8Array {
  const fast = canonicalBytesFast(ENVELOPE_VERSION, e.origin, e.seq, e.hlc, e.docId, e.change, e.prev)
  // The fast path writes into scratch space: a copy for callers that keep the bytes.
  return fast ? fast.slice() : packCanonical(e)
}

/** The msgpackr encoding the fast path must equal (and falls back to outside its common case). */
export function packCanonical(e: UnhashedEvent): Uint8Array {
  return pack([ENVELOPE_VERSION, e.origin, e.seq, e.hlc, e.docId, e.change, e.prev])
}

// One-shot crypto.hash (Node >= 20.12) is about twice as fast as createHash for small inputs.
const sha256Hex: (data: Uint8Array) => string =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? (data) => crypto.hash('sha256', data, 'hex')
    : (data) => crypto.createHash('sha256').update(data).digest('hex')

/** sha256 hex of the canonical bytes. */
export function hashEvent(e: UnhashedEvent): string {
  // Hashed straight from the scratch space: no copy.
  const fast = canonicalBytesFast(ENVELOPE_VERSION, e.origin, e.seq, e.hlc, e.docId, e.change, e.prev)
  return sha256Hex(fast ?? packCanonical(e))
}

/** Completes an event by computing its hash. */
export function sealEvent(e: UnhashedEvent): DruEvent {
  return { ...e, hash: hashEvent(e) }
}

/** True when the stated hash matches the contents. */
export function eventHashMatches(e: DruEvent): boolean {
  return hashEvent(e) === e.hash
}

/**
 * Events whose hash this process computed from their contents while building them (the wire
 * codec does, for every event it reads), so that ingest need not hash them a second time.
 * Held by identity: a copy (`{ ...e }`) or any other event is not in it and is checked.
 */
const hashedFromContents = new WeakSet<DruEvent>()

/**
 * Records that `e.hash` was just computed from `e`'s contents. Only for events built from
 * their contents and {@link hashEvent}; an event's fields are readonly and nothing writes
 * them. (Freezing the event as well made the chaos suite's seed 10 fail at its stale
 * restore, cause not yet located; see the branch report.)
 */
export function markHashComputed(e: DruEvent): DruEvent {
  hashedFromContents.add(e)
  return e
}

/** Whether {@link markHashComputed} recorded `e` (for tests of the codec). */
export function isHashComputed(e: DruEvent): boolean {
  return hashedFromContents.has(e)
}

/** True when the stated hash matches the contents: known from {@link markHashComputed}, or computed now. */
export function eventHashVerified(e: DruEvent): boolean {
  return hashedFromContents.has(e) || eventHashMatches(e)
}

/**
 * Checks an event's shape (types, ranges, lengths) without trusting anything in it.
 * Throws INVALID_EVENT naming the bad field; returns the value typed on success.
 */
export function validateEvent(value: unknown, where = 'event'): DruEvent {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new DruError('INVALID_EVENT', `${where} is not an object`)
  }
  const e = value as Record<string, unknown>
  parseOrigin(e.origin)
  if (typeof e.seq !== 'number' || !Number.isInteger(e.seq) || e.seq < 1 || e.seq > MAX_SEQ)
    badField(where, 'seq', 'must be a positive integer')
  decodeHlc(e.hlc)
  if (!isDocId(e.docId)) badField(where, 'docId', 'must be a non-empty string of at most 256 characters')
  if (!(e.change instanceof Uint8Array)) badField(where, 'change', 'must be bytes')
  if ((e.change as Uint8Array).byteLength > MAX_CHANGE_BYTES)
    badField(where, 'change', `exceeds ${MAX_CHANGE_BYTES} bytes`)
  if (!isHex64(e.prev)) badField(where, 'prev', 'must be 64 lowercase hex characters')
  if (!isHex64(e.hash)) badField(where, 'hash', 'must be 64 lowercase hex characters')
  if (e.seq === 1 && e.prev !== GENESIS_HASH) badField(where, 'prev', 'of seq 1 must be the genesis hash')
  if (e.sig !== undefined && !(e.sig instanceof Uint8Array && e.sig.byteLength <= 128))
    badField(where, 'sig', 'must be at most 128 bytes')
  for (const key of Object.keys(e)) if (!EVENT_FIELDS.has(key)) badField(where, key, 'is not an event field')
  return value as DruEvent
}

function badField(where: string, field: string, why: string): never {
  throw new DruError('INVALID_EVENT', `${where}.${field} ${why}`, { details: { field } })
}

const EVENT_FIELDS = new Set(['origin', 'seq', 'hlc', 'docId', 'change', 'prev', 'hash', 'sig'])

/** Wire/storage form: a msgpack array in fixed field order. */
export function encodeEvent(e: DruEvent): Uint8Array {
  const fields: unknown[] = [e.origin, e.seq, e.hlc, e.docId, e.change, e.prev, e.hash]
  if (e.sig !== undefined) fields.push(e.sig)
  return pack(fields)
}

/** Decodes and validates {@link encodeEvent} bytes; MALFORMED or INVALID_EVENT on bad input. */
export function decodeEvent(bytes: Uint8Array): DruEvent {
  const v = unpack(bytes, 'event')
  if (!Array.isArray(v) || (v.length !== 7 && v.length !== 8)) {
    throw new DruError('MALFORMED', 'event is not a 7- or 8-field array')
  }
  const [origin, seq, hlc, docId, change, prev, hash, sig] = v
  const e: Record<string, unknown> = { origin, seq, hlc, docId, change, prev, hash }
  if (v.length === 8) e.sig = sig
  return validateEvent(e)
}

/**
 * Verifies one origin's consecutive events: each hash matches and each `prev` is the
 * previous event's hash, starting from `prevHash` (the hash before `events[0]`).
 * Throws HASH_MISMATCH or CHAIN_BROKEN naming the event. Returns the last hash.
 */
export function verifyChain(events: readonly DruEvent[], prevHash: string): string {
  let expected = prevHash
  let expectedSeq = events[0]?.seq
  for (const e of events) {
    if (e.seq !== expectedSeq) {
      throw new DruError('SEQ_GAP', `${e.origin} seq ${e.seq} follows seq ${expectedSeq! - 1}`, {
        details: { origin: e.origin, seq: e.seq },
      })
    }
    if (!eventHashMatches(e)) {
      throw new DruError('HASH_MISMATCH', `${e.origin}#${e.seq} does not match its hash`, {
        details: { origin: e.origin, seq: e.seq },
      })
    }
    if (e.prev !== expected) {
      throw new DruError('CHAIN_BROKEN', `${e.origin}#${e.seq} does not link to the previous event's hash`, {
        details: { origin: e.origin, seq: e.seq },
      })
    }
    expected = e.hash
    expectedSeq = e.seq + 1
  }
  return expected
}
