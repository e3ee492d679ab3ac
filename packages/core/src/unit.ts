import { DruError } from './errors.js'
import { GENESIS_HASH, hashEvent, type UnhashedEvent } from './event.js'
import { isDocId, isOrigin, type Origin } from './ids.js'
import { MAX_CHANGE_BYTES, MAX_SEQ } from './limits.js'
import { MAX_HLC_COUNTER, MAX_HLC_WALL } from './hlc.js'
import { MAX_UNIT_CHANGE_BYTES, MAX_UNIT_EVENTS, checkEntry, checkHeader, checkUnit, isHlcNode } from './unit-checks.js'
import { sha256Hex, sha256Into } from './sha256.js'
import { Reader, Writer } from './unit-coding.js'

export { MAX_UNIT_CHANGE_BYTES, MAX_UNIT_EVENTS } from './unit-checks.js'

/**
 * The commit-granular record's unit (docs/ARCHITECTURE.md, "Next: the commit-granular
 * record"): an origin's consecutive events sealed together under one hash and one chain
 * link, so that what dru pays per event today (an envelope with origin, seq, HLC text and
 * two hex hashes) is paid once per unit. The origin cuts its units and every DRU keeps and
 * forwards them unchanged, so all hold the same ones.
 *
 * Two hashes, as issue 13 asks ("one hash per commit that still lets a single event be
 * checked"): each entry's own hash covers only what it says (HLC, node, document, change),
 * so an event read alone — a document's events, scattered over many units — is checked
 * against the 32 bytes kept with it; the unit's hash covers its header (tag, `prev`, origin,
 * first seq, count) and the list of its entries' hashes, so it binds every event to its
 * place and the chain. A signature signs unit hashes.
 *
 * A unit's bytes (stored and sent) are canonical: every unit has exactly one encoding and
 * the decoder refuses every other byte string (short varints only, a node equal to the
 * origin always written as "", nothing after the last entry), so two DRUs holding one unit
 * hold the same bytes. Each entry's bytes are exactly what its hash covers, so sealing and
 * checking hash them where they lie.
 *
 *     0x02                      tag (a legacy event's hashed bytes start with 0x97)
 *     prev                      32 bytes: the hash of the origin's previous unit (or event)
 *     origin                    varint length, ASCII
 *     seq                       varint: the first event's seq
 *     count                     varint: 1 to MAX_UNIT_EVENTS
 *     per event:
 *       0x03                    entry tag
 *       wall, counter           varints: the HLC's two numbers
 *       node                    varint length + UTF-8; length 0 = the unit's origin
 *       docId                   varint length + UTF-8
 *       change                  varint length + bytes
 *
 * Step 1 of that design: the form and its hashes, with their laws (test/unit.test.ts).
 * Nothing stores or sends units yet.
 *
 * @module
 */

/**
 * One event of a unit: what its origin wrote. Its origin and seq are the unit's; its HLC is
 * kept as the two numbers and the node (absent: the unit's origin, as every DRU stamps its own
 * events), so neither writing nor reading a unit formats or parses timestamp text.
 */
export interface UnitEntry {
  readonly wall: number
  readonly counter: number
  /** The HLC's node when it is not the unit's origin. */
  readonly node?: string
  readonly docId: string
  readonly change: Uint8Array
}

/** An origin's consecutive events under one hash. */
export interface Unit {
  readonly origin: Origin
  /** The seq of `entries[0]`; entry i has seq `seq + i`. */
  readonly seq: number
  /** Hash of the origin's previous unit (or legacy event), GENESIS_HASH before seq 1. */
  readonly prev: string
  readonly entries: readonly UnitEntry[]
}

/** First byte of what a unit's hash covers and of its bytes; a legacy event's hashed bytes start with 0x97. */
export const UNIT_TAG = 0x02
/** First byte of what an entry's hash covers. */
export const ENTRY_TAG = 0x03

const unitWriter = new Writer(128 << 10)
const hashWriter = new Writer(4 << 10)

