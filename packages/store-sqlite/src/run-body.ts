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
 *
 * and the run's hashes apart, 32 bytes an event in order (`runs.hashes`): at fixed places, so
 * SQL reads an event's hash without the body (the `events` view, a duplicate's check).
 *
 * Identity is the event's own, as before: each event's hash is checked on every read against
 * its fields, so a changed byte in a body or its hashes is CORRUPTION for the events it touches.
 *
 * @module
 */

/** Events a run holds at most: a document read decodes the run of each event it reads. */
export const MAX_RUN_EVENTS = 32
/**
 * A run's body and hashes stay within this many bytes (an event larger than this is a run of
 * its own). With the row's other values (at most ~70 bytes) it is the most a 4 KiB page keeps
 * in one cell (SQLite spills a table row's payload past 4,061 bytes to overflow pages), so a
 * run fills its page and a read of one event reads no overflow page (46k events/s for a
 * document's reads against 37k with 8 KiB runs). At 3 KiB runs filled 70 % of their pages with
 * 150-byte changes; this cap fills ~95 %, and the log writes a quarter fewer pages.
 */
export const MAX_RUN_BODY_BYTES = 3968

const NODE_GIVEN = 1
const VERBATIM = 2
const DAMAGED = 4

const utf8 = new TextDecoder('utf-8')

/**
 * The most one event adds to a run: flags, document id, wall and counter, the node when given
 * (length and UTF-8 bytes), the change's length and bytes, and its hash.
 */
function eventBytesAtMost(changeBytes: number, node: string | null): number {
  return 1 + 5 + 8 + 5 + (node === null ? 0 : 5 + node.length * 3) + 5 + changeBytes + 32
}

/** The node text a run's body writes for `hlc`: none for the origin's own, all of a verbatim one. */
function writtenNode(hlc: StoredHlc): string | null {
  return hlc.wall < 0 ? (hlc.node ?? '') : hlc.node
}

/** A run's packed parts, as `runs` stores them. */
export interface RunParts {
  readonly body: Buffer
  readonly hashes: Buffer
}

/** Builds one run's body and hashes event by event, in space it reuses. */
export class RunBodyWriter {
  #buf = new Uint8Array(MAX_RUN_BODY_BYTES * 2)
  #at = 0
  #hashes = Buffer.alloc(MAX_RUN_EVENTS * 32)
  #events = 0

  get events(): number {
    return this.#events
  }

  /** Bytes of the body and hashes so far. */
  get bytes(): number {
    return this.#at + this.#events * 32
  }

  /** Whether an event with a change of `changeBytes` and HLC `hlc` may still join this run. */
  fits(changeBytes: number, hlc: StoredHlc): boolean {
    return (
      this.#events < MAX_RUN_EVENTS &&
      this.bytes + eventBytesAtMost(changeBytes, writtenNode(hlc)) <= MAX_RUN_BODY_BYTES
    )
  }

