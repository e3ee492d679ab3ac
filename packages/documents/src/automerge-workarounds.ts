import * as A from '@automerge/automerge'
import type { AnyDoc } from './doc-cache.js'
import { hasConflictedCounter, type ConflictsReader } from './conflict-scan.js'

/**
 * Works around an Automerge materialisation bug (seen in 3.1, still in 3.5): after some
 * applies the JS view shows a stale value although the stored ops are right (a fresh load
 * shows the right one).
 *
 * When a counter that has concurrent values is incremented (by a local change, or in a
 * batch of applied changes that also makes it conflicted), the view may show the losing
 * counter's value. Patches do not always report it (a batch may emit no patch for an
 * increment of a conflicted counter), so a cached document once seen with a conflicted
 * counter is rebuilt after every later apply (`CachedDoc.counterConflict`).
 *
 * Automerge 3.1 also kept a deleted value in the view after a batch holding a delete and a
 * concurrent put of the same key (only a `conflict` patch reported), so every batch with a
 * `conflict` patch used to be rebuilt. Automerge 3.5 shows the right value (the first
 * regression listed below passes without the rebuild, and so does the convergence property
 * at 1,500 runs), and that rebuild cost a sixth of a partition heal's materialisation
 * (concurrent puts report conflicts): it is gone.
 *
 * Collect the patches of an apply, then {@link StaleViewRepair.repair} rebuilds the view
 * from the document when they touched a conflicted counter. Conflicted counters are rare, so
 * this is cheap overall. Found by the convergence property; each case is a
 * regression in test/convergence/convergence.test.ts ("regressions found by the convergence
 * property"):
 * - "a batch with a delete and a concurrent put of one key (Automerge view kept the deleted value)"
 * - "a remote increment of a counter conflicted earlier, with no patch reported (Automerge view kept the old value)"
 * - "a batch that makes a counter conflicted and increments the winner (Automerge view kept the loser)"
 * - "local increment of a conflicted counter (Automerge view showed the losing counter)"
 *
 * Drop this once Automerge fixes its view and those four still pass without it.
 */
export class StaleViewRepair {
  #paths: Array<Array<string | number>> | undefined

  /** True when a collected patch touched a field whose concurrent values include a counter (set by `repair`). */
  hit = false

  /** A `patchCallback`: keeps the paths of increments, counters and conflicts. */
  readonly collect = (patches: A.Patch[]): void => {
    for (const p of patches) {
      if (p.action === 'inc' || p.action === 'conflict' || (p.action === 'put' && p.value instanceof A.Counter))
        (this.#paths ??= []).push(p.path)
    }
  }

  /**
   * Returns `doc`, or a rebuilt copy (freeing `doc`) when a patch touched a conflicted
   * counter, or `force` (the document is known to hold one). `read` reads `doc`'s conflicts.
   */
  repair(doc: AnyDoc, actor: string, force = false, read?: ConflictsReader): AnyDoc {
    this.hit = this.#paths?.some((path) => hasConflictedCounter(doc, path, read)) ?? false
    if (!this.hit && !force) return doc
    const rebuilt = A.load(A.save(doc), { actor })
    A.free(doc)
    return rebuilt
  }
}
