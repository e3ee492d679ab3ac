import { encodeHlc } from '@dru/core'
import type { StoredHlc } from './stored-form.js'

/**
 * The events of one stored run, packed (schema 6). A run is consecutive events of one origin
 * — seq after seq, each one's `prev` the hash before it — stored as one row of `runs`: a row
 * costs better-sqlite3 and SQLite about as much as a few hundred bytes do, whatever it holds,
 * and a row per event was most of what appending, ingesting and streaming the log cost. The row
 * keeps what the events share (origin, first seq and position, the first `prev`); the body
 * keeps, per event:
 *
 *     flags   byte     0: the HLC's node is the origin · 1: node given · 2: HLC text kept verbatim
 *                      (not an encoded HLC: only a damaged row migrated from schema 5 has one)
 *                      +4: damaged (a migrated row whose hash or ids were not whole): never served
 *     doc     varint   doc_ids.id
 *     wall    varint   HLC milliseconds    } absent when flags & 2
 *     counter varint                       }
 *     node    text     when flags & 3: varint length, UTF-8
 *     change  bytes    varint length, the change
 *     hash    32 bytes the event's hash
 *
 * Identity is the event's own, as before: each event's hash is checked on every read against
 * its fields, so a changed byte in a body is CORRUPTION for the events it touches.
 *
 * @module
 */

/** Events a run holds at most: a document read decodes the run of each event it reads. */
export const MAX_RUN_EVENTS = 32
/** A run's body stops growing past this many bytes (an event larger than this is a run of its own). */
export const MAX_RUN_BODY_BYTES = 3 * 1024

const NODE_GIVEN = 1
const VERBATIM = 2
const DAMAGED = 4

const utf8 = new TextDecoder('utf-8')

/** Builds one run's body event by event, in space it reuses. */
export class RunBodyWriter {
  #buf = new Uint8Array(MAX_RUN_BODY_BYTES * 2)
  #at = 0
  #events = 0

  get events(): number {
    return this.#events
  }

  get bytes(): number {
    return this.#at
  }

  /** Whether an event with a change of `changeBytes` may still join this run. */
  fits(changeBytes: number): boolean {
    return this.#events < MAX_RUN_EVENTS && this.#at + changeBytes + 64 <= MAX_RUN_BODY_BYTES
  }

  /**
   * Appends one event. `hash` is 32 bytes (as binary text or bytes, see {@link appendHashHex});
   * `damaged` marks a migrated row that can never pass its check.
   */
  add(doc: number, hlc: StoredHlc, change: Uint8Array, hashHex: string, damaged = false): void {
    const node = hlc.wall < 0 ? (hlc.node ?? '') : hlc.node
    this.#room(change.byteLength + 64 + (node === null ? 0 : node.length * 3 + 8))
    let flags = hlc.wall < 0 ? VERBATIM : node === null ? 0 : NODE_GIVEN
    if (damaged) flags |= DAMAGED
    this.#buf[this.#at++] = flags
    this.#uint(doc)
    if (hlc.wall >= 0) {
      this.#uint(hlc.wall)
      this.#uint(hlc.counter)
    }
    if (node !== null) this.#text(node)
    this.#uint(change.byteLength)
    this.#buf.set(change, this.#at)
    this.#at += change.byteLength
    this.#at += this.#hex32(hashHex, this.#at)
    this.#events++
  }

