import type Database from 'better-sqlite3'
import { DruError, GENESIS_HASH, formatOrigin, newIncarnation, parseOrigin, type DruId, type Origin } from '@dru/core'
import { MetaKey, type MetaTable } from './meta.js'
import type { Head } from './statements.js'

/**
 * Who this process writes as. A database file cannot tell whether it is the newest copy of
 * itself (a backup put back carries everything the original had, its clean-close marker
 * included), so every open draws a fresh random incarnation no origin in the log uses, and
 * records it before any write. The clean-close marker is still read, and reported only.
 *
 * @module
 */

/** What an open learned and took. */
export interface OpenedIdentity {
  readonly incarnation: number
  /** No earlier identity was stored: this open created the database. */
  readonly isNew: boolean
  /** The origin the previous process wrote as. */
  readonly previousOrigin: Origin | undefined
  /** The previous process closed cleanly and the log still ends where it ended then. */
  readonly openedClean: boolean
}

export interface IdentityContext {
  readonly db: Database.Database
  readonly meta: MetaTable
  readonly druId: DruId
  readonly path: string
  readonly heads: ReadonlyMap<string, Head>
  readonly random: (() => number) | undefined
  /** Inspection takes no new incarnation and leaves the marker: it changes nothing the next start sees. */
  readonly inspect: boolean
}

/** The marker a clean close writes: our origin and head. */
export function cleanCloseToken(origin: Origin, heads: ReadonlyMap<string, Head>): string {
  const head = heads.get(origin)
  return `${origin}#${head?.seq ?? 0}#${head?.hash ?? GENESIS_HASH}`
}

/** Checks the file belongs to `druId`, reads the marker, then takes (or, inspecting, reads) the incarnation. */
export function openIdentity(ctx: IdentityContext): OpenedIdentity {
  const stored = ctx.meta.get(MetaKey.DRU_ID)
  if (stored !== undefined && stored !== ctx.druId) {
    throw new DruError(
      'CONFIG_INVALID',
      `database ${ctx.path} belongs to DRU ${JSON.stringify(stored)}, not ${JSON.stringify(ctx.druId)}`,
      {
        details: { field: 'id' },
      },
    )
  }
  const isNew = stored === undefined
  // The marker is read before the new identity replaces the incarnation it names.
  const openedClean = takeCleanCloseMarker(ctx)
  const previous = Number(ctx.meta.get(MetaKey.INCARNATION) ?? 0)
  if (ctx.inspect) {
    if (isNew) ctx.meta.set(MetaKey.DRU_ID, ctx.druId)
    return { incarnation: previous >= 1 ? previous : 1, isNew, previousOrigin: undefined, openedClean }
  }
  const previousOrigin = previous >= 1 ? formatOrigin(ctx.druId, previous) : undefined
  const taken = new Set<number>([previous])
  for (const origin of ctx.heads.keys()) {
    const o = parseOrigin(origin)
    if (o.druId === ctx.druId) taken.add(o.incarnation)
  }
  let next = newIncarnation(ctx.random)
  while (taken.has(next)) next = newIncarnation(ctx.random)
  ctx.db
    .transaction(() => {
      if (isNew) ctx.meta.set(MetaKey.DRU_ID, ctx.druId)
      if (previousOrigin) ctx.meta.set(MetaKey.PREVIOUS_ORIGIN, previousOrigin)
      ctx.meta.set(MetaKey.INCARNATION, next)
    })
    .immediate()
  return { incarnation: next, isNew, previousOrigin, openedClean }
}

/** Reads and (unless inspecting) removes the clean-close marker; true when it names the log's current end. */
function takeCleanCloseMarker(ctx: IdentityContext): boolean {
  const marker = ctx.meta.get(MetaKey.CLEAN_CLOSE)
  if (marker === undefined) return false
  if (!ctx.inspect) ctx.meta.delete(MetaKey.CLEAN_CLOSE)
  const incarnation = Number(ctx.meta.get(MetaKey.INCARNATION) ?? 0)
  if (!(incarnation >= 1)) return false
  return marker === cleanCloseToken(formatOrigin(ctx.druId, incarnation), ctx.heads)
}