/** A unit's stored and sent form. INVALID_EVENT when a field cannot be in a unit. */
export function encodeUnit(u: Unit): Uint8Array {
  checkUnit(u)
  writeUnit(unitWriter.reset(), u)
  return unitWriter.copy()
}

/** Reads {@link encodeUnit}'s bytes; MALFORMED (naming the byte offset) for anything else. */
export function decodeUnit(bytes: Uint8Array): Unit {
  return readUnit(bytes).unit
}

/**
 * Reads a unit's bytes and computes its hashes from them, as a receiver or a reader of the
 * log checks it: each entry's hash over its own bytes as they came, then the unit's.
 */
export function openUnit(bytes: Uint8Array): SealedUnit {
  const { unit, starts } = readUnit(bytes)
  const hashes = hashEntries(bytes, starts)
  return {
    ...unit,
    bytes,
    entryStarts: starts,
    entryHashes: hashes,
    hash: hashUnit(unit.origin, unit.seq, unit.prev, hashes),
  }
}

/** Writes a unit's bytes; returns where each entry's bytes start, and last where they end. */
function writeUnit(w: Writer, u: Unit): number[] {
  w.byte(UNIT_TAG)
  w.hex32(u.prev)
  w.text(u.origin)
  w.uint(u.seq)
  w.uint(u.entries.length)
  const starts = new Array<number>(u.entries.length + 1)
  for (let i = 0; i < u.entries.length; i++) {
    starts[i] = w.length
    writeEntry(w, u.origin, u.entries[i]!)
  }
  starts[u.entries.length] = w.length
  return starts
}

/** An entry's bytes: what its hash covers, written the same inside a unit and alone. */
function writeEntry(w: Writer, origin: Origin, e: UnitEntry): void {
  w.byte(ENTRY_TAG)
  w.uint(e.wall)
  w.uint(e.counter)
  w.text(nodeText(origin, e))
  w.text(e.docId)
  w.bytes(e.change)
}

/**
 * Reads one entry's bytes as kept alone (an event's row): MALFORMED for anything but what
 * {@link entryHash} covers. `origin` is its unit's, which an entry's node of "" stands for.
 */
export function decodeEntry(origin: Origin, bytes: Uint8Array): UnitEntry {
  const r = new Reader(bytes)
  const e = readEntry(r, origin, 0, undefined)
  r.end()
  return e
}

/** Entry `i` at the reader's position; `lastDoc` is the entry before's document (checked already), if any. */
function readEntry(r: Reader, origin: Origin, i: number, lastDoc: string | undefined): UnitEntry {
  if (r.byte() !== ENTRY_TAG) r.fail(`entry ${i} does not start with the entry tag`)
  const wall = r.uint()
  const counter = r.uint()
  const node = r.text(96)
  if (node === origin) r.fail(`entry ${i} writes its origin as node instead of ""`)
  const docId = r.text(256)
  const change = r.bytes(MAX_CHANGE_BYTES)
  if (wall > MAX_HLC_WALL || counter > MAX_HLC_COUNTER) r.fail(`entry ${i} HLC is out of range`)
  if (node !== '' && !isHlcNode(node)) r.fail(`entry ${i} HLC node is not a node`)
  // A unit's events mostly repeat the document before: each is checked once in a row.
  if (docId !== lastDoc && !isDocId(docId)) r.fail(`entry ${i} document is not a document id`)
  return node === '' ? { wall, counter, docId, change } : { wall, counter, node, docId, change }
}

