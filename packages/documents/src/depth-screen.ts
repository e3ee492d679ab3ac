import * as A from '@automerge/automerge'
import { DruError, type DruEvent } from '@dru/core'
import { checkedChange } from './change-validation.js'
import { changeHeaderOf, storedChangeMakesObjects } from './change-header.js'
import type { AnyDoc } from './doc-cache.js'

/**
 * How deep objects may nest in a document, counted from the root, however many changes built
 * the nesting. One change may nest at most MAX_CHANGE_NESTING (256) levels, but a member can
 * build on its own deepest object change after change; past about 5,000 levels `toJS` and
 * `JSON.stringify` overflow the stack, and applying changes at about 8,000 traps inside
 * Automerge's WASM and stops the module for every document of the process. Real documents
 * stay far below this.
 */
export const MAX_DOCUMENT_DEPTH = 1000

/** Where a change's new objects would sit, decided before Automerge sees the change. */
export interface DepthScreen {
  /** Changes whose new objects all stay within MAX_DOCUMENT_DEPTH (and changes that make none), in order. */
  readonly ready: DruEvent[]
  /** Changes made inside an object this document does not show yet (it arrives with a dependency still missing). */
  readonly waiting: DruEvent[]
  /** Changes that would nest an object too deep, or inside an object their own history never had. */
  readonly refused: Array<{ readonly event: DruEvent; readonly cause: DruError }>
}

/** What the screen needs of a change: its actor, first op counter, dependencies and the objects it makes. */
interface Made {
  readonly actor: string
  readonly startOp: number
  readonly deps: readonly string[]
  readonly made: ReadonlyArray<{ readonly index: number; readonly obj: string }>
}

const NO_OBJECTS: Made = { actor: '', startOp: 0, deps: [], made: [] }

function madeBy(e: DruEvent): Made {
  const checked = checkedChange(e.change)
  if (checked) return checked.made.length === 0 ? NO_OBJECTS : checked
  // Most changes make no object: their action column says so without the header (a cold load).
  if (storedChangeMakesObjects(e.change) === false) return NO_OBJECTS
  try {
    return changeHeaderOf(e.change, { ignoreChecksum: true })
  } catch {
    // Bytes that do not read are Automerge's to refuse (tolerant-apply.ts).
    return NO_OBJECTS
  }
}

const WAIT = -1
const NEVER = -2

/**
 * Screens `events` (in the order they would be applied) against `doc` for the depth of the
 * objects they make. An object's depth never changes (Automerge objects do not move), so the
 * depth of the object a change makes something in is read wherever it is known: made earlier
 * in this screen, shown by the document now (its path), or, for one deleted since, shown by the
 * document as of the change's own dependencies — the state its writer saw, the same on every
 * DRU. A change whose dependencies the document lacks and whose parent it does not show waits
 * (Automerge would hold it and apply it later, unseen); one whose parent is missing even as of
 * its own dependencies is refused, as Automerge would refuse it.
 */
export function screenDepth(doc: AnyDoc, events: readonly DruEvent[]): DepthScreen {
  const ready: DruEvent[] = []
  const waiting: DruEvent[] = []
  const refused: Array<{ event: DruEvent; cause: DruError }> = []
  const backend = A.getBackend(doc)
  /** Depth of each object made by a change screened ready here, by its id. */
  const madeHere = new Map<string, number>()
  const visibleDepth = (obj: string, heads?: string[]): number | undefined => {
    try {
      return backend.objInfo(obj, heads).path?.length
    } catch {
      return undefined
    }
  }
  const depthOf = (obj: string, deps: readonly string[]): number => {
    if (obj === '_root') return 0
    const here = madeHere.get(obj)
    if (here !== undefined) return here
    const now = visibleDepth(obj)
    if (now !== undefined) return now
    if (!deps.every((h) => backend.getChangeByHash(h) !== null)) return WAIT
    return visibleDepth(obj, [...deps]) ?? NEVER
  }
  let pass = [...events]
  // Later passes pick up changes made inside objects that an earlier change of the same
  // batch makes but that came after them in the order given.
  for (let round = 0; round < 4 && pass.length > 0; round++) {
    const next: DruEvent[] = []
    for (const e of pass) {
      const m = madeBy(e)
      if (m.made.length === 0) {
        ready.push(e)
        continue
      }
      const depths: Array<[string, number]> = []
      const local = new Map<string, number>()
      let verdict: number | undefined
      for (const { index, obj } of m.made) {
        const parent = local.get(obj) ?? depthOf(obj, m.deps)
        if (parent < 0) {
          verdict = parent
          break
        }
        const id = `${m.startOp + index}@${m.actor}`
        local.set(id, parent + 1)
        depths.push([id, parent + 1])
      }
      if (verdict === WAIT) next.push(e)
      else if (verdict === NEVER)
        refused.push({ event: e, cause: tooDeep(e, 'inside an object its history does not have') })
      else {
        let deepest = 0
        for (const [, d] of depths) if (d > deepest) deepest = d
        if (deepest > MAX_DOCUMENT_DEPTH) {
          refused.push({ event: e, cause: tooDeep(e, `${deepest} levels deep; at most ${MAX_DOCUMENT_DEPTH}`) })
        } else {
          for (const [id, d] of depths) madeHere.set(id, d)
          ready.push(e)
        }
      }
    }
    if (next.length === pass.length) break
    pass = next
  }
  for (const e of pass) waiting.push(e)
  return { ready, waiting, refused }
}

function tooDeep(e: DruEvent, where: string): DruError {
  return new DruError('INVALID_EVENT', `${e.origin}#${e.seq} makes an object ${where} in ${e.docId}`, {
    details: { origin: e.origin, seq: e.seq, docId: e.docId },
  })
}

/**
 * Applies `events` to `doc` through `apply`, handing Automerge only what the screen lets
 * through, and screens again what it held back after each apply (an object a change is made
 * in may show once the batch's other changes are in), a few rounds at most. Returns the
 * document, the events applied and those still held back.
 */
export function applyScreened(
  doc: AnyDoc,
  events: readonly DruEvent[],
  apply: (doc: AnyDoc, ready: readonly DruEvent[]) => AnyDoc,
  refuse: (e: DruEvent, cause: DruError) => void,
): { doc: AnyDoc; applied: DruEvent[]; waiting: DruEvent[] } {
  const applied: DruEvent[] = []
  let waiting: readonly DruEvent[] = events
  for (let round = 0; round < 4 && waiting.length > 0; round++) {
    const screen = screenDepth(doc, waiting)
    for (const { event, cause } of screen.refused) refuse(event, cause)
    waiting = screen.waiting
    if (screen.ready.length === 0) break
    doc = apply(doc, screen.ready)
    for (const e of screen.ready) applied.push(e)
  }
  return { doc, applied, waiting: [...waiting] }
}
