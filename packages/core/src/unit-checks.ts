import { DruError } from './errors.js'
import { GENESIS_HASH, isHex64 } from './event.js'
import { MAX_HLC_COUNTER, MAX_HLC_WALL, isHlcNodeText } from './hlc.js'
import { hasLoneSurrogate, isDocId, isOrigin, type Origin } from './ids.js'
import { MAX_CHANGE_BYTES, MAX_SEQ } from './limits.js'
import type { Unit, UnitEntry } from './unit.js'

/**
 * What a unit (unit.ts) may hold: its bounds, and the checks sealing and hashing run before
 * they write anything (`INVALID_EVENT`). The decoder enforces the same bounds on bytes.
 *
 * @module
 */

/** Most events in one unit: deferred signing's run (store-sqlite RUN_EVENTS). */
export const MAX_UNIT_EVENTS = 256
/**
 * Most change bytes in one unit of several events (store-sqlite RUN_BYTES): a receiver hashes
 * and holds at most this much to check any event. A single event may be larger (up to
 * MAX_CHANGE_BYTES), alone in its unit.
 */
export const MAX_UNIT_CHANGE_BYTES = 64 << 10

export function unitChangeBytes(entries: readonly UnitEntry[]): number {
  let n = 0
  for (const e of entries) n += e.change.byteLength
  return n
}

/** What a unit may hold, checked before it is written: the same bounds the decoder enforces. */
export function checkUnit(u: Unit): void {
  const bad = (why: string): never => {
    throw new DruError('INVALID_EVENT', `unit ${u.origin}#${u.seq}: ${why}`)
  }
  const count = u.entries.length
  checkHeader(u.origin, u.seq, u.prev, count, bad)
  for (let i = 0; i < count; i++) checkEntry(u.entries[i]!, i, i === 0 ? undefined : u.entries[i - 1]!.docId, bad)
  if (count > 1 && unitChangeBytes(u.entries) > MAX_UNIT_CHANGE_BYTES)
    bad(`holds more than ${MAX_UNIT_CHANGE_BYTES} change bytes`)
}

/** What a unit's header may say, for a unit of `count` events. */
export function checkHeader(
  origin: Origin,
  seq: number,
  prev: string,
  count: number,
  bad: (why: string) => never,
): void {
  if (!isOrigin(origin)) bad('origin is not an origin')
  if (!Number.isSafeInteger(seq) || seq < 1) bad('seq must be a positive integer')
  if (!isHex64(prev)) bad('prev must be 64 lowercase hex characters')
  if (seq === 1 && prev !== GENESIS_HASH) bad('prev of seq 1 must be the genesis hash')
  if (count < 1 || count > MAX_UNIT_EVENTS) bad(`must hold 1 to ${MAX_UNIT_EVENTS} events`)
  if (count - 1 > MAX_SEQ - seq) bad('passes the largest seq')
}

/**
 * What entry `i` may hold. `docBefore` is the entry before's document, checked already (a
 * unit's events mostly repeat it), or undefined for the first, whose document is always checked.
 */
export function checkEntry(e: UnitEntry, i: number, docBefore: string | undefined, bad: (why: string) => never): void {
  if (typeof e !== 'object' || e === null) bad(`entry ${i} is not an entry`)
  if (!isUintAtMost(e.wall, MAX_HLC_WALL) || !isUintAtMost(e.counter, MAX_HLC_COUNTER))
    bad(`entry ${i} HLC is out of range`)
  if (e.node !== undefined && !isHlcNode(e.node)) bad(`entry ${i} HLC node is not a node`)
  if ((docBefore === undefined || e.docId !== docBefore) && !isDocId(e.docId))
    bad(`entry ${i} docId is not a document id`)
  if (!(e.change instanceof Uint8Array) || e.change.byteLength > MAX_CHANGE_BYTES)
    bad(`entry ${i} change must be at most ${MAX_CHANGE_BYTES} bytes`)
}

function isUintAtMost(v: number, max: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= max
}

/**
 * An HLC node as its text form allows (hlc.ts), and well-formed: a lone surrogate has no
 * UTF-8 form, so two such nodes could share bytes, and so a hash.
 */
export function isHlcNode(node: string): boolean {
  return isHlcNodeText(node) && !hasLoneSurrogate(node)
}
