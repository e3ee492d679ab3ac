import { pino } from 'pino'
import { DEFAULT_RAMP, DruError, parseOrigin } from '@dru/core'
import { DocumentStore } from '@dru/documents'
import { EventStore, signOwnHistory, unsignedOrigins } from '@dru/store-sqlite'
import { signerFor, silentLogger, type Logger } from '@dru/sync'
import { createAdminSource } from './admin-source.js'
import { startAdminServer, type AdminServer } from './admin-http.js'
import { DEFAULT_CONFLICT_POLICY, type DruConfig } from './config-types.js'
import { resolveConfig } from './config-files.js'
import { Dru, standaloneLifecycle } from './dru.js'
import { watchInbox } from './inbox-watch.js'
import type { InboxWorker } from './inbox-worker.js'
import { createMetrics, type DruMetrics } from './metrics.js'
import { Network } from './network.js'
import { createOperations } from './operations.js'

/** A pino logger behind the console-shaped port the packages use. */
function jsonLogger(id: string): Logger {
  const log = pino({ base: { dru: id }, timestamp: pino.stdTimeFunctions.epochTime })
  return {
    debug: (m, d) => log.debug(d ?? {}, m),
    info: (m, d) => log.info(d ?? {}, m),
    warn: (m, d) => log.warn(d ?? {}, m),
    error: (m, d) => log.error(d ?? {}, m),
  }
}

/** What {@link openDru} attached besides the in-process DRU (for admin tools and tests). */
export interface DruRuntimeParts {
  readonly network: Network | undefined
  readonly admin: AdminServer | undefined
  readonly metrics: DruMetrics
  readonly log: Logger
}

const parts = new WeakMap<Dru, DruRuntimeParts>()

/** The retry policy part of the `inbox` config (without `autoRetry`, which is the node's). */
function inboxPolicyOf(inbox: NonNullable<DruConfig['inbox']>): Omit<NonNullable<DruConfig['inbox']>, 'autoRetry'> {
  const { autoRetry: _, ...policy } = inbox
  return policy
}

/** A source of 32-bit unsigned integers from a uniform [0, 1) one. */
function uint32From(random: () => number): () => number {
  return () => Math.floor(Math.min(Math.max(random(), 0), 1 - Number.EPSILON) * 2 ** 32)
}

/** The network, admin server and metrics of a DRU opened by {@link openDru}. */
export function runtimeOf(dru: Dru): DruRuntimeParts {
  const p = parts.get(dru)
  if (!p) throw new DruError('INVALID_ARGUMENT', 'this DRU was not opened by openDru()')
  return p
}

/**
 * Opens a DRU: validates `config` (CONFIG_INVALID naming the bad field), opens the log
 * (signing each commit when keys are given) and the documents, then — when `listen` or
 * `peers` are set — starts sync and the lifecycle, and — when `admin` is set — the admin
 * HTTP server. The store tolerates skewed remote clocks (availability: a peer with a
 * wrong clock still replicates; `store.skewedEvents` counts those events).
 */
