import * as A from '@automerge/automerge'
import type { DruEvent } from '@dru/core'
import type { AnyDoc } from './doc-cache.js'
import { changeHeaderOf } from './change-header.js'
import type { RejectedChanges } from './rejected-changes.js'

/**
 * Builds a document from `base()` plus `events`' changes, skipping each change Automerge
 * refuses (handing it to `reject`) and those already rejected. Automerge leaves a document
 * broken inside after refusing a change (a later call on it panics), so a refusal discards
 * the attempt and starts again from a fresh `base()` without that change: the cost of a bad
 * change is a rebuild, paid once (it is rejected from then on). Patches reach
 * `patchCallback` only from the attempt that is kept.
 */
export function applyTolerant(
  base: () => AnyDoc,
  events: readonly DruEvent[],
  rejected: RejectedChanges,
  options: { patchCallback?: (patches: A.Patch[]) => void; reject: (e: DruEvent, cause: unknown) => void },
): AnyDoc {
  let usable = events.filter((e) => !rejected.has(e))
  for (;;) {
    // The kept attempt's patches, batch by batch as Automerge reported them (never joined:
    // one apply may report more patches than a spread's arguments can hold).
    const batches: A.Patch[][] = []
    const collect = { patchCallback: (p: A.Patch[]) => void batches.push(p) }
    let doc = base()
    try {
      doc =
        usable.length > 0
          ? A.applyChanges(
              doc,
              usable.map((e) => e.change),
              collect,
            )[0]
          : doc
      report(batches, options.patchCallback)
      return doc
    } catch {
      discard(doc)
    }
    // Find the first change it refuses, one at a time on a fresh document, each after its
    // dependencies: a change Automerge holds back for a missing dependency is applied inside
    // a later call, and that call's refusal would blame the wrong change.
    batches.length = 0
    doc = base()
    let bad: DruEvent | undefined
    for (const e of causalOrder(usable)) {
      try {
        doc = A.applyChanges(doc, [e.change], collect)[0]
      } catch (cause) {
        bad = e
        options.reject(e, cause)
        break
      }
    }
    if (!bad) {
      // Refused together, accepted one by one: keep this one.
      report(batches, options.patchCallback)
      return doc
    }
    discard(doc)
    usable = usable.filter((e) => e !== bad)
  }
}

/**
 * The events ordered so that each change comes after the changes it depends on (among
 * these), ties broken by origin and seq: the same order on every DRU. Bytes that do not
 * decode keep their place among the roots (Automerge will refuse them where they stand).
 */
function causalOrder(events: readonly DruEvent[]): DruEvent[] {
  const byHash = new Map<string, DruEvent>()
  const deps = new Map<DruEvent, readonly string[]>()
  for (const e of events) {
    try {
      const d = changeHeaderOf(e.change, { ignoreChecksum: true })
      byHash.set(d.hash, e)
      deps.set(e, d.deps)
    } catch {
      deps.set(e, [])
    }
  }
  const key = (e: DruEvent) => `${e.origin}\u0000${String(e.seq).padStart(16, '0')}`
  const out: DruEvent[] = []
  const seen = new Set<DruEvent>()
  // Depth-first with an explicit stack: a tail may hold a chain of thousands of changes.
  for (const root of [...events].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))) {
    if (seen.has(root)) continue
    seen.add(root)
    const stack: Array<{ e: DruEvent; next: number }> = [{ e: root, next: 0 }]
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!
      const ds = deps.get(top.e) ?? []
      if (top.next < ds.length) {
        const dep = byHash.get(ds[top.next++]!)
        if (dep && !seen.has(dep)) {
          seen.add(dep)
          stack.push({ e: dep, next: 0 })
        }
        continue
      }
      stack.pop()
      out.push(top.e)
    }
  }
  return out
}

function report(batches: readonly A.Patch[][], patchCallback: ((patches: A.Patch[]) => void) | undefined): void {
  if (patchCallback) for (const p of batches) patchCallback(p)
}

/** Frees a document that may be broken inside; freeing must not throw on top of the refusal. */
function discard(doc: AnyDoc): void {
  try {
    A.free(doc)
  } catch {
    // already unusable
  }
}
