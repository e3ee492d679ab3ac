import WebSocket from 'ws'
import { backoffDelay, type BackoffOptions } from './backoff.js'
import type { PeerRegistry, PeerState } from './peer-registry.js'
import type { SessionLimits } from './protocol/session-config.js'

/** What the dialer needs: where peers stand, how to connect, and what to do with a socket. */
export interface DialerOptions {
  readonly registry: PeerRegistry
  readonly limits: SessionLimits
  /** The authority we trust when dialing `wss://` peers. */
  readonly ca?: string | string[] | undefined
  readonly backoff?: BackoffOptions | undefined
  /** Uniform [0, 1) source for backoff jitter. */
  readonly random: () => number
  /** True once the node is shutting down: nothing more is dialed. */
  readonly closing: () => boolean
  /** A socket is being opened to `peer`: bind a session to it. */
  readonly connect: (ws: WebSocket, peer: PeerState) => void
}

/**
 * Dials the peers we have URLs for, and redials after a failure with jittered exponential
 * backoff. Never dials a peer that is quarantined, decommissioned, already connected or
 * already being dialed; at most one timer per peer.
 */
export class Dialer {
  readonly #o: DialerOptions

  constructor(options: DialerOptions) {
    this.#o = options
  }

  /** Dials `p` after the backoff for its `attempt`-th try (0: soon). */
  schedule(p: PeerState, attempt: number): void {
    if (
      this.#o.closing() ||
      !p.url ||
      p.quarantine ||
      p.sessions.size > 0 ||
      p.dialing ||
      p.timer ||
      this.#o.registry.decommissioned.has(p.id)
    )
      return
    const delay = backoffDelay(attempt, this.#o.random, this.#o.backoff)
    p.timer = setTimeout(() => {
      p.timer = undefined
      this.dial(p)
    }, delay)
    p.timer.unref()
  }

  /** Dials `p` now. */
  dial(p: PeerState): void {
    if (
      this.#o.closing() ||
      !p.url ||
      p.quarantine ||
      p.sessions.size > 0 ||
      p.dialing ||
      this.#o.registry.decommissioned.has(p.id)
    )
      return
    p.dialing = true
    let ws: WebSocket
    try {
      ws = new WebSocket(p.url, {
        perMessageDeflate: false,
        // The answering side is a stranger until it proves itself: small messages until then.
        maxPayload: this.#o.limits.preAuthMaxFrameBytes * 2,
        handshakeTimeout: this.#o.limits.heartbeatTimeoutMs,
        ...(this.#o.ca !== undefined ? { ca: this.#o.ca } : {}),
      })
    } catch (err) {
      p.dialing = false
      p.lastError = { code: 'CONNECTION_FAILED', message: (err as Error).message }
      p.attempts++
      this.schedule(p, p.attempts)
      return
    }
    this.#o.connect(ws, p)
  }
}