export async function openDru(config: DruConfig): Promise<Dru> {
  // Everything is checked and every referenced file read before anything opens, so a bad
  // config changes nothing.
  const c = resolveConfig(config)
  const log: Logger = c.logger ?? (c.log === 'json' ? jsonLogger(c.id) : silentLogger)
  const now = c.now ?? Date.now
  const adminTokenValue = c.admin?.token
  const store = EventStore.open({
    path: c.path,
    druId: c.id,
    skewPolicy: 'tolerate',
    now,
    ...(c.durability ? { durability: c.durability } : {}),
    ...(c.maxClockSkewMs ? { maxClockSkewMs: c.maxClockSkewMs } : {}),
    ...(c.keys ? { sign: signerFor(c.keys.privateKey) } : {}),
    ...(c.random ? { random: uint32From(c.random) } : {}),
    ...(c.inbox ? { inbox: inboxPolicyOf(c.inbox) } : {}),
    onListenerError: (err) => log.error('commit listener failed', { error: (err as Error)?.message ?? String(err) }),
  })
  // The network may store remote events before this function returns: a handler the
  // application registers right after it (in the same tick) is owed those too.
  const releaseHandlers = store.inbox.holdForRegistration()
  let network: Network | undefined
  let admin: AdminServer | undefined
  let worker: InboxWorker | undefined
  try {
    if (c.keys)
      prepareSignedHistory(store, c.id, c.keys.privateKey, c.peers !== undefined || c.listen !== undefined, log)
    const documents = new DocumentStore(store, {
      ...(c.cache ? { cache: c.cache } : {}),
      conflictPolicy: c.conflictPolicy ?? DEFAULT_CONFLICT_POLICY,
      now,
      onError: (err) =>
        log.error('documents: work after a commit failed', {
          error: (err as Error)?.message ?? String(err),
          code: (err as { code?: string })?.code,
        }),
    })
    const metrics = createMetrics({ labels: { dru: c.id } })
    let skewed = store.skewedEvents
    store.onCommit((events, source) => {
      metrics.eventsCommitted.inc({ source }, events.length)
      if (source !== 'remote') return
      metrics.eventsApplied.inc(events.length)
      // The store counts events whose HLC ran beyond maxClockSkewMs; raise the alarm per batch.
      if (store.skewedEvents > skewed) {
        const peer = parseOrigin(events[events.length - 1]!.origin).druId
        metrics.clockSkewAlarms.inc({ peer }, store.skewedEvents - skewed)
        log.warn('clock skew: remote timestamps beyond maxClockSkewMs (stored, clock not advanced)', {
          peer,
          events: store.skewedEvents - skewed,
        })
        skewed = store.skewedEvents
      }
    })
    worker = watchInbox(store, { metrics, log, now, autoRetry: c.inbox?.autoRetry !== false })
    if (c.listen !== undefined || (c.peers?.length ?? 0) > 0) {
      network = await Network.attach(
        { id: c.id, store, documents },
        {
          peers: c.peers ?? [],
          secret: c.secret!,
          keys: c.keys!,
          ...(c.listen ? { listen: c.listen } : {}),
          ...(c.tls ? { tls: c.tls } : {}),
          ...(c.sync ? { sync: c.sync } : {}),
        },
        { metrics, log, now, ...(c.restore ? { restore: true } : {}) },
      )
    }
    const net = network
    const retries = worker
    // Run before the store closes, last first: the network stops before the inbox worker.
    const closeHooks: Array<() => void | Promise<void>> = []
    if (retries) closeHooks.push(() => retries.stop())
    if (net) closeHooks.push(() => net.close())
    const lifecycle = net ? net.driver.lifecycle : standaloneLifecycle()
    if (!net) metrics.setLifecycleState(lifecycle.state())
    const dru = new Dru({
      id: c.id,
      store,
      documents,
      lifecycle,
      operations: createOperations(store, documents, net),
      closeHooks,
      ...(net
        ? {
            membership: net.membership,
            writeGuard: () => net.restore.assertWritable(c.allowWritesWhileRestoring === true),
            ackWaiter: (event, k, timeoutMs) => net.sync.waitForAcks(event, k, timeoutMs ?? 10_000),
          }
        : {}),
    })
    if (c.admin !== undefined) {
      const source = createAdminSource({ dru, network: net, metrics, now, ramp: { ...DEFAULT_RAMP, ...c.ramp } })
      admin = await startAdminServer({
        host: c.admin.host ?? '127.0.0.1',
        port: c.admin.port ?? 0,
        ...(adminTokenValue ? { token: adminTokenValue } : {}),
        ...(c.admin.allowedHosts ? { allowedHosts: c.admin.allowedHosts } : {}),
        source,
        onError: (err) => log.error('admin request failed', { error: (err as Error)?.message ?? String(err) }),
      })
      const server = admin
      dru.onClose(() => server.close())
    }
    parts.set(dru, { network, admin, metrics, log })
    log.info('dru open', {
      origin: store.origin,
      state: dru.state(),
      ...(network ? { sync: network.sync.port } : {}),
      ...(admin ? { admin: admin.url } : {}),
    })
    // After the caller's continuation (a microtask) has run: its onEvent calls are inside.
    setImmediate(releaseHandlers)
    return dru
  } catch (err) {
    // Not released: the application never got to register its handlers, so what the network
    // stored meanwhile stays owed to the next start's window (the store keeps its first position).
    await admin?.close().catch(() => undefined)
    await network?.close().catch(() => undefined)
    worker?.stop()
    store.close()
    throw err
  }
}

/**
 * A DRU opened with keys must not carry a history its peers would refuse: its own events
 * written without keys (a trial run alone), or a tail a crash left before its deferred
 * signature, are signed now, with its key; another DRU's
 * unsigned events cannot be, so a networked DRU refuses to start (UNSIGNED_HISTORY) rather
 * than be quarantined by every peer the moment it joins.
 */
function prepareSignedHistory(
  store: EventStore,
  id: string,
  privateKey: string,
  networked: boolean,
  log: Logger,
): void {
  const foreign = unsignedOrigins(store).filter((u) => u.druId !== id)
  if (foreign.length > 0 && networked) {
    const names = foreign.map((u) => `${u.origin} (up to #${u.head})`).join(', ')
    throw new DruError(
      'UNSIGNED_HISTORY',
      `${store.path} holds events of other DRUs written without keys (${names}); peers with keys would quarantine this DRU for them. ` +
        'Open each of those DRUs with its keys first (each signs its own history), then start this one from an empty database: it fetches everything again, signed.',
      { details: { origins: foreign.map((u) => u.origin) } },
    )
  }
  const signed = signOwnHistory(store, id, signerFor(privateKey))
  if (signed > 0)
    log.info(
      `signed ${signed} event${signed === 1 ? '' : 's'} closing this DRU's own unsigned history (written without keys, or a tail a crash left unsigned), so its peers accept it`,
      { signed },
    )
}
