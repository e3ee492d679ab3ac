import { isUtf8 } from 'node:buffer'

// The byte-level reading under change-header.ts: LEB128 numbers and the run-length encoded
// op columns of an Automerge change, read one entry at a time (no array per column).

/** Thrown for anything the header reader does not understand; change-header.ts turns it into "ask Automerge". */
export class NotUnderstood extends Error {}
export const GIVE_UP = new NotUnderstood()

export class Cursor {
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

  /** Moves past `n` bytes; returns where they start. */
  skip(n: number): number {
    if (n > this.end - this.pos) throw GIVE_UP
    const at = this.pos
    this.pos += n
    return at
  }

  /** Moves past `n` bytes that must be valid UTF-8. */
  skipUtf8(n: number): void {
    if (!isUtf8At(this.buf, this.skip(n), n)) throw GIVE_UP
  }
}

/** Whether `length` bytes at `at` are valid UTF-8; plain ASCII (most keys) without a view or a native call. */
function isUtf8At(buf: Uint8Array, at: number, length: number): boolean {
  for (let i = at; i < at + length; i++) {
    if (buf[i]! >= 0x80) return isUtf8(buf.subarray(at, at + length))
  }
  return true
}

/** What an RLE column's entries are: unsigned numbers, running sums of signed deltas, or strings (only their presence). */
export const Kind = { Uint: 0, Delta: 1, Str: 2 } as const
export type Kind = (typeof Kind)[keyof typeof Kind]

/** A null entry (every real entry is a number at or above zero; a string reads as 1). */
export const NULL_ENTRY = -1

/**
 * An RLE column read entry by entry: runs of a repeated value (positive count), literal runs
 * (negative count) or null runs (zero, then how many). Each value is checked as it is read
 * (canonical LEB128, UTF-8, running sum never negative). A column that is absent reads as
 * all nulls when `absentIsNull`, else as empty.
 */
export class RleColumn extends Cursor {
  /** Entries left in the current run. */
  #left = 0
  /** 1 repeat, 2 literal, 3 nulls. */
  #mode = 0
  #value = 0
  #sum = 0

  constructor(
    buf: Uint8Array,
    pos: number,
    end: number,
    readonly kind: Kind,
    readonly absentIsNull = false,
  ) {
    super(buf, pos, end)
  }

  /** The next entry, or {@link NULL_ENTRY}; gives up past the column's end. */
  next(): number {
    if (this.absentIsNull) return NULL_ENTRY
    if (this.#left === 0) this.#startRun()
    this.#left--
    if (this.#mode === 3) return NULL_ENTRY
    if (this.#mode === 2) this.#value = this.#read()
    if (this.kind !== Kind.Delta) return this.#value
    this.#sum += this.#value
    if (this.#sum < 0 || !Number.isSafeInteger(this.#sum)) throw GIVE_UP
    return this.#sum
  }

  /** True when every entry has been read. */
  get exhausted(): boolean {
    return this.absentIsNull || (this.#left === 0 && this.done)
  }

  #startRun(): void {
    const count = this.int()
    if (count > 0) {
      this.#mode = 1
      this.#left = count
      this.#value = this.#read()
    } else if (count < 0) {
      this.#mode = 2
      this.#left = -count
    } else {
      const nulls = this.uint()
      if (nulls === 0) throw GIVE_UP
      this.#mode = 3
      this.#left = nulls
    }
  }

  #read(): number {
    switch (this.kind) {
      case Kind.Uint:
        return this.uint()
      case Kind.Delta:
        return this.int()
      case Kind.Str:
        this.skipUtf8(this.uint())
        return 1
    }
  }
}

/** A boolean column: alternating run lengths, false first (only the first may be zero). Returns the entry count. */
export function booleanCount(c: Cursor, max: number): number {
  let count = 0
  for (let first = true; !c.done; first = false) {
    const run = c.uint()
    if (run === 0 && !first) throw GIVE_UP
    count += run
    if (count > max) throw GIVE_UP
  }
  return count
}

export const NULL = 0
export const UINT = 3
export const INT = 4

/**
 * One op's value: its metadata entry (length << 4 | type) and its bytes in the raw column.
 * The bytes must parse as the type. Returns the type.
 */
export function readValue(meta: number, raw: Cursor): number {
  if (meta === NULL_ENTRY) throw GIVE_UP
  const type = meta % 16
  const length = Math.floor(meta / 16)
  const at = raw.skip(length)
  switch (type) {
    case 0: // null
    case 1: // false
    case 2: // true
      if (length !== 0) throw GIVE_UP
      return type
    // Automerge's decode refuses a number JavaScript cannot hold exactly; so does the reader.
    case UINT:
    case INT:
    case 8: // counter
    case 9: {
      // timestamp
      const bytes = new Cursor(raw.buf, at, raw.pos)
      if (type === UINT) bytes.uint()
      else bytes.int()
      if (!bytes.done) throw GIVE_UP
      return type
    }
    case 5: // float64
      if (length !== 8) throw GIVE_UP
      return type
    case 6: // string
      if (!isUtf8At(raw.buf, at, length)) throw GIVE_UP
      return type
    case 7: // bytes
      return type
    default:
      throw GIVE_UP
  }
}
