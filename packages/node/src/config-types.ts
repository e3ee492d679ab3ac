import type { CacheLimits, ConflictPolicy } from '@dru/documents'
import type { Durability, InboxPolicy } from '@dru/store-sqlite'

/**
 * The shape of {@link openDru}'s configuration, each field documented with its default, and
 * the defaults other modules name. What is accepted, and why a value is refused, is in
 * config.ts (the field table) and config-sections.ts (the sections with fields of their own).
 *
 * @module
 */

/**
 * The conflict policy when the config names none: `keep-visible`, the value every DRU already
 * shows is recorded as the resolution, nothing is written, every concurrent value stays in the
 * journal (why: docs/ARCHITECTURE.md, *Conflicts*).
 */
export const DEFAULT_CONFLICT_POLICY: ConflictPolicy = 'keep-visible'

/**
 * Ed25519 keys in PEM, inline or as files (`dru init` writes files): our private key
 * (PKCS#8) as `privateKey` or `privateKeyFile` (mode 0600), and every member's public key
 * (SPKI) as a map of PEMs, a map of files, and/or a folder of `<dru-id>.pub` files.
 */
export interface KeysConfig {
  privateKey?: string
  privateKeyFile?: string
  publicKeys?: Record<string, string>
  publicKeyFiles?: Record<string, string>
  publicKeysDir?: string
}

/** Configuration of {@link openDru}. */
export interface DruConfig {
  /** Stable DRU id, e.g. `eu-west-1`. */
  id: string
  /** SQLite file, or ':memory:' for tests. */
  path: string
  /** `machine` (default, synchronous=FULL) or `process` (WAL + NORMAL, survives process crashes only). */
  durability?: Durability
  /** Document cache bounds. Default `{ maxDocs: 10000 }`. */
  cache?: CacheLimits
  /**
   * How conflicts are settled. Default {@link DEFAULT_CONFLICT_POLICY} (`keep-visible`: the
   * value every DRU shows, journaled, nothing written); `manual` leaves them open for an
   * operator; `newest-hlc-wins`, `{ priority }` or a function write a winner.
   */
  conflictPolicy?: ConflictPolicy
  /**
   * The readiness weight after the DRU becomes `active` (`/readyz` `weight`, `/status`
   * `readyWeight`, `dru_ready_weight`): from `startPercent` (default 10) to 100 over `windowMs`
   * (default 300,000), for a load balancer returning traffic gradually.
   */
  ramp?: { startPercent?: number; windowMs?: number }
  /** Wall clock (ms) for HLCs and timestamps; injectable for tests. */
  now?: () => number
  /**
   * Uniform [0, 1) source for the fresh incarnation each open draws (default: the OS's
   * cryptographic generator). Injectable so a seeded simulation replays exactly.
   */
  random?: () => number
  /** How far (ms) a remote timestamp may run ahead before it counts as skewed. Default 60 s. */
  maxClockSkewMs?: number
  /** Where peers reach us (WebSocket). Loopback by default in examples; port 0 picks one. */
  listen?: { host?: string; port?: number }
  /**
   * Admin HTTP (`/healthz`, `/readyz`, `/status`, `/metrics`, …); 127.0.0.1 unless given.
   * `token` (or `tokenFile`, a file readable only by its owner) is required for every POST
   * and, off loopback, for every read but `/healthz` and `/readyz`; a DRU refuses to bind the
   * admin API off loopback without one. `allowedHosts`: more `Host` names it answers to.
   */
  admin?: { host?: string; port?: number; token?: string; tokenFile?: string; allowedHosts?: string[] }
  /** The other members; we dial those with a `url` (they may dial us too). */
  peers?: Array<{ id: string; url?: string }>
  /** Cluster credential (at least 16 characters); required with `listen` or `peers`. */
  secret?: string
  /** The cluster credential read from a file (mode 0600); instead of `secret`. */
  secretFile?: string
  /** Ed25519 keys: ours and every member's public key, ours included, inline or in files. */
  keys?: KeysConfig
  /** Optional TLS for `wss://` (PEM strings). */
  tls?: { cert?: string; key?: string; ca?: string | string[] }
  /** Sync timing: heartbeatMs, heartbeatTimeoutMs, startupGraceMs, slackEvents. */
  sync?: {
    heartbeatMs?: number
    heartbeatTimeoutMs?: number
    startupGraceMs?: number
    slackEvents?: number
    /** Redial backoff after a failed dial or a dropped session: first delay and cap (ms; defaults 100 and 1,000). */
    reconnectBaseMs?: number
    reconnectMaxMs?: number
    /**
     * Bytes of third parties' events a session keeps unacknowledged at once while the peer may
     * get them by another path (default 262,144): what a race between two paths can cost.
     */
    forwardWindowBytes?: number
  }
  /** Start in restore mode: no writes until our earlier events are back from a peer (`dru restore`). */
  restore?: boolean
  /** Accept writes while restoring (operator override; forks stay impossible, reads may be stale). */
  allowWritesWhileRestoring?: boolean
  /**
   * Failing event handlers (see `Dru.onEvent`): `immediateRetries` (default 2), then
   * `delayedRetries` (default 5) after `backoffMs` (default 1,000) doubling up to
   * `maxBackoffMs` (default 60,000), then the event is a dead letter; at most `batch`
   * (default 100) retries per worker turn. `autoRetry: false` stops the retry timer (tests
   * call `dru.inbox.runDue()` themselves).
   */
  inbox?: Partial<InboxPolicy> & { autoRetry?: boolean }
  /** `silent` (default) or `json` (one pino JSON line per event on stdout). */
  log?: 'silent' | 'json'
  /** A logger object instead of `log` (console-shaped: info/warn/error(message, details)). */
  logger?: { info: LogFn; warn: LogFn; error: LogFn; debug?: LogFn }
}

export type LogFn = (message: string, details?: Record<string, unknown>) => void
