import { DruError } from '@dru/core'

interface Waiter {
  readonly origin: string
  readonly seq: number
  readonly k: number
  readonly resolve: () => void
  readonly reject: (err: Error) => void
  readonly timer: NodeJS.Timeout
}

/**
 * Semi-sync waits: each resolves once `count(origin, seq)` — the number of distinct peers
 * whose acknowledged vectors cover the event — reaches its `k`, or rejects with ACK_TIMEOUT.
 * Acknowledged vectors come only from `ack` frames (and their persisted copies), never from
 * a peer's claims.
 */
export class AckWaiters {
  readonly #waiters = new Set<Waiter>()
  readonly #count: (origin: string, seq: number) => number

  constructor(count: (origin: string, seq: number) => number) {
    this.#count = count
  }

  wait(event: { origin: string; seq: number }, k: number, timeoutMs: number): Promise<void> {
    if (!event || typeof event.origin !== 'string' || !Number.isInteger(event.seq) || event.seq < 1) {
      return Promise.reject(new DruError('INVALID_ARGUMENT', 'waitForAcks needs an event { origin, seq }'))
    }
    if (!Number.isInteger(k) || k < 0)
      return Promise.reject(new DruError('INVALID_ARGUMENT', 'k must be a non-negative integer'))
    if (this.#count(event.origin, event.seq) >= k) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = {
        origin: event.origin,
        seq: event.seq,
        k,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(w)
          const have = this.#count(event.origin, event.seq)
          reject(
            new DruError(
              'ACK_TIMEOUT',
              `${event.origin}#${event.seq} was acknowledged by ${have} of ${k} peers within ${timeoutMs} ms; it stays committed and keeps replicating`,
              {
                details: { origin: event.origin, seq: event.seq, k, acked: have },
              },
            ),
          )
        }, timeoutMs),
      }
      this.#waiters.add(w)
    })
  }

  /** Settles every wait an ack just satisfied. */
  check(): void {
    for (const w of this.#waiters) {
      if (this.#count(w.origin, w.seq) < w.k) continue
      clearTimeout(w.timer)
      this.#waiters.delete(w)
      w.resolve()
    }
  }

  /** Rejects every pending wait (shutdown). */
  rejectAll(err: Error): void {
    for (const w of this.#waiters) {
      clearTimeout(w.timer)
      w.reject(err)
    }
    this.#waiters.clear()
  }
}
