import * as A from '@automerge/automerge'
import { sha256Hex } from '@dru/core'
import {
  booleanCount,
  Cursor,
  GIVE_UP,
  INT,
  Kind,
  NotUnderstood,
  NULL,
  NULL_ENTRY,
  readValue,
  RleColumn,
  UINT,
} from './change-columns.js'

/**
 * What ingest's checks read from an Automerge change: who wrote it, where it sits, what it
 * depends on, how many ops it holds and which of them make objects (and inside what).
 */
export interface ChangeHeader {
  readonly actor: string
  readonly seq: number
  readonly startOp: number
  readonly deps: readonly string[]
  readonly hash: string
  readonly opCount: number
  /** Each `make*` op: its index among the change's ops and the object it is made in (`_root` or `counter@actor`). */
  readonly made: ReadonlyArray<{ readonly index: number; readonly obj: string }>
}

/**
 * The header of a change: read directly when {@link readChangeHeader} understands it, else
 * from Automerge's full decode (which throws on a change Automerge refuses). A wrong checksum
 * throws {@link ChangeChecksumError}, unless `ignoreChecksum` (for changes already stored,
 * read as Automerge's decode and apply read them: neither looks at the checksum).
 */
export function changeHeaderOf(change: Uint8Array, { ignoreChecksum = false } = {}): ChangeHeader {
  try {
    return readChangeHeader(change) ?? headerFromDecoded(A.decodeChange(change))
  } catch (err) {
    if (ignoreChecksum && err instanceof ChangeChecksumError) return headerFromDecoded(A.decodeChange(change))
    throw err
  }
}

/** The same header out of Automerge's own decode: the reference {@link readChangeHeader} must agree with. */
export function headerFromDecoded(d: A.DecodedChange): ChangeHeader {
  const made: Array<{ index: number; obj: string }> = []
  d.ops.forEach((op, index) => {
    if (op.action.startsWith('make')) made.push({ index, obj: op.obj })
  })
  return { actor: d.actor, seq: d.seq, startOp: d.startOp, deps: d.deps, hash: d.hash!, opCount: d.ops.length, made }
}

/**
 * A change chunk whose checksum does not match its contents. Automerge's decode does not look
 * at the checksum (it recomputes the hash), so without this a flipped byte under a member's
 * valid signature would pass as a different change.
 */
export class ChangeChecksumError extends Error {
  constructor() {
    super("the change's checksum does not match its contents")
  }
}

const MAGIC = [0x85, 0x6f, 0x4a, 0x83] as const
const CHANGE_CHUNK = 1
/** More ops than this and the reader leaves the change to Automerge (bounds what a bad run length can make it read). */
const MAX_OPS = 1_000_000

/** The op columns of a change, by their specification (column id << 4 | type), in the order they must appear. */
const COL = {
  objActor: 0x01,
  objCtr: 0x02,
  keyActor: 0x11,
  keyCtr: 0x13,
  keyStr: 0x15,
  insert: 0x34,
  action: 0x42,
  valMeta: 0x56,
  valRaw: 0x57,
  predGroup: 0x70,
  predActor: 0x71,
  predCtr: 0x73,
} as const
const SPECS: readonly number[] = Object.values(COL)
/** Each known column's place in {@link SPECS}, by its specification; -1 for any other. */
const SLOT = new Int8Array(0x80).fill(-1)
SPECS.forEach((spec, slot) => (SLOT[spec] = slot))

/**
 * Reads a change's header without Automerge's full decode, or returns undefined when it
 * cannot vouch for the answer (a compressed change, an unknown or deflated column, marks,
 * extra bytes, a bad checksum, any encoding Automerge's own writer does not produce): the
 * caller then asks Automerge. It checks everything Automerge's decode checks (the checksum,
 * every column of every op, the values against their types, actions against their values)
 * and is stricter where it is unsure, so a change it answers for is one Automerge decodes
 * to the same fields. A change chunk whose checksum is wrong throws {@link ChangeChecksumError}.
 */
