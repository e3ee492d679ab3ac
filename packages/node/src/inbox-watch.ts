import type { EventStore } from '@dru/store-sqlite'
import type { Logger } from '@dru/sync'
import { InboxWorker, type WorkerTimers } from './inbox-worker.js'
import type { DruMetrics } from './metrics.js'

/**
 * Connects a DRU's inbox to the runtime: counts and logs every handler failure, and (unless
 * `autoRetry` is off) starts the retry worker, woken after each remote commit and each
 * registration or operator action. Returns the worker (undefined without `autoRetry`): stop
 * it before the store closes.
 */
export function watchInbox(
  store: EventStore,
  options: { metrics: DruMetrics; log: Logger; now: () => number; autoRetry: boolean; timers?: WorkerTimers },
): InboxWorker | undefined {
  const { metrics, log } = options
  const inbox = store.inbox
  inbox.onAttempt((r) => {
    if (r.kind === 'retry') metrics.inboxRetries.inc({ handler: r.handler, outcome: r.ok ? 'done' : 'failed' })
    if (r.ok) return
    metrics.inboxHandlerFailures.inc({ handler: r.handler })
    const details = { handler: r.handler, origin: r.origin, seq: r.seq, error: r.error }
    if (r.next === 'dead') {
      metrics.inboxDeadLettered.inc({ handler: r.handler })
      log.error('inbox: handler used up its retries; the event is a dead letter (dru inbox list --state dead)', details)
    } else if (r.kind === 'ingest') {
      // Once per event; the retries that follow are counted, not logged, so a broken handler cannot flood the log.
      log.warn('inbox: handler failed; the event is stored and the handler will be retried', details)
    }
  })
  if (!options.autoRetry) return undefined
  const worker = new InboxWorker({
    inbox,
    now: options.now,
    log,
    ...(options.timers ? { timers: options.timers } : {}),
  })
  inbox.onWake(() => worker.wake())
  store.onCommit((_events, source) => {
    if (source === 'remote') worker.wake()
  })
  worker.wake()
  return worker
}
