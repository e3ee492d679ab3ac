import { DruError } from './errors.js'
import { DEFAULT_MAX_CLOCK_SKEW_MS } from './limits.js'

/**
 * A hybrid logical clock timestamp: physical milliseconds, a logical counter for events
 * within (or behind) the same millisecond, and the node that made it (an origin).
 */
export interface Hlc {
  readonly wall: number
  readonly counter: number
  readonly node: string
}

/** Reads wall-clock milliseconds. Injected so tests and simulations control time. */
export type WallClock = () => number

const WALL_DIGITS = 15
const COUNTER_DIGITS = 10
/** The largest counter and wall the text form holds (10 and 15 digits). */
export const MAX_HLC_COUNTER = 10 ** COUNTER_DIGITS - 1
export const MAX_HLC_WALL = 10 ** WALL_DIGITS - 1
// The node is an origin: a DRU id of up to 64 characters, a slash and up to 16 digits.
// Encoded: 15 wall digits, '-', 10 counter digits, '-', 1 to 96 characters, no line break
// (what /^(\d{15})-(\d{10})-(.{1,96})$/ matches; read by hand, every received event has one).
const NODE_AT = WALL_DIGITS + 1 + COUNTER_DIGITS + 1
const MAX_NODE_LENGTH = 96
const DASH = 0x2d

/** Total order on timestamps: wall, then counter, then node. */
export function compareHlc(a: Hlc, b: Hlc): number {
  if (a.wall !== b.wall) return a.wall < b.wall ? -1 : 1
  if (a.counter !== b.counter) return a.counter < b.counter ? -1 : 1
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0
}

/** The wall last encoded and its padded text with its dash: the events of one millisecond share it. */
let lastWall = -1
let lastWallText = ''

/** Fixed-width text form whose string order equals {@link compareHlc}; stored in the log. */
export function encodeHlc(h: Hlc): string {
  // Every appended and every received event is encoded; padding the wall again cost a third of it.
  if (h.wall !== lastWall) {
    lastWallText = `${String(h.wall).padStart(WALL_DIGITS, '0')}-`
    lastWall = h.wall
  }
  return `${lastWallText}${String(h.counter).padStart(COUNTER_DIGITS, '0')}-${h.node}`
}

/** Parses {@link encodeHlc} output; INVALID_EVENT on anything else. */
export function decodeHlc(text: unknown): Hlc {
  if (isHlcText(text)) {
    return {
      wall: asciiDecimal(text, 0, WALL_DIGITS),
      counter: asciiDecimal(text, WALL_DIGITS + 1, NODE_AT - 1),
      node: text.slice(NODE_AT),
    }
  }
  throw new DruError('INVALID_EVENT', `hlc is not a valid timestamp (got ${JSON.stringify(text)})`)
}

/**
 * Whether {@link decodeHlc} reads `text` (its one test), without building the timestamp or
 * slicing its node: ingest checks every received event's HLC and needs none of its parts.
 */
export function isHlcText(text: unknown): text is string {
  return (
    typeof text === 'string' &&
    text.length > NODE_AT &&
    text.length <= NODE_AT + MAX_NODE_LENGTH &&
    text.charCodeAt(WALL_DIGITS) === DASH &&
    text.charCodeAt(NODE_AT - 1) === DASH &&
    !hasLineBreak(text, NODE_AT) &&
    asciiDecimal(text, 0, WALL_DIGITS) >= 0 &&
    asciiDecimal(text, WALL_DIGITS + 1, NODE_AT - 1) >= 0
  )
}

/** The decimal number written in `text[from, to)`, or -1 if a character there is not an ASCII digit. */
export function asciiDecimal(text: string, from: number, to: number): number {
  let n = 0
  for (let i = from; i < to; i++) {
    const d = text.charCodeAt(i) - 0x30
    if (d < 0 || d > 9) return -1
    n = n * 10 + d
  }
  return n
}

/** A node the text form holds: 1 to 96 characters, no line break. */
export function isHlcNodeText(node: unknown): node is string {
  return typeof node === 'string' && node.length >= 1 && node.length <= MAX_NODE_LENGTH && !hasLineBreak(node, 0)
}

