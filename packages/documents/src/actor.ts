import type { Origin } from '@dru/core'

/**
 * The Automerge actor id of an origin: the hex of its UTF-8 bytes. Every op id
 * (`counter@actor`) therefore names the origin that wrote it without a lookup table, and
 * a new incarnation (a new origin) is a new actor, so Automerge's per-actor sequence is
 * never reused after a restore.
 */
export function actorForOrigin(origin: Origin | string): string {
  return Buffer.from(origin, 'utf8').toString('hex')
}

/** The origin an actor id stands for (see {@link actorForOrigin}). */
export function originForActor(actor: string): string {
  return Buffer.from(actor, 'hex').toString('utf8')
}

/** Splits an Automerge op id `counter@actor` into its parts. */
export function parseOpId(opId: string): { counter: number; actor: string } {
  const at = opId.indexOf('@')
  return { counter: Number(opId.slice(0, at)), actor: opId.slice(at + 1) }
}