function readUnit(bytes: Uint8Array): { unit: Unit; starts: number[] } {
  const r = new Reader(bytes)
  if (r.byte() !== UNIT_TAG) r.fail('does not start with the unit tag')
  const prev = r.hex32()
  const origin = r.text(96)
  if (!isOrigin(origin)) r.fail('origin is not an origin')
  const seq = r.uint()
  if (seq < 1) r.fail('seq must be at least 1')
  if (seq === 1 && prev !== GENESIS_HASH) r.fail('prev of seq 1 must be the genesis hash')
  const count = r.uint()
  if (count < 1 || count > MAX_UNIT_EVENTS) r.fail(`count must be 1 to ${MAX_UNIT_EVENTS}`)
  if (count - 1 > MAX_SEQ - seq) r.fail('seq passes the largest seq')
  const entries = new Array<UnitEntry>(count)
  const starts = new Array<number>(count + 1)
  let lastDoc: string | undefined
  let changeBytes = 0
  for (let i = 0; i < count; i++) {
    starts[i] = r.position
    const e = readEntry(r, origin as Origin, i, lastDoc)
    changeBytes += e.change.byteLength
    lastDoc = e.docId
    entries[i] = e
  }
  starts[count] = r.position
  if (count > 1 && changeBytes > MAX_UNIT_CHANGE_BYTES) r.fail(`holds more than ${MAX_UNIT_CHANGE_BYTES} change bytes`)
  r.end()
  return { unit: { origin: origin as Origin, seq, prev, entries }, starts }
}

/** The hashes of the entries whose bytes lie between consecutive `starts`, 32 bytes each. */
function hashEntries(bytes: Uint8Array, starts: readonly number[]): Uint8Array {
  const out = new Uint8Array(32 * (starts.length - 1))
  for (let i = 0; i + 1 < starts.length; i++) sha256Into(bytes.subarray(starts[i], starts[i + 1]), out, 32 * i)
  return out
}

/**
 * An entry's hash (32 bytes): sha256 of its bytes — tag, HLC, node ('' for the unit's
 * origin), document and change — and nothing of where it stands, so one event read alone is
 * checked against the hash stored with it, while the unit's hash, over every entry's hash,
 * binds its origin, seq and chain. Inside a unit the same bytes are hashed where they lie.
 * INVALID_EVENT when the entry cannot be in a unit.
 */
export function entryHash(origin: Origin, e: UnitEntry): Uint8Array {
  // Checked as in a unit: the writer takes safe integers and well-formed text only.
  const bad = (why: string): never => {
    throw new DruError('INVALID_EVENT', `entry of ${origin}: ${why}`)
  }
  if (!isOrigin(origin)) bad('origin is not an origin')
  checkEntry(e, 0, undefined, bad)
  const w = hashWriter.reset()
  writeEntry(w, origin, e)
  const out = new Uint8Array(32)
  sha256Into(w.view(), out, 0)
  return out
}

/** Every entry's hash, 32 bytes each, in order. INVALID_EVENT when a field cannot be in a unit. */
export function entryHashes(u: Unit): Uint8Array {
  checkUnit(u)
  const starts = writeUnit(unitWriter.reset(), u)
  return hashEntries(unitWriter.view(), starts)
}

/**
 * A unit's hash from its header and its entries' hashes (32 bytes each, in order): sha256 of
 * the tag, `prev`, origin, seq, count and those hashes. With the list, one event is proved
 * part of a unit without the others' content. INVALID_EVENT when they cannot be a unit's.
 */
export function unitHashOf(origin: Origin, seq: number, prev: string, hashes: Uint8Array): string {
  // Checked as a unit's header: the writer takes safe integers and lowercase hex only.
  const bad = (why: string): never => {
    throw new DruError('INVALID_EVENT', `unit ${origin}#${seq}: ${why}`)
  }
  if (!(hashes instanceof Uint8Array) || hashes.byteLength % 32 !== 0) bad('entry hashes must be 32 bytes each')
  checkHeader(origin, seq, prev, hashes.byteLength / 32, bad)
  return hashUnit(origin, seq, prev, hashes)
}

/** {@link unitHashOf} of a header and list checked already (decoded or written). */
function hashUnit(origin: Origin, seq: number, prev: string, hashes: Uint8Array): string {
  const w = hashWriter.reset()
  w.byte(UNIT_TAG)
  w.hex32(prev)
  w.text(origin)
  w.uint(seq)
  w.uint(hashes.byteLength / 32)
  w.raw(hashes)
  return sha256Hex(w.view())
}

/** A unit's hash (hex). INVALID_EVENT when a field cannot be in a unit. */
export function unitHash(u: Unit): string {
  return hashUnit(u.origin, u.seq, u.prev, entryHashes(u))
}