/** Whether `text` from `from` on holds a character a regex `.` does not match. */
function hasLineBreak(text: string, from: number): boolean {
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x0a || c === 0x0d || c === 0x2028 || c === 0x2029) return true
  }
  return false
}

export interface HlcClockOptions {
  /** The node name stamped on local timestamps (the origin). */
  node: string
  /** Wall clock; defaults to `Date.now`. */
  now?: WallClock
  /** How far (ms) a remote timestamp may run ahead of our wall clock before it is refused. */
  maxSkewMs?: number
  /** Highest timestamp issued before a restart, so the clock never runs backwards across restarts. */
  highWater?: Hlc
}

/**
 * A hybrid logical clock. `tick()` is strictly increasing even when the wall clock steps
 * back; `receive()` folds in a remote timestamp so later local ones sort after it, but refuses
 * (CLOCK_SKEW) one further ahead than `maxSkewMs` instead of dragging local time forward.
 */
export class HlcClock {
  readonly node: string
  readonly maxSkewMs: number
  readonly #now: WallClock
  #last: Hlc

  constructor(options: HlcClockOptions) {
    this.node = options.node
    this.#now = options.now ?? Date.now
    this.maxSkewMs = options.maxSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS
    if (!(this.maxSkewMs >= 0))
      throw new DruError('CONFIG_INVALID', `maxClockSkewMs must be >= 0 (got ${this.maxSkewMs})`)
    this.#last = options.highWater ?? { wall: 0, counter: 0, node: this.node }
  }

  /** The highest timestamp this clock has issued or observed. */
  get last(): Hlc {
    return this.#last
  }

  /** The next local timestamp: greater than everything issued or received so far. */
  tick(): Hlc {
    const physical = this.#physical()
    const last = this.#last
    this.#last =
      physical > last.wall ? { wall: physical, counter: 0, node: this.node } : this.#bump(last.wall, last.counter)
    return this.#last
  }

  /**
   * Checks a remote timestamp against the skew bound without changing the clock.
   * Throws CLOCK_SKEW when it is too far ahead.
   */
  check(remote: Hlc): void {
    const aheadMs = this.#aheadMs(remote)
    if (aheadMs > this.maxSkewMs) {
      throw new DruError(
        'CLOCK_SKEW',
        `remote timestamp from ${remote.node} is ${aheadMs} ms ahead of our clock (limit ${this.maxSkewMs} ms)`,
        { details: { node: remote.node, aheadMs, limitMs: this.maxSkewMs } },
      )
    }
  }

  /** Folds in a remote timestamp (after {@link check}); later local ticks sort after it. */
  receive(remote: Hlc): void {
    this.check(remote)
    this.#fold(remote)
  }

  /**
   * {@link receive} for a timestamp whose event is already stored: false instead of a throw
   * when it is now too far ahead (the wall clock stepped back since it was checked), and the
   * clock is then left as it is, as the skew policy would have left it.
   */
  receiveStored(remote: Hlc): boolean {
    if (this.#aheadMs(remote) > this.maxSkewMs) return false
    this.#fold(remote)
    return true
  }

  /** How far `remote` is ahead of our wall clock (ms; negative when behind). */
  #aheadMs(remote: Hlc): number {
    return remote.wall - this.#physical()
  }

  #fold(remote: Hlc): void {
    if (compareHlc(remote, this.#last) > 0) {
      this.#last = { wall: remote.wall, counter: remote.counter, node: this.node }
    }
  }

  #bump(wall: number, counter: number): Hlc {
    // A counter overflow (only after ~10^10 events inside one stalled millisecond) moves
    // the logical wall forward one ms rather than breaking monotonicity.
    return counter >= MAX_HLC_COUNTER
      ? { wall: wall + 1, counter: 0, node: this.node }
      : { wall, counter: counter + 1, node: this.node }
  }

  #physical(): number {
    const t = Math.floor(this.#now())
    if (!Number.isFinite(t) || t < 0 || t > MAX_HLC_WALL) {
      throw new DruError('INVALID_ARGUMENT', `wall clock returned ${t}, not a millisecond timestamp`)
    }
    return t
  }
}
