import type { DruEvent } from '@dru/core'
import { MemoryLog } from '@dru/testkit'
import { signerFor } from '../../src/index.js'

/**
 * testkit's in-memory log with the DRU's key at hand: `commit` appends one change signed
 * as the store would sign it. Sync's unit tests need the log port, not SQLite.
 */
export class SignedLog extends MemoryLog {
  readonly #sign: (hash: string) => Uint8Array

  constructor(druId: string, privateKeyPem: string) {
    super(druId)
    this.#sign = signerFor(privateKeyPem)
  }

  /** Appends one local change as one signed event. */
  commit(docId: string, change: Uint8Array): DruEvent {
    return this.append(docId, [change], this.#sign)[0]!
  }
}
