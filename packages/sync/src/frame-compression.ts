import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib'
import { DruError } from '@dru/core'

/**
 * Frames after the handshake may travel brotli-compressed (protocol 6). A compressed frame
 * is one marker byte, 0xc1 — a byte msgpack never uses, so it can never start a plain
 * frame — followed by the brotli stream of the frame's bytes. It is sealed like any frame
 * (the seal covers the compressed bytes and is checked first), so only an authenticated
 * member can make us decompress, and the output is capped at the frame limit: a small
 * frame that would inflate past it is refused as FRAME_TOO_LARGE after at most that much
 * work, never buffered whole.
 *
 * Why brotli at quality 4 (`npm run bench:frames`, real compact events frames one at a
 * time): it leaves 0.23 of the bytes at about 200 MiB/s, the smallest output of the codecs
 * that compress at least 100 MiB/s (ten times a catch-up's rate); quality 1 is faster but
 * leaves 0.26, deflate 0.25–0.28, and quality 11 saves 2 % more at 1 MiB/s. Frames under
 * {@link COMPRESS_MIN_BYTES} (acks, pings, small batches) go plain: compressing them saves
 * little and costs a call per frame. So do frames brotli shortens by less than
 * {@link COMPRESS_MIN_SAVING}: changes carrying already compressed or encrypted bytes left
 * 0.965 of a catch-up's frames, and decompressing them cost the receiver 1.8 µs an event, a
 * seventh of its work there, to save 3.5 % of the bytes.
 */

export const COMPRESSED_FRAME_MARK = 0xc1
/** Frames shorter than this are sent as they are. */
export const COMPRESS_MIN_BYTES = 1024
/** The least share of a frame compression must save for the frame to go compressed. */
export const COMPRESS_MIN_SAVING = 1 / 8
const QUALITY = 4

/** The bytes to send for a frame: compressed when that saves at least COMPRESS_MIN_SAVING of it, else the frame itself. */
export function compressFrame(frame: Uint8Array): Uint8Array {
  if (frame.byteLength < COMPRESS_MIN_BYTES) return frame
  const packed = brotliCompressSync(frame, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: QUALITY,
      [constants.BROTLI_PARAM_SIZE_HINT]: frame.byteLength,
    },
  })
  if (packed.byteLength + 1 > frame.byteLength * (1 - COMPRESS_MIN_SAVING)) return frame
  const out = new Uint8Array(packed.byteLength + 1)
  out[0] = COMPRESSED_FRAME_MARK
  out.set(packed, 1)
  return out
}

/** True when the bytes are a compressed frame. */
export function isCompressed(bytes: Uint8Array): boolean {
  return bytes.byteLength > 0 && bytes[0] === COMPRESSED_FRAME_MARK
}

/**
 * A received frame's plain bytes: decompressed when marked, capped at `maxFrameBytes`
 * (FRAME_TOO_LARGE past it, MALFORMED for a broken stream), else the bytes themselves.
 */
export function decompressFrame(bytes: Uint8Array, maxFrameBytes: number): Uint8Array {
  if (!isCompressed(bytes)) return bytes
  try {
    return brotliDecompressSync(bytes.subarray(1), { maxOutputLength: maxFrameBytes })
  } catch (cause) {
    const code = (cause as { code?: string }).code
    if (code === 'ERR_BUFFER_TOO_LARGE')
      throw new DruError('FRAME_TOO_LARGE', `a compressed frame inflates past the limit of ${maxFrameBytes} bytes`, {
        cause,
      })
    throw new DruError('MALFORMED', `a compressed frame does not decompress: ${(cause as Error).message}`, { cause })
  }
}
