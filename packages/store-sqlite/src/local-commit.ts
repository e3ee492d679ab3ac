import type Database from 'better-sqlite3'
import {
  DruError,
  GENESIS_HASH,
  MAX_CHANGE_BYTES,
  encodeHlc,
  parseDocId,
  sealEventFields,
  type DruEvent,
  type HlcClock,
  type Origin,
  type WallClock,
} from '@dru/core'
import type { ChainHeads } from './chain-heads.js'
import type { CommitListeners } from './commit-listeners.js'
import type { DeferredSigner, SignedCommit } from './deferred-signing.js'
import type { EventInserter } from './event-inserter.js'
import type { LogStatements } from './statements.js'
import type { StoreTx } from './store-options.js'

/**
 * The local write path (the outbox): runs the application's statements and the events it
 * appends in one SQLite transaction. Each appended change is checked, stamped by the clock
 * and sealed onto this process's chain; the commit's tip is signed per deferred-signing.ts;
 * the rows, the new head and the application's statements commit together or not at all, and
 * a failed or empty transaction consumes no seq. After the commit the head moves in memory
 * and the commit listeners run.
 *
 * @module
 */

/** What the local write path works with (the store's parts, shared with the rest of it). */
export interface LocalCommitParts {
  readonly db: Database.Database
  readonly origin: Origin
  readonly clock: HlcClock
  readonly now: WallClock
  readonly stmt: LogStatements
  readonly chain: ChainHeads
  readonly inserter: EventInserter
  readonly listeners: CommitListeners
  readonly signer: DeferredSigner | undefined
}

export class LocalCommitter {
  /** The store's parts this path works with. */
  readonly #p: LocalCommitParts

  constructor(parts: LocalCommitParts) {
    this.#p = parts
  }

  /** See {@link EventStore.transact} (which checks that the store is usable first). */
  transact<T>(fn: (tx: StoreTx) => T): { result: T; events: DruEvent[] } {
    const pending: DruEvent[] = []
    const head = this.#p.chain.heads.get(this.#p.origin)
    let seq = head?.seq ?? 0
    let prev = head?.hash ?? GENESIS_HASH
    let open = true
    let signed: SignedCommit | undefined
    const tx: StoreTx = {
      db: this.#p.db,
      append: (docId, change) => {
        // A handle kept past its transaction (an async continuation) must not append to nothing.
        if (!open)
          throw new DruError(
            'INVALID_ARGUMENT',
            'this transaction has ended: its tx cannot be used after transact() returned',
          )
        parseDocId(docId)
        if (!(change instanceof Uint8Array)) throw new DruError('INVALID_ARGUMENT', 'change must be a Uint8Array')
        if (change.byteLength > MAX_CHANGE_BYTES) {
          throw new DruError(
            'INVALID_ARGUMENT',
            `change for ${docId} is ${change.byteLength} bytes; the limit is ${MAX_CHANGE_BYTES}`,
          )
        }
        // Built here from checked parts, so it skips validateEvent (a hot path).
        const event = sealEventFields(this.#p.origin, seq + 1, encodeHlc(this.#p.clock.tick()), docId, change, prev)
        seq = event.seq
        prev = event.hash
        pending.push(event)
        return event
      },
    }
    const run = (): T => {
      const result = fn(tx)
      if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
        // Its continuation will find the transaction ended; that failure is ours to absorb.
        ;(result as unknown as PromiseLike<unknown>).then(undefined, () => undefined)
        throw new DruError(
          'ASYNC_CHANGE',
          'transact() callbacks must be synchronous (SQLite transactions cannot span an await); nothing was committed',
        )
      }
      if (pending.length > 0) {
        // The commit's tip is signed soon after it, with every commit before it (deferred-signing.ts).
        if (this.#p.signer) {
          signed = this.#p.signer.plan(pending)
          for (let i = 0; i < pending.length; i++) pending[i] = signed.events[i]!
        }
        const at = this.#p.now()
        for (const e of pending) this.#p.inserter.insert(e, at)
        this.#p.inserter.flush()
      }
      return result
    }
    let result: T
    try {
      result = this.#p.inserter.commit(run)
    } finally {
      open = false
    }
    if (pending.length > 0) {
      const top = pending[pending.length - 1]!
      this.#p.chain.heads.set(this.#p.origin, { seq: top.seq, hash: top.hash, hlc: top.hlc })
      this.#p.chain.changed()
      if (signed) this.#p.signer!.committed(signed)
      this.#p.listeners.notify(pending, 'local')
    }
    return { result, events: pending }
  }
}