export function readChangeHeader(change: Uint8Array): ChangeHeader | undefined {
  try {
    return read(change)
  } catch (err) {
    if (err instanceof NotUnderstood || err instanceof RangeError) return undefined
    throw err
  }
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

/** An uncompressed change chunk: magic, checksum, type and a length that ends at its last byte; a cursor at its body. */
function openChunk(change: Uint8Array): Cursor {
  for (let i = 0; i < 4; i++) if (change[i] !== MAGIC[i]) throw GIVE_UP
  if (change[8] !== CHANGE_CHUNK) throw GIVE_UP
  const c = new Cursor(change, 9, change.length)
  const bodyLength = c.uint()
  if (bodyLength !== change.length - c.pos) throw GIVE_UP
  return c
}

/** Where a change sits: its actor, its seq and the counter of its first op. */
export interface ChangePosition {
  readonly actor: string
  readonly seq: number
  readonly startOp: number
}

/**
 * Actor, seq and start op from the front of a change's header, about a microsecond (no
 * checksum, no ops): for code that reads many changes already stored and proves what it
 * relies on itself (conflict-tracker.ts). Undefined for anything {@link openChunk} does not
 * take (a compressed chunk, cut or padded bytes): the caller then asks Automerge.
 */
export function readChangePosition(change: Uint8Array): ChangePosition | undefined {
  try {
    const c = openChunk(change)
    c.skip(32 * c.uint()) // dependency hashes
    const actor = actorId(c)
    return { actor, seq: c.uint(), startOp: c.uint() }
  } catch (err) {
    if (err instanceof NotUnderstood) return undefined
    throw err
  }
}

/**
 * How many ops a change holds, counted in its action column (one entry per op) without the
 * checksum or any other column: a few times cheaper than {@link readChangeHeader}, for a
 * change this process applied already and only needs the end of its op range for
 * (recent-writers.ts). Undefined for anything {@link openChunk} or the column layout does not
 * take (a compressed chunk or column, an unknown column): the caller then reads the header.
 */
export function readChangeOpCount(change: Uint8Array): number | undefined {
  try {
    const actions = actionColumn(change)
    let n = 0
    for (; !actions.exhausted; n++) {
      if (n >= MAX_OPS) throw GIVE_UP
      actions.next()
    }
    return n
  } catch (err) {
    if (err instanceof NotUnderstood || err instanceof RangeError) return undefined
    throw err
  }
}

/**
 * Whether a change makes any object (a map, list, text or table), from its action column
 * alone (no checksum, no other column): `false` lets the depth screen pass a stored change
 * without reading its header, which most changes never need. Undefined for anything the
 * column cannot be read from here (a compressed chunk or column, an unknown column, an action
 * {@link readChangeHeader} leaves to Automerge, such as a mark): the caller reads the header.
 * Only for changes already checked (stored ones): it vouches for the action column only.
 */
export function storedChangeMakesObjects(change: Uint8Array): boolean | undefined {
  try {
    const actions = actionColumn(change)
    for (let n = 0; !actions.exhausted; n++) {
      if (n >= MAX_OPS) throw GIVE_UP
      const action = actions.next()
      if (action === NULL_ENTRY || action > 6) throw GIVE_UP
      if (isMake(action)) return true
    }
    return false
  } catch (err) {
    if (err instanceof NotUnderstood || err instanceof RangeError) return undefined
    throw err
  }
}

/** makeMap, makeList, makeText, makeTable: the actions that make an object. */
function isMake(action: number): boolean {
  return action === 0 || action === 2 || action === 4 || action === 6
}

/** The action column of an uncompressed change (one entry per op), past a header it skips unread. */
function actionColumn(change: Uint8Array): RleColumn {
  const c = openChunk(change)
  c.skip(32 * c.uint()) // dependency hashes
  c.skip(c.uint()) // actor
  c.uint() // seq
  c.uint() // start op
  c.int() // time
  c.skipUtf8(c.uint()) // message
  const otherCount = c.uint()
  for (let i = 0; i < otherCount; i++) c.skip(c.uint())
  return column(change, readColumns(change, c), COL.action, Kind.Uint)
}

function read(change: Uint8Array): ChangeHeader {
  const c = openChunk(change)
  // The hash covers the chunk type, the length and the body; the checksum is its first 4 bytes.
  const hash = sha256Hex(change.subarray(8))
  const checksum = ((change[4]! << 24) | (change[5]! << 16) | (change[6]! << 8) | change[7]!) >>> 0
  if (hexPrefix32(hash) !== checksum) throw new ChangeChecksumError()

  // The dependency hashes and the author's id lie next to each other: one hex string for both.
  const depCount = c.uint()
  const depsAt = c.skip(32 * depCount)
  const actorLength = c.uint()
  if (actorLength === 0) throw GIVE_UP
  const actorAt = c.skip(actorLength)
  // (The actor's length lies between them: one hex string over it costs less than two.)
  const depsAndActor = hex(change.subarray(depsAt, c.pos))
  const deps: string[] = []
  for (let i = 0; i < depCount; i++) deps.push(depsAndActor.slice(64 * i, 64 * i + 64))
  const actors = [depsAndActor.slice(2 * (actorAt - depsAt))]
  const seq = c.uint()
  const startOp = c.uint()
  if (startOp === 0 || startOp > 0xffffffff) throw GIVE_UP
  c.int() // time
  c.skipUtf8(c.uint()) // message
  const otherCount = c.uint()
  for (let i = 0; i < otherCount; i++) actors.push(actorId(c))

  const bounds = readColumns(change, c)

  const actionColumn = column(change, bounds, COL.action, Kind.Uint)
  const objActor = column(change, bounds, COL.objActor, Kind.Uint, true)
  const objCtr = column(change, bounds, COL.objCtr, Kind.Uint, true)
  const keyActor = column(change, bounds, COL.keyActor, Kind.Uint, true)
  const keyCtr = column(change, bounds, COL.keyCtr, Kind.Delta, true)
  const keyStr = column(change, bounds, COL.keyStr, Kind.Str, true)
  const valMeta = column(change, bounds, COL.valMeta, Kind.Uint)
  const valRaw = raw(change, bounds, COL.valRaw)
  const predGroup = column(change, bounds, COL.predGroup, Kind.Uint)
  const predActor = column(change, bounds, COL.predActor, Kind.Uint)
  const predCtr = column(change, bounds, COL.predCtr, Kind.Delta)

  const made: Array<{ index: number; obj: string }> = []
  let n = 0
  for (; !actionColumn.exhausted; n++) {
    if (n >= MAX_OPS) throw GIVE_UP
    const action = actionColumn.next()
    const type = readValue(valMeta.next(), valRaw)
    // Set-like ops carry any value; inc a number; make and delete ops nothing. Marks (7),
    // unknown actions and a null action are left to Automerge.
    if (action === NULL_ENTRY || action > 6) throw GIVE_UP
    if (action === 5 ? type !== INT && type !== UINT : action !== 1 && type !== NULL) throw GIVE_UP
    checkKey(keyActor.next(), keyCtr.next(), keyStr.next(), actors.length)
    const objA = objActor.next()
    const objC = objCtr.next()
    checkObject(objA, objC, actors.length)
    // Only the objects of make ops are named (nesting); building a string per op was most of the reader's time.
    if (isMake(action)) made.push({ index: n, obj: objA === NULL_ENTRY ? '_root' : `${objC}@${actors[objA]!}` })
    const preds = predGroup.next()
    if (preds === NULL_ENTRY) throw GIVE_UP
    for (let i = 0; i < preds; i++) {
      const a = predActor.next()
      if (a === NULL_ENTRY || a >= actors.length || predCtr.next() < 1) throw GIVE_UP
    }
  }
  const allRead =
    objActor.exhausted &&
    objCtr.exhausted &&
    keyActor.exhausted &&
    keyCtr.exhausted &&
    keyStr.exhausted &&
    valMeta.exhausted &&
    predGroup.exhausted &&
    predActor.exhausted &&
    predCtr.exhausted &&
    valRaw.done
  if (!allRead) throw GIVE_UP
  if (booleanCount(raw(change, bounds, COL.insert), n) !== n) throw GIVE_UP
  return { actor: actors[0]!, seq, startOp, deps, hash, opCount: n, made }
}

/**
 * Each known column's [start, end) in the change being read, by slot; -1 when absent. Small
 * integers (a change longer than 2^31 - 1 bytes is left to Automerge), which the columns read
 * faster than doubles.
 */
const BOUNDS = new Int32Array(2 * SPECS.length)
/** The columns' (slot, length) pairs in the order the change lists them. */
const LENGTHS = new Float64Array(2 * SPECS.length)

/**
 * Reads the column list at `c` (which must end the chunk) into {@link BOUNDS}: each known
 * column's [start, end) in the change by slot, -1 when absent. Unknown, deflated or
 * out-of-order columns are Automerge's business (GIVE_UP). The arrays are scratch: reads are
 * synchronous and never re-entered, and a change is read per received event.
 */
function readColumns(change: Uint8Array, c: Cursor): Int32Array {
  if (change.length > 0x7fffffff) throw GIVE_UP // (see BOUNDS)
  const columnCount = c.uint()
  const bounds = BOUNDS.fill(-1)
  let last = -1
  for (let i = 0; i < columnCount; i++) {
    const spec = c.uint()
    // Specs strictly increase and are known: at most SPECS.length of them fill LENGTHS.
    if (spec >= SLOT.length || SLOT[spec] === -1 || spec <= last) throw GIVE_UP
    last = spec
    LENGTHS[2 * i] = SLOT[spec]!
    LENGTHS[2 * i + 1] = c.uint()
  }
  for (let i = 0; i < 2 * columnCount; i += 2) {
    bounds[2 * LENGTHS[i]!] = c.skip(LENGTHS[i + 1]!)
    bounds[2 * LENGTHS[i]! + 1] = c.pos
  }
  if (!c.done) throw GIVE_UP // extra bytes
  return bounds
}

/** A known op column of the change; Automerge's writer leaves out an object or key column that holds only nulls, any other absent column reads as empty. */
function column(change: Uint8Array, bounds: Int32Array, spec: number, kind: Kind, nullable = false): RleColumn {
  const slot = SLOT[spec]!
  const at = bounds[2 * slot]!
  return at < 0 ? new RleColumn(change, 0, 0, kind, nullable) : new RleColumn(change, at, bounds[2 * slot + 1]!, kind)
}

/** A known raw column of the change (empty when absent). */
function raw(change: Uint8Array, bounds: Int32Array, spec: number): Cursor {
  const at = bounds[2 * SLOT[spec]!]!
  return at < 0 ? new Cursor(change, 0, 0) : new Cursor(change, at, bounds[2 * SLOT[spec]! + 1]!)
}

/** The number the first 8 hex digits of a (lowercase hex) hash write. */
function hexPrefix32(hash: string): number {
  let n = 0
  for (let i = 0; i < 8; i++) {
    const c = hash.charCodeAt(i)
    n = n * 16 + (c <= 0x39 ? c - 0x30 : c - 0x57)
  }
  return n
}

function actorId(c: Cursor): string {
  const length = c.uint()
  if (length === 0) throw GIVE_UP
  const at = c.skip(length)
  return hex(c.buf.subarray(at, c.pos))
}

/** The object an op is in: both columns null for the root, both set (counter > 0) for an object. */
function checkObject(actor: number, ctr: number, actorCount: number): void {
  if (actor === NULL_ENTRY && ctr === NULL_ENTRY) return
  if (actor === NULL_ENTRY || ctr === NULL_ENTRY || ctr < 1 || actor >= actorCount) throw GIVE_UP
}

/** A key is a property name, the head of a sequence (counter 0), or an element's op id. */
function checkKey(actor: number, ctr: number, str: number, actorCount: number): void {
  if (str !== NULL_ENTRY) {
    if (actor !== NULL_ENTRY || ctr !== NULL_ENTRY) throw GIVE_UP
  } else if (actor === NULL_ENTRY) {
    if (ctr !== 0) throw GIVE_UP
  } else if (ctr === NULL_ENTRY || ctr < 1 || actor >= actorCount) throw GIVE_UP
}
