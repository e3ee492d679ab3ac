import { DruError } from './errors.js'

/**
 * The byte coding of units (unit.ts): unsigned LEB128 varints, texts as a varint length and
 * UTF-8, bytes as a varint length and themselves. The reader takes only what the writer
 * writes (each varint in its shortest form, texts valid UTF-8, nothing left over), so a
 * unit has one encoding.
 *
 * @module
 */

const utf8 = new TextEncoder()
// fatal: a byte string that is not UTF-8 is refused, not repaired; ignoreBOM: a leading U+FEFF is kept.
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * Appends varints, texts and bytes to space it keeps and reuses (single-threaded; grown when
 * a unit is larger): {@link view} lends the bytes for hashing, {@link copy} gives them out. A
 * fresh zeroed buffer per unit cost more than everything else sealing does.
 */
export class Writer {
  #buf: Uint8Array
  #at = 0

  constructor(size: number) {
    this.#buf = new Uint8Array(size)
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#at
  }

  /** Starts over, keeping the space. */
  reset(): this {
    this.#at = 0
    return this
  }

  #room(n: number): void {
    if (this.#at + n <= this.#buf.byteLength) return
    const grown = new Uint8Array(Math.max(this.#at + n, this.#buf.byteLength * 2))
    grown.set(this.#buf.subarray(0, this.#at))
    this.#buf = grown
  }

  byte(b: number): void {
    this.#room(1)
    this.#buf[this.#at++] = b
  }

  /** Unsigned LEB128 of a safe integer (division, not bit operations: values pass 2^32). */
  uint(v: number): void {
    this.#room(8)
    while (v >= 0x80) {
      this.#buf[this.#at++] = (v % 0x80) | 0x80
      v = Math.floor(v / 0x80)
    }
    this.#buf[this.#at++] = v
  }

  /** 64 hex characters, checked already, as their 32 bytes. */
  hex32(hex: string): void {
    this.#room(32)
    this.#buf.set(Buffer.from(hex, 'hex'), this.#at)
    this.#at += 32
  }

  /** Bytes as they are, without a length (hashes of a known size). */
  raw(b: Uint8Array): void {
    this.#room(b.byteLength)
    this.#buf.set(b, this.#at)
    this.#at += b.byteLength
  }

  text(s: string): void {
    let ascii = true
    for (let i = 0; i < s.length && ascii; i++) ascii = s.charCodeAt(i) < 0x80
    if (ascii) {
      this.uint(s.length)
      this.#room(s.length)
      for (let i = 0; i < s.length; i++) this.#buf[this.#at++] = s.charCodeAt(i)
    } else this.bytes(utf8.encode(s))
  }

  bytes(b: Uint8Array): void {
    this.uint(b.byteLength)
    this.#room(b.byteLength)
    this.#buf.set(b, this.#at)
    this.#at += b.byteLength
  }

  /** The bytes written, valid until the next write. */
  view(): Uint8Array {
    return this.#buf.subarray(0, this.#at)
  }

  /** The bytes written, in a buffer of their own (not zero-filled first: every byte is copied in). */
  copy(): Uint8Array {
    const out = new Uint8Array(Buffer.allocUnsafeSlow(this.#at).buffer, 0, this.#at)
    out.set(this.#buf.subarray(0, this.#at))
    return out
  }
}

/** Reads {@link Writer}'s output strictly: short varints only, nothing past the end. */
export class Reader {
  readonly #bytes: Uint8Array
  #at = 0

  constructor(bytes: Uint8Array) {
    if (!(bytes instanceof Uint8Array)) throw new DruError('MALFORMED', 'a unit must be bytes')
    this.#bytes = bytes
  }

  /** Bytes read so far. */
  get position(): number {
    return this.#at
  }

  fail(why: string): never {
    throw new DruError('MALFORMED', `unit at byte ${this.#at}: ${why}`, { details: { offset: this.#at } })
  }

  byte(): number {
    if (this.#at >= this.#bytes.byteLength) this.fail('ends early')
    return this.#bytes[this.#at++]!
  }

  uint(): number {
    let v = 0
    let scale = 1
    for (let i = 0; ; i++) {
      const b = this.byte()
      if (i === 8) this.fail('varint is too long')
      v += (b & 0x7f) * scale
      if (b < 0x80) {
        // A last byte of 0 after others is a longer form of a shorter varint.
        if (b === 0 && i > 0) this.fail('varint is not in its shortest form')
        if (!Number.isSafeInteger(v)) this.fail('varint passes the largest safe integer')
        return v
      }
      scale *= 0x80
    }
  }

  hex32(): string {
    if (this.#at + 32 > this.#bytes.byteLength) this.fail('ends early')
    const hex = Buffer.from(this.#bytes.buffer, this.#bytes.byteOffset + this.#at, 32).toString('hex')
    this.#at += 32
    return hex
  }

  /** A UTF-8 text of at most `maxChars` characters. */
  text(maxChars: number): string {
    const raw = this.bytes(maxChars * 4)
    if (raw.byteLength <= maxChars && isAscii(raw)) return String.fromCharCode.apply(null, raw as unknown as number[])
    let s: string
    try {
      s = utf8Strict.decode(raw)
    } catch {
      this.fail('text is not UTF-8')
    }
    if (s.length > maxChars) this.fail(`text is longer than ${maxChars} characters`)
    return s
  }

  bytes(max: number): Uint8Array {
    const n = this.uint()
    if (n > max) this.fail(`length ${n} passes ${max}`)
    if (this.#at + n > this.#bytes.byteLength) this.fail('ends early')
    const out = this.#bytes.subarray(this.#at, this.#at + n)
    this.#at += n
    return out
  }

  end(): void {
    if (this.#at !== this.#bytes.byteLength) this.fail('has bytes after its last event')
  }
}

function isAscii(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.byteLength; i++) if (bytes[i]! >= 0x80) return false
  return true
}
