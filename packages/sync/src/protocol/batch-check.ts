import type { KeyObject } from 'node:crypto'
import { DruError, parseOrigin, type DruEvent } from '@dru/core'
import { verifyEventSignature } from '../signatures.js'

/**
 * Checks a received batch before it is stored: per origin, its events are consecutive and
 * ascending, and the last one (the run's tip) carries a valid Ed25519 signature by the
 * origin's DRU key, which through the hash chain vouches for the whole run. Returns the
 * batch with every other signature dropped, so each stored signature is one we verified
 * (or our own) and whatever we forward later is sound. Throws OUT_OF_ORDER, UNKNOWN_ORIGIN
 * or BAD_SIGNATURE; checks nothing against the log (ingest does).
 */
export function checkRuns(
  batch: readonly DruEvent[],
  publicKeys: ReadonlyMap<string, KeyObject>,
): { events: DruEvent[]; tips: Map<string, DruEvent> } {
  const tips = new Map<string, DruEvent>()
  // A batch is runs of one origin: the map is read and written once per run, not per event.
  // (An origin enters it when its first run ends, so in the order of first appearance.)
  let origin: string | undefined
  let last: DruEvent | undefined
  for (const e of batch) {
    if (e.origin !== origin) {
      if (last !== undefined) tips.set(origin!, last)
      origin = e.origin
      last = tips.get(origin)
    }
    if (last !== undefined && e.seq !== last.seq + 1) {
      throw new DruError('OUT_OF_ORDER', `${e.origin}#${e.seq} follows #${last.seq} in one batch`, {
        details: { origin: e.origin, seq: e.seq },
      })
    }
    last = e
  }
  if (last !== undefined) tips.set(origin!, last)
  for (const [origin, tip] of tips) {
    const druId = parseOrigin(origin).druId
    const key = publicKeys.get(druId)
    if (!key)
      throw new DruError('UNKNOWN_ORIGIN', `no public key is configured for ${druId}; its events are refused`, {
        details: { origin },
      })
    if (tip.sig === undefined) {
      throw new DruError('BAD_SIGNATURE', `the run of ${origin} ends at #${tip.seq} without a signature`, {
        details: { origin, seq: tip.seq },
      })
    }
    if (!verifyEventSignature(tip.hash, tip.sig, key)) {
      throw new DruError('BAD_SIGNATURE', `${origin}#${tip.seq} is not signed by ${druId}`, {
        details: { origin, seq: tip.seq },
      })
    }
  }
  const events = batch.map((e) => (e.sig === undefined || tips.get(e.origin) === e ? e : stripSig(e)))
  return { events, tips }
}

function stripSig(e: DruEvent): DruEvent {
  return { origin: e.origin, seq: e.seq, hlc: e.hlc, docId: e.docId, change: e.change, prev: e.prev, hash: e.hash }
}
