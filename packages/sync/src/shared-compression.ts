import { COMPRESS_MIN_BYTES, compressFrame } from './frame-compression.js'

/**
 * One brotli pass per frame for all of a DRU's sessions. A DRU sends the same events frame
 * to every peer that lacks the same run — after a partition heals, its own writes to each
 * peer — and compressing that frame once per peer was the largest per-peer cost of a heal.
 * Frames are matched by their bytes (equal bytes compress to equal bytes), so sessions,
 * batches and timing need not agree on anything; a frame seen once costs a byte comparison
 * per later send of the same length.
 *
 * Memory: at most `budgetBytes` of plain plus compressed bytes and {@link MAX_SHARED_FRAMES}
 * entries, newest kept; a frame too large for the budget is compressed and not kept.
 *
 * A DRU whose changes carry bytes brotli cannot shorten (already compressed or encrypted
 * payloads) would pay for a compression pass per frame for nothing (5.6 µs an event in a
 * catch-up of such changes): after a frame that did not pay, the next 1, 3, 7, … up to
 * {@link MAX_SKIPPED_FRAMES} new frames go plain without trying, the count growing while
 * frames keep not paying and starting over at the first that does.
 */

/** Frames remembered at most (a scan per send looks at each one's length). */
export const MAX_SHARED_FRAMES = 16
/** Most new frames sent plain without trying, after frames that did not pay. */
export const MAX_SKIPPED_FRAMES = 63

interface Entry {
  readonly plain: Uint8Array
  readonly packed: Uint8Array
}

export class SharedCompression {
  readonly #budget: number
  /** Oldest first. */
  readonly #entries: Entry[] = []
  #bytes = 0
  /** Sends answered from a frame compressed before. */
  hits = 0
  /** Frames compressed here (at least COMPRESS_MIN_BYTES long). */
  misses = 0
  /** Frames sent plain without trying, after frames that did not pay. */
  skipped = 0
  /** New frames still to send plain without trying. */
  #skip = 0
  /** Frames in a row that compression did not pay for. */
  #unpaid = 0

  constructor(budgetBytes: number) {
    this.#budget = budgetBytes
  }

  /** Bytes held now (plain and compressed), at most the budget. */
  get bytes(): number {
    return this.#bytes
  }

  /**
   * What {@link compressFrame} returns for these bytes, or, while skipping after frames that
   * did not pay, the frame itself.
   */
  compress(frame: Uint8Array): Uint8Array {
    if (frame.byteLength < COMPRESS_MIN_BYTES) return frame
    for (let i = this.#entries.length - 1; i >= 0; i--) {
      const e = this.#entries[i]!
      if (e.plain.byteLength === frame.byteLength && sameBytes(e.plain, frame)) {
        this.hits++
        return e.packed
      }
    }
    if (this.#skip > 0) {
      this.#skip--
      this.skipped++
      return frame
    }
    this.misses++
    const packed = compressFrame(frame)
    const incompressible = packed === frame
    this.#unpaid = incompressible ? this.#unpaid + 1 : 0
    if (incompressible) this.#skip = Math.min(2 ** this.#unpaid - 1, MAX_SKIPPED_FRAMES)
    const cost = frame.byteLength + (incompressible ? 0 : packed.byteLength)
    if (cost > this.#budget) return packed
    // A copy: the frame may be a view into an encoder's buffer that is written again later.
    // An incompressible frame is answered with that copy too, never with the caller's buffer.
    const plain = frame.slice()
    this.#entries.push({ plain, packed: incompressible ? plain : packed })
    this.#bytes += cost
    while (this.#bytes > this.#budget || this.#entries.length > MAX_SHARED_FRAMES) {
      const old = this.#entries.shift()!
      this.#bytes -= old.plain.byteLength + (old.packed === old.plain ? 0 : old.packed.byteLength)
    }
    return packed
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)
}
