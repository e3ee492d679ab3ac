import { SIGN_EVERY_BYTES, SIGN_EVERY_EVENTS, type DruEvent } from '@dru/core'

/**
 * The longest unsigned run of own events a commit leaves: tighter than the SIGN_EVERY_*
 * bound a single commit must meet, so frames of a burst of small commits run on at most
 * this far past the sender's batch size. One signature per 256 commits costs ~0.1 µs each.
 */
export const RUN_EVENTS = Math.min(256, SIGN_EVERY_EVENTS)
export const RUN_BYTES = Math.min(64 << 10, SIGN_EVERY_BYTES)

/**
 * When this DRU's own events get their Ed25519 signatures. A signature on an event vouches
 * for its whole chain back to the previous signed one (each hash covers `prev`), and a
 * receiver checks only the last signature of each origin's run in a frame. So a local commit
 * is stored unsigned, and the tip of the unsigned run is signed once, for every commit since
 * the last signature:
 *
 * - soon after, in one coalesced task (`setImmediate`);
 * - at once whenever something needs it first: before the log is read for sending
 *   (`eventsMissing`), before a compaction floor is chosen, at close;
 * - inside the commit, when the run since the last signature reaches {@link RUN_EVENTS}
 *   events or {@link RUN_BYTES} bytes, so a sender can still cut a burst of commits into
 *   frames near its batch size (a frame ends only at a signed event) and the unsigned tail
 *   stays bounded;
 * - at the next open, for a tail a crash left unsigned (`signOwnHistory`, which follows the
 *   same spacing).
 *
 * An unsigned own tail is therefore not a fault: it is "not yet signed", and no frame can end
 * on it because the sender's reads sign it first.
 *
 * @module
 */

/** Where the signer writes: a signature for the stored own event at `seq`. */
export type StoreSignature = (origin: string, seq: number, sig: Uint8Array) => void

/** Events and bytes since the last signed event of the current origin. */
interface RunSinceSignature {
  readonly events: number
  readonly bytes: number
}

/** The signing plan of one commit: its events (some signed inline) and the run after it. */
export interface SignedCommit {
  readonly events: DruEvent[]
  readonly run: RunSinceSignature
}

export class DeferredSigner {
  readonly #sign: (hash: string) => Uint8Array
  readonly #store: StoreSignature
  readonly #onError: (err: unknown) => void
  /** Whether a flush may write now (false inside a transaction or after close). */
  readonly #canWrite: () => boolean
  #run: RunSinceSignature = { events: 0, bytes: 0 }
  /** The newest own event, when it is stored without a signature. */
  #tip: { origin: string; seq: number; hash: string } | undefined
  #scheduled: NodeJS.Immediate | undefined

  constructor(parts: {
    sign: (hash: string) => Uint8Array
    store: StoreSignature
    onError: (err: unknown) => void
    canWrite: () => boolean
  }) {
    this.#sign = parts.sign
    this.#store = parts.store
    this.#onError = parts.onError
    this.#canWrite = parts.canWrite
  }

  /** True when the newest own event is stored without a signature yet. */
  get pending(): boolean {
    return this.#tip !== undefined
  }

  /**
   * Signs, inside the commit, the events at which the run since the last signature reaches
   * RUN_EVENTS or RUN_BYTES; the commit's last event is otherwise left to {@link flush}.
   * Changes no state: {@link committed} takes the plan once the transaction has committed.
   */
  plan(pending: readonly DruEvent[]): SignedCommit {
    let { events: count, bytes } = this.#run
    const events = pending.map((e) => {
      count++
      bytes += e.change.byteLength
      if (count < RUN_EVENTS && bytes < RUN_BYTES) return e
      count = 0
      bytes = 0
      return { ...e, sig: this.#sign(e.hash) }
    })
    return { events, run: { events: count, bytes } }
  }

  /** Records a committed plan: its last event, if unsigned, is the tip to sign soon. */
  committed(commit: SignedCommit): void {
    const top = commit.events[commit.events.length - 1]
    if (!top) return
    this.#run = commit.run
    this.#tip = top.sig === undefined ? { origin: top.origin, seq: top.seq, hash: top.hash } : undefined
    if (this.#tip && !this.#scheduled) {
      this.#scheduled = setImmediate(() => {
        this.#scheduled = undefined
        try {
          this.flush()
        } catch (err) {
          // The tip stays pending: the next read for sending, or the next open, signs it.
          this.#onError(err)
        }
      })
      // A process that exits before this runs leaves the tail to the next open.
      this.#scheduled.unref()
    }
  }

  /** Signs the unsigned tip now, if there is one and a write is possible. */
  flush(): void {
    const tip = this.#tip
    if (!tip || !this.#canWrite()) return
    this.#store(tip.origin, tip.seq, this.#sign(tip.hash))
    this.#tip = undefined
    this.#run = { events: 0, bytes: 0 }
  }

  /** Cancels the coalesced task (the store is closing; it flushed first). */
  stop(): void {
    if (this.#scheduled) clearImmediate(this.#scheduled)
    this.#scheduled = undefined
  }
}

/** Runs `before` ahead of every page `pages` yields (a lazy generator reads at each `next`). */
export function* signedFirst<T>(
  pages: Generator<T, void, undefined>,
  before: () => void,
): Generator<T, void, undefined> {
  for (;;) {
    before()
    const next = pages.next()
    if (next.done) return
    yield next.value
  }
}
