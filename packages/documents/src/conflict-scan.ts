import * as A from '@automerge/automerge'
import { canonicalValue } from './canonical.js'

export type Path = Array<string | number>

/** Concurrent values found at one field. */
export interface FoundConflict {
  readonly path: Path
  /** Sorted op ids: the identity of this conflict (with doc and path). */
  readonly opIds: readonly string[]
  /** Canonical value per op id. */
  readonly values: ReadonlyMap<string, unknown>
  /** Live values per op id (for writing one back). */
  readonly raw: ReadonlyMap<string, unknown>
  /** The value the document shows at the field (Automerge's pick, the same on every DRU), canonical. */
  readonly visible: unknown
}

/**
 * The paths of the patches that report a conflicted field (`conflict` patches and `put` with
 * `conflict: true`), each once, collected patch batch by patch batch. Only the paths are
 * kept: an apply may report hundreds of thousands of patches (one per key of a large map),
 * and holding or concatenating them all is neither needed nor safe (a spread of that many
 * arguments overflows the stack).
 */
export class ConflictedPaths {
  readonly #paths = new Map<string, Path>()

  /** A `patchCallback`, or a part of one. */
  readonly add = (patches: readonly A.Patch[]): void => {
    for (const p of patches) {
      if (p.action === 'conflict' || (p.action === 'put' && (p as { conflict?: boolean }).conflict)) {
        this.#paths.set(JSON.stringify(p.path), [...p.path])
      }
    }
  }

  /** The paths collected so far, in the order first reported. */
  paths(): Path[] {
    return [...this.#paths.values()]
  }
}

/** The object that holds the field at `path`, or undefined when it no longer exists. */
export function parentOf(doc: unknown, path: readonly (string | number)[]): object | undefined {
  let obj: unknown = doc
  for (const p of path.slice(0, -1)) {
    if (obj === null || typeof obj !== 'object') return undefined
    obj = (obj as Record<string | number, unknown>)[p]
  }
  return obj !== null && typeof obj === 'object' ? (obj as object) : undefined
}

/**
 * Reads the concurrent values at `path`. Returns undefined when the field holds one
 * value, or several that are equal (two DRUs writing the same value is no conflict to
 * review: it happens when both resolve a conflict the same way).
 */
export function conflictAt(
  doc: A.Doc<unknown>,
  path: Path,
  read: ConflictsReader = readConflicts,
): FoundConflict | undefined {
  const parent = parentOf(doc, path)
  const prop = path[path.length - 1]
  if (parent === undefined || prop === undefined) return undefined
  const found = read(parent, prop, path)
  if (!found) return undefined
  const opIds = Object.keys(found).sort()
  if (opIds.length < 2) return undefined
  const values = new Map<string, unknown>()
  const raw = new Map<string, unknown>()
  for (const id of opIds) {
    raw.set(id, found[id])
    values.set(id, canonicalValue(found[id]))
  }
  const distinct = new Set([...values.values()].map((v) => JSON.stringify(v)))
  if (distinct.size < 2) return undefined
  return { path, opIds, values, raw, visible: canonicalValue((parent as Record<string | number, unknown>)[prop]) }
}

/** Reads the concurrent values of `prop` in `parent` (the field at `path`); undefined when Automerge cannot. */
export type ConflictsReader = (
  parent: object,
  prop: string | number,
  path: readonly (string | number)[],
) => A.Conflicts | undefined

function readConflicts(parent: object, prop: string | number): A.Conflicts | undefined {
  try {
    return A.getConflicts(parent as A.Doc<unknown>, prop)
  } catch {
    return undefined
  }
}

/**
 * A {@link ConflictsReader} that asks Automerge once per path: an apply checks the same
 * conflicted paths for counters (automerge-workarounds.ts) and then for conflicts. Valid for
 * one document object only: a rebuilt view needs a new one.
 */
export function rememberedConflicts(): ConflictsReader {
  const seen = new Map<string, A.Conflicts | undefined>()
  return (parent, prop, path) => {
    const key = JSON.stringify(path)
    if (seen.has(key)) return seen.get(key)
    const found = readConflicts(parent, prop)
    seen.set(key, found)
    return found
  }
}

/** True when the field at `path` holds several concurrent values and one of them is a counter. */
export function hasConflictedCounter(
  doc: unknown,
  path: readonly (string | number)[],
  read: ConflictsReader = readConflicts,
): boolean {
  const parent = parentOf(doc, path)
  const prop = path[path.length - 1]
  if (parent === undefined || prop === undefined) return false
  const c = read(parent, prop, path)
  return c !== undefined && Object.keys(c).length > 1 && Object.values(c).some((v) => v instanceof A.Counter)
}

/** The current (winning) value at `path`, canonical, or null when absent. */
export function valueAt(doc: unknown, path: Path): unknown {
  const parent = parentOf(doc, path)
  const prop = path[path.length - 1]
  if (parent === undefined || prop === undefined) return null
  const v = (parent as Record<string | number, unknown>)[prop]
  return v === undefined ? null : canonicalValue(v)
}

/** A copy of a live value that can be assigned into a document (Automerge refuses to re-insert its own objects). */
export function writable(value: unknown): unknown {
  if (value instanceof A.Counter) return new A.Counter(value.value)
  if (A.isImmutableString(value)) return new A.ImmutableString(value.toString())
  if (value instanceof Date) return new Date(value.getTime())
  if (value instanceof Uint8Array) return new Uint8Array(value)
  if (Array.isArray(value)) return value.map(writable)
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const k of Object.keys(value)) out[k] = writable((value as Record<string, unknown>)[k])
    return out
  }
  return value
}
