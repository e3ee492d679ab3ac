import { violation } from './session-rules.js'

/**
 * The probes and tree probes a session sent and still awaits answers to. An answer to
 * anything else is a PROTOCOL_VIOLATION: a peer may not push reports we never asked for.
 */
export class PendingProbes {
  readonly #probes = new Set<number>()
  readonly #treeProbes = new Set<number>()

  /** A probe with `id` went out. */
  asked(id: number): void {
    this.#probes.add(id)
  }

  /** A tree probe with `id` went out. */
  askedTree(id: number): void {
    this.#treeProbes.add(id)
  }

  /** True while probe `id` awaits its report. */
  awaiting(id: number): boolean {
    return this.#probes.has(id)
  }

  /** Report `id` arrived: settles its probe; a PROTOCOL_VIOLATION when we sent none. */
  answered(id: number): void {
    if (!this.#probes.delete(id)) throw violation(`report ${id} answers no probe we sent`)
  }

  /** Tree report `id` arrived: settles its tree probe; a PROTOCOL_VIOLATION when we sent none. */
  treeAnswered(id: number): void {
    if (!this.#treeProbes.delete(id)) throw violation(`tree-report ${id} answers no tree-probe we sent`)
  }

  /** Forgets a probe given up on (its late answer is then a violation, like any unasked report). */
  forget(id: number): void {
    this.#probes.delete(id)
    this.#treeProbes.delete(id)
  }
}
