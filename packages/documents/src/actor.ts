import type { Origin } from '@dru/core'

/**
 * The Automerge actor id of an origin: the hex of its UTF-8 bytes. Every op id
 * (`counter@actor`) therefore names the origin that wrote it without a lookup table, and
 * a new incarnation (a new origin) is a new actor, so Automerge's per-actor sequence is
 * never reused after a restore.
 */
export function actorForOrigin(origin: Origin | string): string {
  let actor = actors.get(origin)
  if (actor === undefined) {
    actor = Buffer.from(origin, 'utf8').toString('hex')
    if (actors.size >= MAX_REMEMBERED_ORIGINS) actors.clear()
    actors.set(origin, actor)
  }
  return actor
}

/** Actors of the origins seen lately: ingest asks for the actor of every received event's origin. */
const actors = new Map<string, string>()

/** Origins of the actors seen lately: conflict recording asks for the same few actors thousands of times. */
const origins = new Map<string, string>()
const MAX_REMEMBERED_ORIGINS = 1024

/** The origin an actor id stands for (see {@link actorForOrigin}). */
export function originForActor(actor: string): string {
  let origin = origins.get(actor)
  if (origin === undefined) {
    origin = Buffer.from(actor, 'hex').toString('utf8')
    if (origins.size >= MAX_REMEMBERED_ORIGINS) origins.clear()
    origins.set(actor, origin)
  }
  return origin
}

/** Splits an Automerge op id `counter@actor` into its parts. */
export function parseOpId(opId: string): { counter: number; actor: string } {
  const at = opId.indexOf('@')
  return { counter: Number(opId.slice(0, at)), actor: opId.slice(at + 1) }
}
