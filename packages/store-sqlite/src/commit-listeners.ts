import type { CommitListener, CommitPhase, CommitSource, DruEvent } from '@dru/core'

/**
 * The listeners told of each commit (local or remote), by phase: every `derive` listener
 * (state derived from the log, such as materialised documents) runs before any `notify`
 * listener (sync, metrics), whatever the registration order. A listener that throws is
 * reported and does not stop the others: the commit has happened.
 *
 * @module
 */
export class CommitListeners {
  readonly #byPhase: Record<CommitPhase, CommitListener[]> = { derive: [], notify: [] }
  readonly #onError: (err: unknown) => void

  constructor(onError: (err: unknown) => void) {
    this.#onError = onError
  }

  /** Adds a listener; returns the function that removes it. */
  add(listener: CommitListener, phase: CommitPhase): () => void {
    const list = this.#byPhase[phase]
    list.push(listener)
    return () => {
      const i = list.indexOf(listener)
      if (i >= 0) list.splice(i, 1)
    }
  }

  /** Calls every listener with a committed batch (once per commit, never per event). */
  notify(events: readonly DruEvent[], source: CommitSource): void {
    for (const listener of [...this.#byPhase.derive, ...this.#byPhase.notify]) {
      try {
        listener(events, source)
      } catch (err) {
        this.#onError(err)
      }
    }
  }
}
