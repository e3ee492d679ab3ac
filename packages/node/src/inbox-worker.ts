import type { Logger } from '@dru/sync'
import type { Inbox } from '@dru/store-sqlite'

/** The timer functions the worker uses; injectable so tests drive time by hand. */
export interface WorkerTimers {
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export interface InboxWorkerOptions {
  readonly inbox: Inbox
  readonly now: () => number
  readonly log: Logger
  readonly timers?: WorkerTimers
  /** Longest sleep before looking again even with nothing due (a wall clock set back must not strand retries). Default 60 s. */
  readonly maxSleepMs?: number
}

const realTimers: WorkerTimers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms)
    t.unref() // retries never keep a process alive on their own
    return t
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
}

/**
 * Runs the inbox's due retries on one timer: it sleeps until the earliest retry is due,
 * runs at most the policy's `batch` of them in one turn (each in its own transaction), and
 * gives the event loop a turn before the next. An entry is tried at most once per turn, and
 * a failed one is due again only when its backoff says so, so a failing handler never spins.
 */
export class InboxWorker {
  readonly #inbox: Inbox
  readonly #now: () => number
  readonly #log: Logger
  readonly #timers: WorkerTimers
  readonly #maxSleepMs: number
  #timer: unknown
  #timerAt: number | undefined
  #stopped = false
  /** Turns taken (for tests: a count, not a duration). */
  turns = 0

  constructor(options: InboxWorkerOptions) {
    this.#inbox = options.inbox
    this.#now = options.now
    this.#log = options.log
    this.#timers = options.timers ?? realTimers
    this.#maxSleepMs = options.maxSleepMs ?? 60_000
  }

  /** Looks again at what is due (after a commit that may have recorded failures, a registration, an operator's action). */
  wake(): void {
    if (this.#stopped) return
    let due: number | undefined
    try {
      due = this.#inbox.nextDue()
    } catch (err) {
      return this.#failed(err)
    }
    const now = this.#now()
    const at = due === undefined ? now + this.#maxSleepMs : Math.min(Math.max(due, now), now + this.#maxSleepMs)
    // Already set to fire no later: keep it (a commit per batch must not reset the timer each time).
    if (this.#timerAt !== undefined && this.#timerAt <= at) return
    this.#schedule(at - now)
  }

  stop(): void {
    this.#stopped = true
    this.#clear()
  }

  #schedule(ms: number): void {
    this.#clear()
    this.#timerAt = this.#now() + ms
    this.#timer = this.#timers.setTimeout(() => this.#turn(), ms)
  }

  #clear(): void {
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer)
    this.#timer = undefined
    this.#timerAt = undefined
  }

  #turn(): void {
    this.#timer = undefined
    this.#timerAt = undefined
    if (this.#stopped) return
    this.turns++
    let report
    try {
      report = this.#inbox.runDue()
    } catch (err) {
      return this.#failed(err)
    }
    if (report.moreDue) this.#schedule(0)
    else this.wake()
  }

  /** The database failed (a full disk, a closed store): look again after one backoff, never in a loop. */
  #failed(err: unknown): void {
    if ((err as { code?: string })?.code === 'CLOSED') return this.stop()
    this.#log.error('inbox: retry worker failed; trying again later', {
      error: (err as Error)?.message ?? String(err),
      code: (err as { code?: string })?.code,
    })
    this.#schedule(this.#inbox.policy.backoffMs)
  }
}
