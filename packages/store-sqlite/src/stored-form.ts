import type Database from 'better-sqlite3'
import { asciiDecimal, isHex64 } from '@dru/core'

/**
 * The stored form of an event's fields (schema 4): what the log keeps on disk instead of
 * the {@link DruEvent} text fields, and the way back. Hashes are 32-byte blobs, an HLC is
 * two integers (wall, counter) plus its node only when the node is not the event's own
 * origin, origins and document ids are integers into dictionary tables. Every conversion
 * round-trips exactly: a value that does not fit the compact form (which only a damaged or
 * hand-edited row can hold) is kept verbatim in a form that can never pass the hash check,
 * so corruption stays visible instead of being repaired by the conversion.
 *
 * @module
 */

// Encoded HLCs are fixed width (see @dru/core encodeHlc): 15 digits, '-', 10 digits, '-', node.
const WALL_END = 15
const COUNTER_END = 26
const NODE_AT = 27
const DASH = 0x2d

/** A 64-character lowercase hex hash as 32 bytes; anything else as its UTF-8 bytes (never 32 hex-equal bytes). */
export function encodeStoredHash(hex: string): Buffer {
  return isHex64(hex) ? Buffer.from(hex, 'hex') : Buffer.from(hex, 'utf8')
}

/** The hex text of a stored hash; undefined when the stored value is not 32 bytes (a damaged row). */
export function decodeStoredHash(stored: unknown): string | undefined {
  return Buffer.isBuffer(stored) && stored.byteLength === 32 ? stored.toString('hex') : undefined
}

/** An HLC's stored columns: `wall`, `counter`, and `node` (null when it is the event's origin). */
export interface StoredHlc {
  readonly wall: number
  readonly counter: number
  readonly node: string | null
}

/**
 * Splits an encoded HLC into integers. Text that is not an encoded HLC is kept verbatim in
 * `node` with `wall` -1 (read back unchanged, and refused by the hash check).
 */
export function encodeStoredHlc(hlc: string, origin: string): StoredHlc {
  // Read at fixed positions (every stored event passes here): what /^(\d{15})-(\d{10})-([\s\S]+)$/ matches.
  if (hlc.length > NODE_AT && hlc.charCodeAt(WALL_END) === DASH && hlc.charCodeAt(COUNTER_END) === DASH) {
    const wall = asciiDecimal(hlc, 0, WALL_END)
    const counter = asciiDecimal(hlc, WALL_END + 1, COUNTER_END)
    if (wall >= 0 && counter >= 0) {
      const node = hlc.slice(NODE_AT)
      return { wall, counter, node: node === origin ? null : node }
    }
  }
  return { wall: -1, counter: -1, node: hlc }
}

/**
 * The SQL expression giving back the encoded HLC text of stored columns (inverse of
 * {@link encodeStoredHlc}), computed inside SQLite: reads and the `events` view share it.
 */
export function storedHlcSql(c: { wall: string; counter: string; node: string; origin: string }): string {
  return `case when ${c.wall} < 0 then ${c.node} else printf('%015d-%010d-%s', ${c.wall}, ${c.counter}, coalesce(${c.node}, ${c.origin})) end`
}

/** The HLC columns of `log` aliased `l`, with the origin's text from `origin_ids` aliased `o`. */
export const STORED_HLC = { wall: 'l.hlc_wall', counter: 'l.hlc_counter', node: 'l.hlc_node', origin: 'o.origin' }

/**
 * Bound of the in-memory cache of one dictionary. Each entry costs a string and a number
 * (~100 bytes for a typical document id), so 65,536 keep it near 6 MiB however many
 * documents the log has; a miss costs one indexed lookup, and the cache starts over when full.
 */
export const MAX_CACHED_DICTIONARY_ENTRIES = 65_536

/**
 * A dictionary table (`origin_ids` or `doc_ids`): text to a small integer, assigned on first
 * use inside the writing transaction. Entries made by a transaction that rolls back are
 * forgotten by {@link rollback}, so the cache never names an id the file does not hold.
 */
export class Dictionary {
  readonly #ids = new Map<string, number>()
  readonly #fresh: string[] = []
  /**
   * The text last looked up and its id: a batch names one origin over and over, and often one
   * document over a run of events, usually as the same string, so the map is probed only when
   * the text changes. Forgotten whenever the map may lose an entry.
   */
  #lastText: string | undefined
  #lastId = 0
  readonly #select: Database.Statement
  readonly #insert: Database.Statement

  constructor(db: Database.Database, table: 'origin_ids' | 'doc_ids', column: 'origin' | 'doc_id') {
    this.#select = db.prepare(`select id from ${table} where ${column} = ?`).pluck()
    this.#insert = db.prepare(`insert into ${table} (${column}) values (?)`)
  }

  /** The id of `text`, adding it when new (call inside the writing transaction). */
  idOf(text: string): number {
    if (text === this.#lastText) return this.#lastId
    const cached = this.#ids.get(text)
    if (cached !== undefined) return this.#remember(text, cached)
    let id = this.#select.get(text) as number | undefined
    if (id === undefined) {
      id = Number(this.#insert.run(text).lastInsertRowid)
      this.#fresh.push(text)
    }
    if (this.#ids.size >= MAX_CACHED_DICTIONARY_ENTRIES) this.#ids.clear()
    this.#ids.set(text, id)
    return this.#remember(text, id)
  }

  #remember(text: string, id: number): number {
    this.#lastText = text
    this.#lastId = id
    return id
  }

  /** The writing transaction committed: its new entries are durable. */
  commit(): void {
    this.#fresh.length = 0
  }

  /** The writing transaction rolled back: forget the entries it made. */
  rollback(): void {
    this.#lastText = undefined
    for (const text of this.#fresh) this.#ids.delete(text)
    this.#fresh.length = 0
  }
}

/**
 * Dictionary ids back to their text, for reads (a run's body names documents by id): cached,
 * bounded like {@link Dictionary}; an id no entry holds gives null (a damaged row). Only what
 * is committed is cached: an entry read inside a transaction may roll back, and SQLite would
 * give its id to the next new text (a refused batch whose handler had read its event once left
 * the next document's events reading as another's, CORRUPTION). Committed ids are never reused.
 */
export class DictionaryNames {
  readonly #texts = new Map<number, string>()
  readonly #db: Database.Database
  readonly #select: Database.Statement

  constructor(db: Database.Database, table: 'origin_ids' | 'doc_ids', column: 'origin' | 'doc_id') {
    this.#db = db
    this.#select = db.prepare(`select ${column} from ${table} where id = ?`).pluck()
  }

  textOf(id: number): string | null {
    const cached = this.#texts.get(id)
    if (cached !== undefined) return cached
    const text = this.#select.get(id) as string | undefined
    if (text === undefined) return null
    if (this.#db.inTransaction) return text
    if (this.#texts.size >= MAX_CACHED_DICTIONARY_ENTRIES) this.#texts.clear()
    this.#texts.set(id, text)
    return text
  }
}
