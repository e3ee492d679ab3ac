import { createHash } from 'node:crypto'
import { isUtf8 } from 'node:buffer'
import * as A from '@automerge/automerge'

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

/** Thrown inside the reader for anything it does not understand; never leaves this module. */
class NotUnderstood extends Error {}
const GIVE_UP = new NotUnderstood()

const MAGIC = [0x85, 0x6f, 0x4a, 0x83] as const
const CHANGE_CHUNK = 1
/** More ops than this and the reader leaves the change to Automerge (bounds what a bad run length can make it allocate). */
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
const KNOWN = new Set<number>(Object.values(COL))

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

class Cursor {
  constructor(
    readonly buf: Uint8Array,
    public pos: number,
    readonly end: number,
  ) {}

  get done(): boolean {
    return this.pos >= this.end
  }

  byte(): number {
    if (this.pos >= this.end) throw GIVE_UP
    return this.buf[this.pos++]!
  }

  /** An unsigned LEB128 in canonical form (no padding bytes), at most 2^53 - 1. */
  uint(): number {
    let result = 0
    let scale = 1
    for (let i = 0; ; i++) {
      const b = this.byte()
      result += (b & 0x7f) * scale
      if ((b & 0x80) === 0) {
        if (i > 0 && b === 0) throw GIVE_UP
        if (!Number.isSafeInteger(result)) throw GIVE_UP
        return result
      }
      scale *= 128
      if (i >= 7) throw GIVE_UP
    }
  }

  /** A signed LEB128 in canonical form, within ±(2^53 - 1). */
  int(): number {
    let result = 0
    let scale = 1
    let prev = 0
    for (let i = 0; ; i++) {
      const b = this.byte()
      result += (b & 0x7f) * scale
      scale *= 128
      if ((b & 0x80) === 0) {
        if (i > 0 && ((b === 0 && (prev & 0x40) === 0) || (b === 0x7f && (prev & 0x40) !== 0))) throw GIVE_UP
        if ((b & 0x40) !== 0) result -= scale
        if (!Number.isSafeInteger(result)) throw GIVE_UP
        return result
      }
      prev = b
      if (i >= 7) throw GIVE_UP
    }
  }

  take(n: number): Uint8Array {
    if (n > this.end - this.pos) throw GIVE_UP
    const out = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return out
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
    c.take(32 * c.uint()) // dependency hashes
    const actor = actorId(c)
    return { actor, seq: c.uint(), startOp: c.uint() }
  } catch (err) {
    if (err instanceof NotUnderstood) return undefined
    throw err
  }
}

function read(change: Uint8Array): ChangeHeader {
  const c = openChunk(change)
  // The hash covers the chunk type, the length and the body; the checksum is its first 4 bytes.
  const digest = createHash('sha256').update(change.subarray(8)).digest()
  for (let i = 0; i < 4; i++) if (digest[i] !== change[4 + i]) throw new ChangeChecksumError()

  const depCount = c.uint()
  const deps: string[] = []
  for (let i = 0; i < depCount; i++) deps.push(hex(c.take(32)))
  const actors = [actorId(c)]
  const seq = c.uint()
  const startOp = c.uint()
  if (startOp === 0 || startOp > 0xffffffff) throw GIVE_UP
  c.int() // time
  const message = c.take(c.uint())
  if (!isUtf8(message)) throw GIVE_UP
  const otherCount = c.uint()
  for (let i = 0; i < otherCount; i++) actors.push(actorId(c))

  const columns = new Map<number, Cursor>()
  const columnCount = c.uint()
  const lengths: Array<[number, number]> = []
  let last = -1
  for (let i = 0; i < columnCount; i++) {
    const spec = c.uint()
    // Unknown, deflated or out-of-order columns: Automerge's business.
    if (!KNOWN.has(spec) || spec <= last) throw GIVE_UP
    last = spec
    lengths.push([spec, c.uint()])
  }
  for (const [spec, length] of lengths) {
    columns.set(spec, new Cursor(change, c.pos, c.pos + length))
    c.take(length)
  }
  if (!c.done) throw GIVE_UP // extra bytes
  const column = (spec: number) => columns.get(spec) ?? new Cursor(change, 0, 0)
  // Automerge's writer leaves out an object or key column that holds only nulls.
  const nullable = (spec: number, read: (c: Cursor, max: number) => Array<number | boolean | null>) =>
    columns.has(spec) ? read(column(spec), n) : new Array<null>(n).fill(null)

  const actions = uints(column(COL.action), MAX_OPS)
  const n = actions.length
  const objActor = nullable(COL.objActor, uints) as Array<number | null>
  const objCtr = nullable(COL.objCtr, uints) as Array<number | null>
  const keyActor = nullable(COL.keyActor, uints) as Array<number | null>
  const keyCtr = nullable(COL.keyCtr, deltas) as Array<number | null>
  const keyStr = nullable(COL.keyStr, strings) as Array<boolean | null>
  if (booleans(column(COL.insert), n) !== n) throw GIVE_UP
  const valueTypes = values(column(COL.valMeta), column(COL.valRaw), n)
  const predGroup = uints(column(COL.predGroup), n)
  let preds = 0
  for (const g of predGroup) preds += nonNull(g)
  const predActor = uints(column(COL.predActor), preds)
  const predCtr = deltas(column(COL.predCtr), preds)
  if ([objActor, objCtr, keyActor, keyCtr, keyStr, valueTypes, predGroup].some((col) => col.length !== n)) throw GIVE_UP
  if (predActor.length !== preds || predCtr.length !== preds) throw GIVE_UP
  for (let i = 0; i < preds; i++) {
    if (nonNull(predActor[i]) >= actors.length || nonNull(predCtr[i]) < 1) throw GIVE_UP
  }

  const made: Array<{ index: number; obj: string }> = []
  for (let i = 0; i < n; i++) {
    const action = nonNull(actions[i])
    const type = valueTypes[i]!
    // Set-like ops carry any value; inc a number; make and delete ops nothing. Marks (7) and
    // unknown actions are left to Automerge.
    if (action === 5 ? type !== INT && type !== UINT : action !== 1 && type !== NULL) throw GIVE_UP
    if (action > 6) throw GIVE_UP
    checkKey(keyActor[i]!, keyCtr[i]!, keyStr[i]!, actors.length)
    const obj = objectOf(objActor[i]!, objCtr[i]!, actors)
    if (action === 0 || action === 2 || action === 4 || action === 6) made.push({ index: i, obj })
  }
  return { actor: actors[0]!, seq, startOp, deps, hash: digest.toString('hex'), opCount: n, made }
}

