import type { Origin } from '@dru/core'

/** How many conversions each direction remembers: ingest and conflict recording ask for the same few thousands of times. */
const REMEMBERED = 1024

/** A string conversion that remembers its last results (emptied when full, so bounded). */
function remembered(convert: (from: string) => string): (from: string) => string {
  const seen = new Map<string, string>()
  return (from) => {
    let to = seen.get(from)
    if (to === undefined) {
      to = convert(from)
      if (seen.size >= REMEMBERED) seen.clear()
      seen.set(from, to)
    }
    return to
  }
}

const toActor = remembered((origin) => Buffer.from(origin, 'utf8').toString('hex'))
const toOrigin = remembered((actor) => Buffer.from(actor, 'hex').toString('utf8'))

/**
 * The Automerge actor id of an origin: the hex of its UTF-8 bytes. Every op id
 * (`counter@actor`) therefore names the origin that wrote it without a lookup table, and
 * a new incarnation (a new origin) is a new actor, so Automerge's per-actor sequence is
 * never reused after a restore.
 */
export function actorForOrigin(origin: Origin | string): string {
  return toActor(origin)
}

/** The origin an actor id stands for (see {@link actorForOrigin}). */
export function originForActor(actor: string): string {
  return toOrigin(actor)
}

/** Splits an Automerge op id `counter@actor` into its parts. */
export function parseOpId(opId: string): { counter: number; actor: string } {
  const at = opId.indexOf('@')
  return { counter: Number(opId.slice(0, at)), actor: opId.slice(at + 1) }
}
