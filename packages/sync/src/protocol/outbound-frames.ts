import { DruError, type DruEvent, type FoldedEnvelope, type ReplicaLog, type VersionVector } from '@dru/core'
import type { Frame } from '../frames.js'
import { MAX_EVENTS_PER_FRAME } from '../limits.js'
import type { Logger } from '../logger.js'
import type { SnapshotSource } from './session-config.js'

/**
 * What a session streams to its peer, as lazy generators over the log port: batches of
 * events it lacks, and the frames of a bootstrap. Memory stays bounded whatever the
 * backlog: the log is read page by page as the send window makes room.
 */

/** A stream frame: what goes out inside the unacknowledged window. */
export type Outgoing = Extract<Frame, { type: 'events' | 'snapshot' | 'folded' | 'bootstrap-end' }>

/**
 * Batches of what a peer at `from` lacks, each about maxBatchBytes and at most
 * MAX_EVENTS_PER_FRAME events, cut only after an event that carries a signature so every
 * origin's run ends verifiably. Origins where the peer is below our base are skipped (it
 * asks for a bootstrap). An origin's events after its last signed one are held back: the
 * peer would refuse the run (BAD_SIGNATURE, a quarantine). Only our own tip can be unsigned
 * when read — the log signs it before every page, except inside an application's open
 * transaction — and it goes with the next stream once signed.
 */
export function* signedBatches(
  log: ReplicaLog,
  from: VersionVector,
  maxBatchBytes: number,
): Generator<Outgoing, void, undefined> {
  let batch: DruEvent[] = []
  let bytes = 0
  // The batch as it was after the current origin's last signed event (or before its run began).
  let runOrigin: string | undefined
  let signedEnd = 0
  let signedBytes = 0
  /** Drops the current origin's unsigned tail from the batch. */
  const endRun = (): void => {
    batch.length = signedEnd
    bytes = signedBytes
  }
  for (const page of log.eventsMissing(from, { maxBatchBytes, pageSize: 512, belowBase: 'skip' })) {
    for (const e of page) {
      if (e.origin !== runOrigin) {
        endRun()
        runOrigin = e.origin
        signedEnd = batch.length
        signedBytes = bytes
      }
      batch.push(e)
      // The compact wire adds ~10 bytes per event (HLC as numbers, indices), a doc id at most once.
      bytes += e.change.byteLength + e.docId.length + 16
      if (e.sig === undefined) continue
      signedEnd = batch.length
      signedBytes = bytes
      if (bytes >= maxBatchBytes || batch.length >= MAX_EVENTS_PER_FRAME / 2) {
        yield { type: 'events', batch }
        batch = []
        bytes = 0
        signedEnd = 0
        signedBytes = 0
      }
    }
  }
  endRun()
  if (batch.length > 0) yield { type: 'events', batch }
}

/** What serving a bootstrap reads. */
export interface BootstrapServing {
  readonly log: ReplicaLog
  readonly snapshots: SnapshotSource
  readonly maxBatchBytes: number
  /** What the peer holds or has in flight, read when the first frame is asked for. */
  readonly known: () => VersionVector
  readonly peerId: string | undefined
  readonly logger: Logger
}

/**
 * Bootstrap of a peer below our compaction base: every stored document snapshot (the
 * change bytes), then per origin the envelopes of the folded events it lacks, up to the
 * base, in runs ending at signed events; then the end. The peer rebuilds and verifies
 * every event; events above the base follow as usual.
 */
export function* bootstrapFrames(s: BootstrapServing): Generator<Outgoing, void, undefined> {
  const { log, maxBatchBytes, peerId } = s
  const base = log.base()
  const known = s.known()
  const need = Object.keys(base)
    .filter((o) => (known[o] ?? 0) < base[o]!.seq)
    .sort()
  s.logger.info(`sync: bootstrapping ${peerId} from document snapshots (${need.length} origins below our base)`, {
    peer: peerId,
  })
  if (need.length > 0) {
    let after = ''
    for (;;) {
      const page = s.snapshots.page(after, maxBatchBytes)
      if (page.docs.length > 0) yield { type: 'snapshot', docs: page.docs }
      if (page.next === undefined) break
      after = page.next
    }
  }
  for (const origin of need) {
    const to = base[origin]!.seq
    let from = (known[origin] ?? 0) + 1
    let run: FoldedEnvelope[] = []
    let bytes = 0
    while (from <= to) {
      const page = log.folded(origin, from, 512)
      if (page.length === 0 || page[0]!.seq !== from) {
        throw new DruError(
          'NOT_SUPPORTED',
          `${origin}#${from} was compacted without the evidence a bootstrap needs (an older release); bootstrap ${peerId} from another peer`,
        )
      }
      for (const env of page) {
        if (env.seq > to) break
        run.push(env)
        bytes += env.docId.length + 120
        from = env.seq + 1
        if (env.sig && (bytes >= maxBatchBytes || run.length >= MAX_EVENTS_PER_FRAME / 2)) {
          yield { type: 'folded', envelopes: run }
          run = []
          bytes = 0
        }
      }
    }
    if (run.length > 0) yield { type: 'folded', envelopes: run }
  }
  yield { type: 'bootstrap-end' }
}