  /** The body so far, copied out; the writer starts over. */
  take(): Buffer {
    const out = Buffer.allocUnsafe(this.#at)
    out.set(this.#buf.subarray(0, this.#at))
    this.#at = 0
    this.#events = 0
    return out
  }

  /** Drops what was written. */
  reset(): void {
    this.#at = 0
    this.#events = 0
  }

  #room(n: number): void {
    if (this.#at + n <= this.#buf.byteLength) return
    const grown = new Uint8Array(Math.max(this.#at + n, this.#buf.byteLength * 2))
    grown.set(this.#buf.subarray(0, this.#at))
    this.#buf = grown
  }

  #uint(v: number): void {
    while (v >= 0x80) {
      this.#buf[this.#at++] = (v % 0x80) | 0x80
      v = Math.floor(v / 0x80)
    }
    this.#buf[this.#at++] = v
  }

  #text(s: string): void {
    const bytes = Buffer.from(s, 'utf8')
    this.#uint(bytes.byteLength)
    this.#buf.set(bytes, this.#at)
    this.#at += bytes.byteLength
  }

  /** Writes 64 hex characters as 32 bytes (anything else as 32 zero bytes: such a row is marked damaged). */
  #hex32(hex: string, at: number): number {
    if (hex.length === 64) {
      const written = Buffer.from(this.#buf.buffer, this.#buf.byteOffset).write(hex, at, 32, 'hex')
      if (written === 32) return 32
    }
    this.#buf.fill(0, at, at + 32)
    return 32
  }
}

/** One event read back from a run, before its hash is checked (see statements.ts `toEvent`). */
export interface StoredEvent {
  readonly lsn: number
  readonly seq: number
  /** doc_ids.id */
  readonly doc: number
  readonly hlc: string
  readonly change: Uint8Array
  /** Hex of the event's prev and hash (64 characters). */
  readonly prev: string
  readonly hash: string
  /** A migrated row that was not whole: never served (CORRUPTION). */
  readonly damaged: boolean
}

/** Thrown by {@link decodeRunBody} for a body its row does not describe (a damaged file). */
export class RunBodyDamaged extends Error {}

/**
 * Every event of a run, in order: `lsn`, `seq` and `prevHex` are the row's, `origin` the
 * text the HLC's node defaults to. {@link RunBodyDamaged} when the body is not `n` whole events.
 */
export function decodeRunBody(
  body: Uint8Array,
  n: number,
  lsn: number,
  seq: number,
  prevHex: string,
  origin: string,
): StoredEvent[] {
  const out = new Array<StoredEvent>(n)
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  const end = buf.byteLength
  let at = 0
  let prev = prevHex
  const uint = (): number => {
    let v = 0
    let scale = 1
    for (let i = 0; i < 8; i++) {
      if (at >= end) throw new RunBodyDamaged('ends early')
      const b = buf[at++]!
      v += (b & 0x7f) * scale
      if (b < 0x80) return v
      scale *= 0x80
    }
    throw new RunBodyDamaged('varint too long')
  }
  for (let i = 0; i < n; i++) {
    if (at >= end) throw new RunBodyDamaged('ends early')
    const flags = buf[at++]!
    const doc = uint()
    let hlc: string
    if (flags & VERBATIM) {
      const len = uint()
      if (at + len > end) throw new RunBodyDamaged('ends early')
      hlc = utf8.decode(buf.subarray(at, at + len))
      at += len
    } else {
      const wall = uint()
      const counter = uint()
      let node = origin
      if (flags & NODE_GIVEN) {
        const len = uint()
        if (at + len > end) throw new RunBodyDamaged('ends early')
        node = utf8.decode(buf.subarray(at, at + len))
        at += len
      }
      hlc = encodeHlc({ wall, counter, node })
    }
    const len = uint()
    if (at + len + 32 > end) throw new RunBodyDamaged('ends early')
    const change = buf.subarray(at, at + len)
    at += len
    const hash = buf.toString('hex', at, at + 32)
    at += 32
    out[i] = { lsn: lsn + i, seq: seq + i, doc, hlc, change, prev, hash, damaged: (flags & DAMAGED) !== 0 }
    prev = hash
  }
  if (at !== end) throw new RunBodyDamaged('has bytes after its last event')
  return out
}

/**
 * One event of a run (its index `i`), skipping the events before it without building them: a
 * document's events lie spread over runs, and its reads want one event of each.
 * {@link RunBodyDamaged} when the body does not hold it whole.
 */
export function decodeRunEvent(
  body: Uint8Array,
  n: number,
  i: number,
  lsn: number,
  seq: number,
  prevHex: string,
  origin: string,
): StoredEvent {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  const end = buf.byteLength
  let at = 0
  const uint = (): number => {
    let v = 0
    let scale = 1
    for (let k = 0; k < 8; k++) {
      if (at >= end) throw new RunBodyDamaged('ends early')
      const b = buf[at++]!
      v += (b & 0x7f) * scale
      if (b < 0x80) return v
      scale *= 0x80
    }
    throw new RunBodyDamaged('varint too long')
  }
  // Past n bytes from here (after the length was read: `at += uint()` would add to the old position).
  const skip = (bytes: number): number => at + bytes
  if (i < 0 || i >= n) throw new RunBodyDamaged(`has no event ${i}`)
  // Skips the events before i, keeping where the last hash began (it is event i's prev).
  let prevAt = -1
  for (let k = 0; k < i; k++) {
    if (at >= end) throw new RunBodyDamaged('ends early')
    const flags = buf[at++]!
    uint()
    if (flags & VERBATIM) at = skip(uint())
    else {
      uint()
      uint()
      if (flags & NODE_GIVEN) at = skip(uint())
    }
    at = skip(uint())
    prevAt = at
    at += 32
  }
  if (prevAt + 32 > end) throw new RunBodyDamaged('ends early')
  const prev = prevAt < 0 ? prevHex : buf.toString('hex', prevAt, prevAt + 32)
  if (at >= end) throw new RunBodyDamaged('ends early')
  const flags = buf[at++]!
  const doc = uint()
  let hlc: string
  if (flags & VERBATIM) {
    const len = uint()
    if (at + len > end) throw new RunBodyDamaged('ends early')
    hlc = utf8.decode(buf.subarray(at, at + len))
    at += len
  } else {
    const wall = uint()
    const counter = uint()
    let node = origin
    if (flags & NODE_GIVEN) {
      const len = uint()
      if (at + len > end) throw new RunBodyDamaged('ends early')
      node = utf8.decode(buf.subarray(at, at + len))
      at += len
    }
    hlc = encodeHlc({ wall, counter, node })
  }
  const len = uint()
  if (at + len + 32 > end) throw new RunBodyDamaged('ends early')
  const change = buf.subarray(at, at + len)
  at += len
  const hash = buf.toString('hex', at, at + 32)
  return { lsn: lsn + i, seq: seq + i, doc, hlc, change, prev, hash, damaged: (flags & DAMAGED) !== 0 }
}

/** The document of each event of a run, without building the events (reads that need only positions). */
export function docsOfRunBody(body: Uint8Array, n: number): number[] {
  const out = new Array<number>(n)
  let at = 0
  const end = body.byteLength
  const uint = (): number => {
    let v = 0
    let scale = 1
    for (let i = 0; i < 8; i++) {
      if (at >= end) throw new RunBodyDamaged('ends early')
      const b = body[at++]!
      v += (b & 0x7f) * scale
      if (b < 0x80) return v
      scale *= 0x80
    }
    throw new RunBodyDamaged('varint too long')
  }
  // Past n bytes from here (after the length was read: `at += uint()` would add to the old position).
  const skip = (bytes: number): number => at + bytes
  for (let i = 0; i < n; i++) {
    if (at >= end) throw new RunBodyDamaged('ends early')
    const flags = body[at++]!
    out[i] = uint()
    if (flags & VERBATIM) at = skip(uint())
    else {
      uint()
      uint()
      if (flags & NODE_GIVEN) at = skip(uint())
    }
    at = skip(uint() + 32)
  }
  if (at !== end) throw new RunBodyDamaged('has bytes after its last event')
  return out
}