  /**
   * Appends one event; `hashHex` is its hash's 64 hex characters (anything else is written as
   * 32 zero bytes, for a migrated row marked `damaged`, which can never pass its check).
   */
  add(doc: number, hlc: StoredHlc, change: Uint8Array, hashHex: string, damaged = false): void {
    const node = writtenNode(hlc)
    this.#room(change.byteLength + 32 + (node === null ? 0 : node.length * 3 + 8))
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
    if (this.#hashes.byteLength < (this.#events + 1) * 32) {
      const grown = Buffer.alloc(this.#hashes.byteLength * 2)
      this.#hashes.copy(grown)
      this.#hashes = grown
    }
    const at = this.#events * 32
    if (hashHex.length !== 64 || this.#hashes.write(hashHex, at, 32, 'hex') !== 32) this.#hashes.fill(0, at, at + 32)
    this.#events++
  }

  /** The body and hashes so far, copied out; the writer starts over. */
  take(): RunParts {
    const body = Buffer.allocUnsafe(this.#at)
    body.set(this.#buf.subarray(0, this.#at))
    const hashes = Buffer.allocUnsafe(this.#events * 32)
    this.#hashes.copy(hashes, 0, 0, this.#events * 32)
    this.reset()
    return { body, hashes }
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

/** Thrown by the decoders for a body its row does not describe (a damaged file). */
export class RunBodyDamaged extends Error {}

/** Reads a body strictly: every length within it, varints of at most 8 bytes. */
class Cursor {
  at = 0
  readonly #buf: Buffer
  readonly end: number

  constructor(body: Uint8Array) {
    // A body of another SQL type (text, a number) is a damaged row.
    if (!(body instanceof Uint8Array)) throw new RunBodyDamaged('is not bytes')
    this.#buf = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength)
    this.end = this.#buf.byteLength
  }

  byte(): number {
    if (this.at >= this.end) throw new RunBodyDamaged('ends early')
    return this.#buf[this.at++]!
  }

  uint(): number {
    let v = 0
    let scale = 1
    for (let i = 0; i < 8; i++) {
      const b = this.byte()
      v += (b & 0x7f) * scale
      if (b < 0x80) return v
      scale *= 0x80
    }
    throw new RunBodyDamaged('varint too long')
  }

  /** The next `n` bytes, as a view. */
  bytes(n: number): Buffer {
    if (this.at + n > this.end) throw new RunBodyDamaged('ends early')
    const out = this.#buf.subarray(this.at, this.at + n)
    this.at += n
    return out
  }

  skip(n: number): void {
    if (this.at + n > this.end) throw new RunBodyDamaged('ends early')
    this.at += n
  }
}

/** An event's flags: only what the writer writes (a bit flipped on disk is not ignored). */
function readFlags(c: Cursor): number {
  const flags = c.byte()
  if (
    (flags & ~(NODE_GIVEN | VERBATIM | DAMAGED)) !== 0 ||
    (flags & (NODE_GIVEN | VERBATIM)) === (NODE_GIVEN | VERBATIM)
  )
    throw new RunBodyDamaged(`has an event with flags ${flags}`)
  return flags
}

/** Reads one event's fields (flags, document, HLC text, change) at the cursor. */
function readEvent(c: Cursor, origin: string): { flags: number; doc: number; hlc: string; change: Buffer } {
  const flags = readFlags(c)
  const doc = c.uint()
  let hlc: string
  if (flags & VERBATIM) hlc = utf8.decode(c.bytes(c.uint()))
  else {
    const wall = c.uint()
    const counter = c.uint()
    const node = flags & NODE_GIVEN ? utf8.decode(c.bytes(c.uint())) : origin
    hlc = encodeHlc({ wall, counter, node })
  }
  const change = c.bytes(c.uint())
  return { flags, doc, hlc, change }
}

/** Moves the cursor past one event, returning its document. */
function skipEvent(c: Cursor): number {
  const flags = readFlags(c)
  const doc = c.uint()
  if (flags & VERBATIM) c.skip(c.uint())
  else {
    c.uint()
    c.uint()
    if (flags & NODE_GIVEN) c.skip(c.uint())
  }
  c.skip(c.uint())
  return doc
}

function checkHashes(hashesHex: string, n: number): void {
  if (typeof hashesHex !== 'string' || hashesHex.length !== n * 64)
    throw new RunBodyDamaged(`holds ${hashesHex.length / 64} hashes, not ${n}`)
}

/**
 * Every event of a run, in order: `lsn`, `seq` and `prevHex` are the row's, `hashesHex` its
 * hashes as hex, `origin` the text the HLC's node defaults to. {@link RunBodyDamaged} when
 * the body and hashes are not `n` whole events.
 */
export function decodeRunBody(
  body: Uint8Array,
  hashesHex: string,
  n: number,
  lsn: number,
  seq: number,
  prevHex: string,
  origin: string,
): StoredEvent[] {
  checkHashes(hashesHex, n)
  const out = new Array<StoredEvent>(n)
  const c = new Cursor(body)
  let prev = prevHex
  for (let i = 0; i < n; i++) {
    const { flags, doc, hlc, change } = readEvent(c, origin)
    const hash = hashesHex.slice(i * 64, i * 64 + 64)
    out[i] = { lsn: lsn + i, seq: seq + i, doc, hlc, change, prev, hash, damaged: (flags & DAMAGED) !== 0 }
    prev = hash
  }
  if (c.at !== c.end) throw new RunBodyDamaged('has bytes after its last event')
  return out
}

/**
 * One event of a run (its index `i`), skipping the events before it without building them: a
 * document's events lie spread over runs, and its reads want one event of each.
 * {@link RunBodyDamaged} when the body does not hold it whole.
 */
export function decodeRunEvent(
  body: Uint8Array,
  hashesHex: string,
  n: number,
  i: number,
  lsn: number,
  seq: number,
  prevHex: string,
  origin: string,
): StoredEvent {
  checkHashes(hashesHex, n)
  if (!Number.isInteger(i) || i < 0 || i >= n) throw new RunBodyDamaged(`has no event ${i}`)
  const c = new Cursor(body)
  for (let k = 0; k < i; k++) skipEvent(c)
  const { flags, doc, hlc, change } = readEvent(c, origin)
  const prev = i === 0 ? prevHex : hashesHex.slice(i * 64 - 64, i * 64)
  const hash = hashesHex.slice(i * 64, i * 64 + 64)
  return { lsn: lsn + i, seq: seq + i, doc, hlc, change, prev, hash, damaged: (flags & DAMAGED) !== 0 }
}

/**
 * {@link docsOfRunBody}, or no documents for a body that does not decode: for the readers that
 * only index positions (a damaged run's own reads name it, CORRUPTION).
 */
export function docsOfRunOrNone(body: Uint8Array, n: number): number[] {
  try {
    return docsOfRunBody(body, n)
  } catch {
    return []
  }
}

/** The document of each event of a run, without building the events (reads that need only positions). */
export function docsOfRunBody(body: Uint8Array, n: number): number[] {
  const out = new Array<number>(n)
  const c = new Cursor(body)
  for (let i = 0; i < n; i++) out[i] = skipEvent(c)
  if (c.at !== c.end) throw new RunBodyDamaged('has bytes after its last event')
  return out
}
