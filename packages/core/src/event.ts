import { pack, unpack } from './codec.js'
import { DruError } from './errors.js'
import { canonicalBytesFast } from './event-bytes.js'
import { sha256Hex } from './sha256.js'
import { decodeHlc, isHlcText } from './hlc.js'
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

/** sha256 hex of the canonical bytes. */
export function hashEvent(e: UnhashedEvent): string {
  return hashOfFields(e.origin, e.seq, e.hlc, e.docId, e.change, e.prev)
}

/** {@link hashEvent} from the fields, hashed straight from the scratch space (no copy, no object). */
function hashOfFields(
  origin: Origin,
  seq: number,
  hlc: string,
  docId: string,
  change: Uint8Array,
  prev: string,
): string {
  const fast = canonicalBytesFast(ENVELOPE_VERSION, origin, seq, hlc, docId, change, prev)
  return sha256Hex(fast ?? packCanonical({ origin, seq, hlc, docId, change, prev }))
}

/** Completes an event by computing its hash. */
export function sealEvent(e: UnhashedEvent): DruEvent {
  return { ...e, hash: hashEvent(e) }
}

/**
 * {@link sealEvent} from the fields themselves, for the local write path, which seals every
 * appended change: building an input object and then its spread copy cost that path about as
 * much as the hash itself (1.5–2 µs an event, `benchmarks/log-append.mjs`'s shape).
 */
export function sealEventFields(
  origin: Origin,
  seq: number,
  hlc: string,
  docId: string,
  change: Uint8Array,
  prev: string,
): DruEvent {
  return { origin, seq, hlc, docId, change, prev, hash: hashOfFields(origin, seq, hlc, docId, change, prev) }
}

/** True when the stated hash matches the contents. */
export function eventHashMatches(e: DruEvent): boolean {
  return hashEvent(e) === e.hash
}

/**
 * An event whose hash this process computed from its contents while building it (the wire
 * codec builds every event it reads so), so that ingest need not hash it a second time.
 * The mark is a private field set only by this constructor, which computes the hash itself:
 * a copy (`{ ...e }`), an object made with this prototype, or any other event lacks it and is
 * checked. (A class brand instead of a WeakSet of marked events: adding each event to a
 * WeakSet cost about half as much as hashing it, and kept every event in an ephemeron table
 * until the next collection.) Fields are readonly and nothing writes them; `sig`, like on a
 * plain event, is present only when given.
 */
class HashedEvent implements DruEvent {
  readonly #hashedHere = true
  readonly origin: Origin
  readonly seq: number
  readonly hlc: string
  readonly docId: string
  readonly change: Uint8Array
  readonly prev: string
  readonly hash: string
  declare readonly sig?: Uint8Array

  constructor(
    origin: Origin,
    seq: number,
    hlc: string,
    docId: string,
    change: Uint8Array,
    prev: string,
    sig?: Uint8Array,
  ) {
    this.origin = origin
    this.seq = seq
    this.hlc = hlc
    this.docId = docId
    this.change = change
    this.prev = prev
    this.hash = hashEvent(this)
    if (sig !== undefined) (this as { sig?: Uint8Array }).sig = sig
  }

  static isHashedHere(e: object): boolean {
    return #hashedHere in e
  }
}

/**
 * Builds an event from its fields, computing its hash; ingest takes that hash as verified
 * (see {@link eventHashVerified}). For decoders that build events from received contents.
 */
export function hashedEvent(fields: UnhashedEvent, sig?: Uint8Array): DruEvent {
  return new HashedEvent(fields.origin, fields.seq, fields.hlc, fields.docId, fields.change, fields.prev, sig)
}

/** Whether `e` was built by {@link hashedEvent} (for tests of the codec). */
export function isHashComputed(e: DruEvent): boolean {
  return HashedEvent.isHashedHere(e)
}

/** True when the stated hash matches the contents: known because {@link hashedEvent} computed it, or computed now. */
export function eventHashVerified(e: DruEvent): boolean {
  return HashedEvent.isHashedHere(e) || eventHashMatches(e)
}

/**
 * Checks an event's shape (types, ranges, lengths) without trusting anything in it.
 * Throws INVALID_EVENT naming the bad field; returns the value typed on success.
 */
export function validateEvent(value: unknown, where = 'event'): DruEvent {
  return checkShape(value, where, -1)
}

/**
 * {@link validateEvent} on each of `values`, an error naming the event by its index
 * (`batch[7].seq …`). The label is built only when an event fails: every received batch
 * passes here. Each distinct origin and document id is parsed once per batch, and a `prev`
 * that is the previous event's checked hash is not scanned again (see {@link CheckedValues}).
 */
export function validateBatch(values: readonly unknown[], name = 'batch'): DruEvent[] {
  const out = new Array<DruEvent>(values.length)
  const checked = new CheckedValues()
  for (let i = 0; i < values.length; i++) out[i] = checkShape(values[i], name, i, checked)
  return out
}

