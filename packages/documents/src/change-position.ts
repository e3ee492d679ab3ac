/** Where an Automerge change sits (its actor, seq and first op), read without decoding its operations. */
export interface ChangePosition {
  /** The writing actor, hex. */
  readonly actor: string
  /** The actor's seq of this change (1, 2, 3… per actor and document). */
  readonly seq: number
  /** The counter of the change's first operation. */
  readonly startOp: number
}

/** The first bytes of every Automerge chunk. */
const MAGIC = [0x85, 0x6f, 0x4a, 0x83]
/** Chunk type of an uncompressed change (a compressed one, type 2, deflates its header too). */
const CHANGE_CHUNK = 1

/**
 * Reads actor, seq and start op from an uncompressed Automerge change chunk: magic (4),
 * checksum (4), type (1), length, then the header — dependency hashes, actor, seq, start
 * op. About a microsecond, against tens for `Automerge.decodeChange`, which also decodes
 * every operation. Undefined for anything else (a compressed chunk, truncated bytes): the
 * caller then decodes. It proves nothing about the change; callers check what they rely on.
 */
export function readChangePosition(bytes: Uint8Array): ChangePosition | undefined {
  if (bytes.length < 10) return undefined
  for (let i = 0; i < MAGIC.length; i++) if (bytes[i] !== MAGIC[i]) return undefined
  if (bytes[8] !== CHANGE_CHUNK) return undefined
  const at = { i: 9 }
  const length = uleb(bytes, at)
  if (length === undefined || at.i + length > bytes.length) return undefined
  const deps = uleb(bytes, at)
  if (deps === undefined) return undefined
  at.i += 32 * deps
  const actorLength = uleb(bytes, at)
  if (actorLength === undefined || at.i + actorLength > bytes.length) return undefined
  const actor = Buffer.from(bytes.buffer, bytes.byteOffset + at.i, actorLength).toString('hex')
  at.i += actorLength
  const seq = uleb(bytes, at)
  const startOp = uleb(bytes, at)
  if (seq === undefined || startOp === undefined) return undefined
  return { actor, seq, startOp }
}

/** An unsigned LEB128 at `at.i` (advanced past it); undefined past the end or beyond 2^53. */
function uleb(bytes: Uint8Array, at: { i: number }): number | undefined {
  let value = 0
  for (let shift = 0; shift < 53; shift += 7) {
    const b = bytes[at.i++]
    if (b === undefined) return undefined
    value += (b & 0x7f) * 2 ** shift
    if ((b & 0x80) === 0) return Number.isSafeInteger(value) ? value : undefined
  }
  return undefined
}
