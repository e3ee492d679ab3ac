import type { LogSummary, VersionVector } from '@dru/core'

/**
 * The peer's summary from its latest vv, kept so a verification right after a session opened
 * need not ask again (`SyncNode.probe` with `recentMs`): with both sides' vectors as they were
 * then, to tell whether anything moved since, and the callers waiting for the first one.
 */
export class LatestSummary {
  #last: { summary: LogSummary; at: number; ours: string; theirs: string } | undefined
  #received = false
  #ended = false
  readonly #waiters: Array<() => void> = []

  /** The peer's vv arrived at `at`, when we held `ours` and knew it to hold `theirs`. */
  received(summary: LogSummary, at: number, ours: VersionVector, theirs: VersionVector): void {
    this.#last = { summary, at, ours: vvKey(ours), theirs: vvKey(theirs) }
    this.#received = true
    this.#wake()
  }

  /** The session closed: nobody waits any more. */
  ended(): void {
    this.#ended = true
    this.#wake()
  }

  /** Resolves once a vv arrived, or the session closed. */
  first(): Promise<void> {
    if (this.#received || this.#ended) return Promise.resolve()
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  /**
   * The summary, if it came at most `maxAgeMs` before `now` and neither `ours` nor `theirs`
   * moved since: then it is what a probe asked now would answer, up to the peer's own news
   * of that moment (which a probe's answer could also miss by the time it is read).
   */
  recent(now: number, maxAgeMs: number, ours: VersionVector, theirs: VersionVector): LogSummary | undefined {
    const last = this.#last
    if (this.#ended || !last || now - last.at > maxAgeMs) return undefined
    if (vvKey(ours) !== last.ours || vvKey(theirs) !== last.theirs) return undefined
    return last.summary
  }

  #wake(): void {
    for (const resolve of this.#waiters.splice(0)) resolve()
  }
}

/** A vector as text, to tell cheaply whether it moved. */
function vvKey(vv: VersionVector): string {
  return Object.keys(vv)
    .sort()
    .map((o) => `${o}:${vv[o]}`)
    .join(',')
}