/**
 * A legacy unit: one event written before units, whose identity stays its event hash (so the
 * signatures over it stay valid). An origin's first unit chains from its last legacy event.
 */
export function legacyUnitHash(e: UnhashedEvent): string {
  return hashEvent(e)
}

/**
 * Cuts an origin's consecutive events into units as its writer does: a unit ends after
 * MAX_UNIT_EVENTS events, or before the event that would take it past MAX_UNIT_CHANGE_BYTES
 * (an event larger than that is a unit alone). Returns the number of events in each unit.
 */
export function cutUnits(entries: readonly UnitEntry[]): number[] {
  const sizes: number[] = []
  let count = 0
  let bytes = 0
  for (const e of entries) {
    // Sizes are read before sealing checks an entry: one without a change is refused here.
    if (!(e?.change instanceof Uint8Array)) throw new DruError('INVALID_EVENT', 'an entry to cut has no change bytes')
    const n = e.change.byteLength
    if (count > 0 && (count === MAX_UNIT_EVENTS || bytes + n > MAX_UNIT_CHANGE_BYTES)) {
      sizes.push(count)
      count = 0
      bytes = 0
    }
    count++
    bytes += n
  }
  if (count > 0) sizes.push(count)
  return sizes
}

/** A sealed unit: its content, its bytes, its entries' hashes and its hash. */
export interface SealedUnit extends Unit {
  readonly bytes: Uint8Array
  /**
   * Where each entry's bytes start in {@link bytes}, and last where they end: entry i is
   * `bytes.subarray(entryStarts[i], entryStarts[i + 1])`, exactly what its hash covers.
   */
  readonly entryStarts: readonly number[]
  /** 32 bytes an entry, in order. */
  readonly entryHashes: Uint8Array
  readonly hash: string
}

/**
 * Seals an origin's events from `seq` on, after `prev`, into units cut by {@link cutUnits},
 * each chained to the one before. INVALID_EVENT when an entry cannot be in a unit.
 */
export function sealUnits(origin: Origin, seq: number, prev: string, entries: readonly UnitEntry[]): SealedUnit[] {
  const out: SealedUnit[] = []
  let at = 0
  for (const size of cutUnits(entries)) {
    const unit: Unit = { origin, seq: seq + at, prev, entries: entries.slice(at, at + size) }
    checkUnit(unit)
    // Written once: the entries are hashed where they lie, then the bytes copied out.
    const starts = writeUnit(unitWriter.reset(), unit)
    const hashes = hashEntries(unitWriter.view(), starts)
    const hash = hashUnit(origin, unit.seq, prev, hashes)
    out.push({ ...unit, bytes: unitWriter.copy(), entryStarts: starts, entryHashes: hashes, hash })
    prev = hash
    at += size
  }
  return out
}

/**
 * Checks one origin's consecutive units as received: each follows the previous one's last
 * seq and links to its hash, starting after `prevHash`, all of the first unit's origin.
 * Returns the last unit's hash.
 * SEQ_GAP or CHAIN_BROKEN naming the unit's first event.
 */
export function verifyUnitChain(units: ReadonlyArray<{ unit: Unit; hash: string }>, prevHash: string): string {
  let expected = prevHash
  let nextSeq = units[0]?.unit.seq
  for (const { unit, hash } of units) {
    const details = { origin: unit.origin, seq: unit.seq }
    if (unit.seq !== nextSeq)
      throw new DruError('SEQ_GAP', `${unit.origin} seq ${unit.seq} follows seq ${nextSeq! - 1}`, { details })
    // Another origin's unit may name this one's last hash as its prev: it is not on this chain.
    if (unit.prev !== expected || unit.origin !== units[0]!.unit.origin)
      throw new DruError('CHAIN_BROKEN', `${unit.origin}#${unit.seq} does not link to the previous unit's hash`, {
        details,
      })
    expected = hash
    nextSeq = unit.seq + unit.entries.length
  }
  return expected
}

/** The node as a unit writes it: '' when it is the unit's origin. */
function nodeText(origin: Origin, e: UnitEntry): string {
  return e.node === undefined || e.node === origin ? '' : e.node
}
