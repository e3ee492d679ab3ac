import { DruError, type DruEvent, type VersionVector } from '@dru/core'
import { MetaKey, type EventStore } from '@dru/store-sqlite'
import type { Logger } from '@dru/sync'
import type { LifecycleDriver } from './lifecycle-driver.js'
import type { DruMetrics } from './metrics.js'
import { ownWritesMissingAtOpen } from './stale-copy.js'

/**
 * Restore protection: a DRU whose database may be an old copy (restored from a backup, an
 * empty disk, or proven stale by its own signed events coming back) refuses writes until
 * its earlier events are back from a peer and verified. The flag lives in the log's meta
 * table (`restore_pending`), so a restart mid-restore keeps refusing.
 *
 * @module
 */

/** What this DRU held of its own writes when its process opened the database. */
export interface RestoreAtOpen {
  /** Start in restore mode (asked for, left pending by the last process, or a new DRU with peers). */
  readonly restore: boolean
  /** Heads of this DRU's own origins (any incarnation) at open. */
  readonly ownAtOpen: VersionVector
}

/**
 * Decides restore mode before sync starts, and persists it. A new database with peers
 * restores too: its own earlier events, if any DRU of its id ever wrote, are out there.
 */
export function restoreAtOpen(
  store: EventStore,
  druId: string,
  o: { peers: number; requested: boolean },
): RestoreAtOpen {
  const restore = o.requested || store.getMeta(MetaKey.RESTORE_PENDING) === 1 || (store.isNew && o.peers > 0)
  if (restore) store.setMeta(MetaKey.RESTORE_PENDING, 1)
  const prefix = `${druId}/`
  const ownAtOpen = Object.fromEntries(Object.entries(store.vv()).filter(([o]) => o.startsWith(prefix)))
  return { restore, ownAtOpen }
}

/** The lifecycle reached `active`: a pending restore is over, also for the next start. */
export function restoreFinished(store: EventStore): void {
  if (store.getMeta(MetaKey.RESTORE_PENDING) === 1 && !store.closed) store.setMeta(MetaKey.RESTORE_PENDING, 0)
}

/** What proved that this DRU started from an old copy of its database. */
export interface StaleCopyReport {
  /** An earlier origin of this DRU whose events written before this process started were missing here. */
  readonly origin: string
  /** Such events received so far from peers (all signed by this DRU's key). */
  readonly recovered: number
  /** When the first one arrived (ms). */
  readonly at: number
}

/** Options of {@link RestoreGuard}. */
export interface RestoreGuardOptions {
  readonly druId: string
  readonly store: EventStore
  readonly driver: LifecycleDriver
  readonly metrics: DruMetrics
  readonly log: Logger
  readonly now: () => number
  readonly ownAtOpen: VersionVector
  readonly openedAt: number
  /** Called when a stale copy turns restore mode on, so the lifecycle is re-assessed at once. */
  readonly reassess: () => void
}

/** Refuses writes while restoring, and turns restore mode on when a stale copy is proven. */
export class RestoreGuard {
  readonly #o: RestoreGuardOptions
  #staleCopy: StaleCopyReport | undefined

  constructor(options: RestoreGuardOptions) {
    this.#o = options
  }

  /** True while a restored or new DRU waits for its own earlier events. */
  get restoring(): boolean {
    return this.#o.driver.restoring
  }

  /** What proved this DRU started from an old copy, if anything did (for `/status`). */
  get staleCopy(): StaleCopyReport | undefined {
    return this.#staleCopy
  }

  /** Throws NOT_WRITABLE while restoring, unless the operator allows writes anyway. */
  assertWritable(allowWhileRestoring: boolean): void {
    if (this.#o.driver.restoring && !allowWhileRestoring) {
      throw new DruError(
        'NOT_WRITABLE',
        `DRU ${this.#o.druId} is restoring: writes wait until its earlier events are back from a peer (state ${this.#o.driver.lifecycle.state()}); see docs/RUNBOOK.md`,
      )
    }
  }

  /**
   * Restore mode on proof (see {@link ownWritesMissingAtOpen}): signed events of this DRU's
   * own earlier writes that its database did not hold when this process opened it. A peer's
   * vector or ack naming such events is a claim and changes nothing. Call it with stored
   * remote events only.
   */
  checkStaleCopy(events: readonly DruEvent[]): void {
    const { store, driver, log } = this.#o
    const missing = ownWritesMissingAtOpen(
      { druId: this.#o.druId, origin: store.origin, ownAtOpen: this.#o.ownAtOpen, openedAt: this.#o.openedAt },
      events,
    )
    const proof = missing[0]
    const n = missing.length
    if (!proof) return
    const first = this.#staleCopy === undefined
    this.#staleCopy = {
      origin: this.#staleCopy?.origin ?? proof.origin,
      recovered: (this.#staleCopy?.recovered ?? 0) + n,
      at: this.#staleCopy?.at ?? this.#o.now(),
    }
    if (!first) return
    this.#o.metrics.staleCopies.inc()
    if (driver.restoring) {
      log.warn('old copy: own events written before this start are coming back from peers (already restoring)', {
        origin: proof.origin,
        seq: proof.seq,
      })
      return
    }
    // This DRU already writes under a fresh origin, so nothing forks; but until its own
    // earlier writes are back, the application would read stale data: refuse writes as
    // for a restore until caught up and verified.
    store.setMeta(MetaKey.RESTORE_PENDING, 1)
    driver.restorePending()
    log.error(
      'stale copy detected: signed events of this DRU written before it started were missing from its database; restoring',
      {
        origin: proof.origin,
        seq: proof.seq,
        heldAtOpen: this.#o.ownAtOpen[proof.origin] ?? 0,
      },
    )
    this.#o.reassess()
  }
}