/**
 * Strings of one batch that already passed a check. The checks are pure functions of the
 * string, and only a string that passed is ever remembered, so a value equal to one here
 * passes too and a value of any other type or content is checked in full. A batch names a
 * few origins many times over (parsing one is a regex match), usually the same one as the
 * event before, and each event's `prev` is usually the hash of the event before it. A
 * document id is remembered only as the last one: its check costs about a tenth of adding
 * it to a set, and a batch spread over many documents would add nearly every event's.
 */
class CheckedValues {
  readonly origins = new Set<string>()
  /** The last event's origin once it passed (an equal string is found without a set lookup). */
  lastOrigin: string | undefined
  lastDocId: string | undefined
  /** The last event's hash once it passed isHex64 (the genesis hash, which passes, before). */
  lastHash = GENESIS_HASH
}

/** The checks of {@link validateEvent}; `index` >= 0 labels the value `${where}[${index}]`. */
function checkShape(value: unknown, where: string, index: number, checked?: CheckedValues): DruEvent {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new DruError('INVALID_EVENT', `${label(where, index)} is not an object`)
  }
  const e = value as Record<string, unknown>
  if (checked === undefined || (e.origin !== checked.lastOrigin && !checked.origins.has(e.origin as string))) {
    try {
      parseOrigin(e.origin)
    } catch (err) {
      badField(where, index, 'origin', reason(err, 'origin '))
    }
    checked?.origins.add(e.origin as string)
  }
  if (checked !== undefined) checked.lastOrigin = e.origin as string
  if (typeof e.seq !== 'number' || !Number.isInteger(e.seq) || e.seq < 1 || e.seq > MAX_SEQ)
    badField(where, index, 'seq', 'must be a positive integer')
  // isHlcText builds nothing; decodeHlc, which reads exactly the same texts, words the refusal.
  if (!isHlcText(e.hlc)) {
    try {
      decodeHlc(e.hlc)
    } catch (err) {
      badField(where, index, 'hlc', reason(err, 'hlc '))
    }
  }
  if (checked === undefined || e.docId !== checked.lastDocId) {
    if (!isDocId(e.docId)) badField(where, index, 'docId', 'must be a non-empty string of at most 256 characters')
    if (checked !== undefined) checked.lastDocId = e.docId
  }
  if (!(e.change instanceof Uint8Array)) badField(where, index, 'change', 'must be bytes')
  if ((e.change as Uint8Array).byteLength > MAX_CHANGE_BYTES)
    badField(where, index, 'change', `exceeds ${MAX_CHANGE_BYTES} bytes`)
  // Equal to lastHash, a string that passed isHex64, prev passes too.
  if ((checked === undefined || e.prev !== checked.lastHash) && !isHex64(e.prev))
    badField(where, index, 'prev', 'must be 64 lowercase hex characters')
  // An event hashedEvent built holds the hex digest its constructor computed (the premise
  // eventHashVerified takes it on: nothing writes an event's fields afterwards).
  if (!HashedEvent.isHashedHere(e) && !isHex64(e.hash))
    badField(where, index, 'hash', 'must be 64 lowercase hex characters')
  if (checked !== undefined) checked.lastHash = e.hash as string
  if (e.seq === 1 && e.prev !== GENESIS_HASH) badField(where, index, 'prev', 'of seq 1 must be the genesis hash')
  if (e.sig !== undefined && !(e.sig instanceof Uint8Array && e.sig.byteLength <= 128))
    badField(where, index, 'sig', 'must be at most 128 bytes')
  // for-in walks V8's cached key list, where Object.keys allocates an array per event; an
  // inherited key is not the event's own and passes, as with Object.keys.
  for (const key in e)
    if (!isEventField(key) && Object.hasOwn(e, key)) badField(where, index, key, 'is not an event field')
  return value as DruEvent
}

/**
 * The fields an event may have. A switch over the constants compares the interned key
 * strings by reference; a Set lookup per key of every event cost a third of the check.
 */
function isEventField(key: string): boolean {
  switch (key) {
    case 'origin':
    case 'seq':
    case 'hlc':
    case 'docId':
    case 'change':
    case 'prev':
    case 'hash':
    case 'sig':
      return true
    default:
      return false
  }
}

/** A field parser's message without its own leading field name (the label names the field). */
function reason(err: unknown, prefix: string): string {
  const message = (err as Error).message
  return message.startsWith(prefix) ? message.slice(prefix.length) : message
}

function label(where: string, index: number): string {
  return index < 0 ? where : `${where}[${index}]`
}

function badField(where: string, index: number, field: string, why: string): never {
  throw new DruError('INVALID_EVENT', `${label(where, index)}.${field} ${why}`, { details: { field } })
}

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
