import type { SessionLimits } from './session-config.js'
import { violation } from './session-rules.js'

/** What {@link Liveness} looks at to judge a session (read at each tick). */
export interface LinkState {
  readonly open: boolean
  readonly peerId: string | undefined
  /** When the peer's latest frame arrived. */
  readonly lastFrameAt: number
  /** The peer's first vv arrived. */
  readonly gotVv: boolean
  readonly window: { readonly inFlight: number; readonly lastProgressAt: number; readonly unackedBytes: number }
}

/**
 * Why a session must end now. With `warning`, the link itself is suspect: the session logs
 * it and closes without an error frame; without, it fails (sends the error frame, then closes).
 */
export interface Ending {
  readonly code: string
  readonly message: string
  readonly warning?: string
}

/**
 * Whether a session is still alive, and its heartbeat: the handshake deadline, a peer gone
 * silent, a summary or a window that never settles, and when to ping. Decisions only: the
 * session sends the pings and ends itself.
 */
export class Liveness {
  readonly #limits: SessionLimits
  readonly #createdAt: number
  #openedAt = 0
  /** When we last pinged (the heartbeat counts from the session's opening). */
  #lastPingAt = 0
  #pingN = 0
  #pingsSent = 0

  constructor(limits: SessionLimits, createdAt: number) {
    this.#limits = limits
    this.#createdAt = createdAt
  }

  /** The handshake completed at `now`. */
  opened(now: number): void {
    this.#openedAt = now
    this.#lastPingAt = now
  }

  /** Why the session must end at `now`, if it must. */
  ending(now: number, link: LinkState): Ending | undefined {
    const l = this.#limits
    if (!link.open) {
      if (now - this.#createdAt > l.handshakeTimeoutMs)
        return { code: 'HANDSHAKE_TIMEOUT', message: `no complete handshake within ${l.handshakeTimeoutMs} ms` }
      return undefined
    }
    const silent = now - link.lastFrameAt
    if (silent > l.heartbeatTimeoutMs) {
      return {
        code: 'HEARTBEAT_TIMEOUT',
        message: `no frame for ${silent} ms`,
        warning: `sync: no frame from ${link.peerId ?? '?'} for ${silent} ms; dropping the connection`,
      }
    }
    // TCP never loses bytes inside a live connection, but a middlebox or a bug could: a
    // summary that never came, or a window never acknowledged, would stall the session for
    // ever while pings still flow. Reconnecting re-runs the exchange.
    if (!link.gotVv && now - this.#openedAt > l.heartbeatTimeoutMs) {
      return {
        code: 'PROTOCOL_VIOLATION',
        message: `no vv from ${link.peerId} within ${l.heartbeatTimeoutMs} ms of the handshake`,
      }
    }
    const window = link.window
    if (window.inFlight > 0 && now - window.lastProgressAt > l.heartbeatTimeoutMs) {
      return {
        code: 'ACK_STALL',
        message: `no ack for ${now - window.lastProgressAt} ms with ${window.unackedBytes} bytes in flight`,
        warning: `sync: ${link.peerId} acknowledged nothing for ${now - window.lastProgressAt} ms with ${window.unackedBytes} bytes in flight; reconnecting`,
      }
    }
    return undefined
  }

  /**
   * The number of the ping due at `now` (counted as sent), or undefined. The owner may tick
   * more often than the heartbeat (to bound handshakes): a ping is due only once per
   * heartbeat, so an idle link carries one ping per heartbeat, not per tick.
   */
  pingDue(now: number): number | undefined {
    if (now - this.#lastPingAt < pingEvery(this.#limits)) return undefined
    this.#lastPingAt = now
    this.#pingN = (this.#pingN + 1) >>> 0
    this.#pingsSent++
    return this.#pingN
  }

  /** A pong arrived; a PROTOCOL_VIOLATION when it answers no ping we sent. */
  pong(n: number): void {
    if (this.#pingsSent === 0 || n > this.#pingN) throw violation(`pong ${n} answers no ping we sent`)
  }
}

/**
 * How often an open session pings: every heartbeat, and at least twice per heartbeat timeout
 * (a peer with our settings then never sees a live link fall silent). A tick that comes a
 * few ms early still pings: timers are not exact, and a skipped beat would double the gap.
 */
function pingEvery(l: SessionLimits): number {
  const every = Math.min(l.heartbeatMs, l.heartbeatTimeoutMs / 2)
  return every - Math.min(every / 10, 50)
}