function actorId(c: Cursor): string {
  const length = c.uint()
  if (length === 0) throw GIVE_UP
  return hex(c.take(length))
}

function nonNull(v: number | null | undefined): number {
  if (v === null || v === undefined) throw GIVE_UP
  return v
}

/** The object an op is in: both columns null for the root, both set (counter > 0) for an object. */
function objectOf(actor: number | null, ctr: number | null, actors: readonly string[]): string {
  if (actor === null && ctr === null) return '_root'
  if (actor === null || ctr === null || ctr < 1 || actor >= actors.length) throw GIVE_UP
  return `${ctr}@${actors[actor]}`
}

/** A key is a property name, the head of a sequence (counter 0), or an element's op id. */
function checkKey(actor: number | null, ctr: number | null, str: boolean | null, actorCount: number): void {
  if (str) {
    if (actor !== null || ctr !== null) throw GIVE_UP
  } else if (actor === null) {
    if (ctr !== 0) throw GIVE_UP
  } else if (ctr === null || ctr < 1 || actor >= actorCount) throw GIVE_UP
}

/**
 * An RLE column: runs of a repeated value (positive count), literal runs (negative count) or
 * null runs (zero, then how many). Reads `read` for each value; at most `max` entries.
 */
function rle<T>(c: Cursor, max: number, read: (c: Cursor) => T): Array<T | null> {
  const out: Array<T | null> = []
  while (!c.done) {
    const count = c.int()
    if (count > 0) {
      if (out.length + count > max) throw GIVE_UP
      const v = read(c)
      for (let i = 0; i < count; i++) out.push(v)
    } else if (count < 0) {
      if (out.length - count > max) throw GIVE_UP
      for (let i = 0; i < -count; i++) out.push(read(c))
    } else {
      const nulls = c.uint()
      if (nulls === 0 || out.length + nulls > max) throw GIVE_UP
      for (let i = 0; i < nulls; i++) out.push(null)
    }
  }
  return out
}

function uints(c: Cursor, max: number): Array<number | null> {
  return rle(c, max, (x) => x.uint())
}

/** A delta column: RLE of signed differences; each value is the running sum (never negative). */
function deltas(c: Cursor, max: number): Array<number | null> {
  let sum = 0
  return rle(c, max, (x) => x.int()).map((d) => {
    if (d === null) return null
    sum += d
    if (sum < 0 || !Number.isSafeInteger(sum)) throw GIVE_UP
    return sum
  })
}

/** A string column: only whether each entry is present (and valid UTF-8) matters here. */
function strings(c: Cursor, max: number): Array<boolean | null> {
  return rle(c, max, (x) => {
    if (!isUtf8(x.take(x.uint()))) throw GIVE_UP
    return true
  })
}

/** A boolean column: alternating run lengths, false first (only the first may be zero). Returns the entry count. */
function booleans(c: Cursor, max: number): number {
  let count = 0
  for (let first = true; !c.done; first = false) {
    const run = c.uint()
    if (run === 0 && !first) throw GIVE_UP
    count += run
    if (count > max) throw GIVE_UP
  }
  return count
}

const NULL = 0
const UINT = 3
const INT = 4

/**
 * The value columns: a metadata RLE column (length << 4 | type per op) and the raw bytes,
 * whose lengths must add up exactly. Each value must parse as its type. Returns each op's type.
 */
function values(meta: Cursor, raw: Cursor, n: number): number[] {
  const types = uints(meta, n).map((m) => {
    const v = nonNull(m)
    const type = v % 16
    const length = Math.floor(v / 16)
    const bytes = new Cursor(raw.buf, raw.pos, raw.pos + length)
    raw.take(length)
    switch (type) {
      case 0: // null
      case 1: // false
      case 2: // true
        if (length !== 0) throw GIVE_UP
        break
      // Automerge's decode refuses a number JavaScript cannot hold exactly; so does the reader.
      case UINT:
        bytes.uint()
        break
      case INT:
      case 8: // counter
      case 9: // timestamp
        bytes.int()
        break
      case 5: // float64
        if (length !== 8) throw GIVE_UP
        bytes.take(8)
        break
      case 6: // string
        if (!isUtf8(bytes.take(length))) throw GIVE_UP
        break
      case 7: // bytes
        bytes.take(length)
        break
      default:
        throw GIVE_UP
    }
    if (!bytes.done) throw GIVE_UP
    return type
  })
  if (!raw.done) throw GIVE_UP
  return types
}
