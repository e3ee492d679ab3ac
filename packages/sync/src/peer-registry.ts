import { countMissing, mergeVv, type PeerBook, type VersionVector } from '@dru/core'
import type { PeerLifecycle } from './frames.js'
import { MAX_SESSIONS_PER_PEER } from './limits.js'
import type { PeerProtocol } from './protocol/peer-protocol.js'
import type { Admission } from './protocol/session-config.js'
import type { Session } from './transport/ws-session.js'

export interface QuarantineInfo {
  readonly code: string
  readonly message: string
  readonly at: number
}

/** One peer as seen from here (for `/status`, gap reports and tests). */
export interface PeerStatus {
  readonly id: string
  readonly url: string | null
  readonly connected: boolean
  /** When the current session was established (ms), or null. */
  readonly since: number | null
  /** Last frame received from this peer (ms), or null. */
  readonly lastSeen: number | null
  /** What the peer has durably acknowledged (from ack frames only). */
  readonly ackedVv: VersionVector
  /** What the peer holds as far as its sessions told us (its vv, raised by what it sent and acked). */
  readonly theirVv: VersionVector
  /** Events we hold that the peer has not acknowledged. */
  readonly lag: number
  readonly quarantined: boolean
  readonly quarantine: QuarantineInfo | null
  /** Removed from the cluster by `dru decommission`: never dialed, its sessions refused. */
  readonly decommissioned: boolean
  /** Why the last session or dial ended, e.g. AUTH_FAILED, HEARTBEAT_TIMEOUT. */
  readonly lastError: { code: string; message: string } | null
  /** The lifecycle state the peer announced in its latest heartbeat (null: none heard yet). */
  readonly lifecycle: PeerLifecycle | null
  /** Failed dial attempts since the last good session. */
  readonly attempts: number
  /**
   * Origins of the processes connected under this DRU id right now. More than one means the
   * same DRU id runs twice (an old primary back while its replacement runs): both are kept
   * (each writes its own incarnation, so nothing forks) and flagged for the operator.
   */
  readonly origins: readonly string[]
  /** Byte and frame counters of the current (or last) session. */
  readonly bytesIn: number
  readonly bytesOut: number
  readonly framesIn: number
  readonly framesOut: number
  readonly eventsIn: number
  readonly duplicatesIn: number
  readonly snapshotDocsIn: number
  readonly foldedIn: number
  readonly unackedBytes: number
  /**
   * Events received from this peer since this DRU started, over every session (closed ones
   * included), and how many of them were held already: what forwarding costs, counted whole
   * (`eventsIn` is the current session's alone).
   */
  readonly eventsInTotal: number
  readonly duplicatesInTotal: number
  /** Frames from this peer refused as PROTOCOL_VIOLATION or RATE_LIMITED since start. */
  readonly violations: number
}

/** What the registry keeps per DRU id. */
export interface PeerState {
  readonly id: string
  url: string | null
  /** Open, admitted sessions by the peer's origin (one per process). */
  readonly sessions: Map<string, Session>
  /** The most recent session (open or not), for counters. */
  last: Session | undefined
  since: number | null
  lastSeen: number | null
  ackedVv: VersionVector
  ackDirty: boolean
  quarantine: QuarantineInfo | null
  lastError: { code: string; message: string } | null
  /** The lifecycle state it last announced, from whichever session heard it. */
  lifecycle: PeerLifecycle | null
  attempts: number
  dialing: boolean
  timer: NodeJS.Timeout | undefined
  violations: number
  /** Events (and duplicates among them) received over every session since start. */
  eventsIn: number
  duplicatesIn: number
}

/**
 * Sessions by peer: admission (quarantine, decommission, one session per pair of processes),
 * acknowledged vectors, quarantine and status. Decisions are made on the peer's proven
 * identity (its key signed the handshake), never on its claims.
 */
export class PeerRegistry {
  readonly peers = new Map<string, PeerState>()
  readonly decommissioned = new Set<string>()
  readonly #druId: string
  readonly #book: PeerBook
  readonly #now: () => number

  constructor(druId: string, book: PeerBook, now: () => number) {
    this.#druId = druId
    this.#book = book
    this.#now = now
  }

  state(id: string): PeerState {
    let p = this.peers.get(id)
    if (!p) {
      const record = this.#book.peer(id)
      p = {
        id,
        url: null,
        sessions: new Map(),
        last: undefined,
        since: null,
        lastSeen: record?.lastSeen ?? null,
        // Persisted acks came from ack frames of earlier sessions, so they still count.
        ackedVv: record?.ackedVv ?? {},
        ackDirty: false,
        quarantine: null,
        lastError: null,
        lifecycle: null,
        attempts: 0,
        dialing: false,
        timer: undefined,
        violations: 0,
        eventsIn: 0,
        duplicatesIn: 0,
      }
      this.peers.set(id, p)
    }
    return p
  }

  /** The newest open session with a peer (probes and verification use it). */
  primary(id: string): Session | undefined {
    let best: Session | undefined
    for (const s of this.peers.get(id)?.sessions.values() ?? [])
      if (s.protocol.isOpen && (!best || s.protocol.createdAt > best.protocol.createdAt)) best = s
    return best
  }

  /**
   * After the peer proved the secret and its key. One session per pair of processes: between
   * two with the same origin, the one dialed by the smaller DRU id stays (both sides choose
   * the same), and between two of the same dialer the newer (the older is likely dead).
   * Sessions of different origins under one DRU id are two processes: both are kept.
   */
  admit(session: Session): { admission: Admission; replaced?: Session; twin?: boolean } {
    const p = session.protocol
    const id = p.peerId!
    const origin = p.peerOrigin!
    if (this.decommissioned.has(id)) {
      return {
        admission: {
          ok: false,
          code: 'DECOMMISSIONED',
          message: `${id} was decommissioned from this cluster; give a returning region a new DRU id`,
        },
      }
    }
    const state = this.state(id)
    if (state.quarantine) {
      return {
        admission: {
          ok: false,
          code: 'QUARANTINED',
          message: `${id} is quarantined (${state.quarantine.code}: ${state.quarantine.message}); an operator must lift it`,
        },
      }
    }
    const existing = state.sessions.get(origin)
    let replaced: Session | undefined
    if (existing && existing !== session && existing.protocol.isOpen) {
      const dialerOf = (s: PeerProtocol) => (s.role === 'dialer' ? this.#druId : id)
      const preferred = this.#druId < id ? this.#druId : id
      const keepNew = dialerOf(existing.protocol) === dialerOf(p) || dialerOf(p) === preferred
      if (!keepNew)
        return {
          admission: {
            ok: false,
            code: 'DUPLICATE_SESSION',
            message: `a session with ${id} (${origin}) is already open`,
          },
        }
      replaced = existing
    } else if (state.sessions.size >= MAX_SESSIONS_PER_PEER) {
      return {
        admission: {
          ok: false,
          code: 'DUPLICATE_SESSION',
          message: `already ${MAX_SESSIONS_PER_PEER} sessions with ${id}`,
        },
      }
    }
    const twin = !replaced && [...state.sessions.keys()].some((o) => o !== origin)
    state.sessions.set(origin, session)
    state.last = session
    state.since = this.#now()
    state.lastSeen = this.#now()
    state.attempts = 0
    state.lastError = null
    if (state.timer) clearTimeout(state.timer)
    state.timer = undefined
    return replaced ? { admission: { ok: true }, replaced, twin } : { admission: { ok: true }, twin }
  }

  /** A heartbeat of `id` announced its lifecycle state. */
  announced(id: string, lifecycle: PeerLifecycle): void {
    const p = this.peers.get(id)
    if (p) p.lifecycle = lifecycle
  }

  /** A session ended; returns true when it was the peer's last open one (the peer is down). */
  removed(session: Session): boolean {
    const p = session.protocol
    const state = p.peerId === undefined ? undefined : this.peers.get(p.peerId)
    if (!state || p.peerOrigin === undefined || state.sessions.get(p.peerOrigin) !== session) return false
    state.sessions.delete(p.peerOrigin)
    if (state.sessions.size > 0) return false
    state.since = null
    return true
  }

  connected(id: string): boolean {
    for (const s of this.peers.get(id)?.sessions.values() ?? []) if (s.protocol.isOpen) return true
    return false
  }

  acked(id: string, vv: VersionVector): void {
    const p = this.state(id)
    p.ackedVv = mergeVv(p.ackedVv, vv)
    p.ackDirty = true
    p.lastSeen = this.#now()
  }

  /** A session with `id` received `events` events, `duplicates` of them held already. */
  received(id: string, events: number, duplicates: number): void {
    const p = this.state(id)
    p.eventsIn += events
    p.duplicatesIn += duplicates
  }

  /** Number of distinct peers whose acknowledged vectors cover `(origin, seq)`. */
  ackCount(origin: string, seq: number): number {
    let n = 0
    for (const p of this.peers.values()) if ((p.ackedVv[origin] ?? 0) >= seq) n++
    return n
  }

  status(ours: VersionVector): PeerStatus[] {
    return [...this.peers.values()]
      .sort((a, b) => (a.id < b.id ? -1 : 1))
      .map((p) => {
        const open = [...p.sessions.values()].filter((s) => s.protocol.isOpen)
        const s = (open.at(-1) ?? p.last)?.protocol
        let theirVv: VersionVector = {}
        for (const o of open) theirVv = mergeVv(theirVv, o.protocol.theirVv)
        return {
          id: p.id,
          url: p.url,
          connected: open.length > 0,
          since: p.since,
          lastSeen: Math.max(p.lastSeen ?? 0, s?.wasAuthenticated ? s.lastFrameAt : 0) || null,
          ackedVv: p.ackedVv,
          theirVv: open.length > 0 ? theirVv : (s?.theirVv ?? {}),
          lag: countMissing(ours, p.ackedVv),
          quarantined: p.quarantine !== null,
          quarantine: p.quarantine,
          decommissioned: this.decommissioned.has(p.id),
          lastError: p.lastError,
          lifecycle: p.lifecycle,
          attempts: p.attempts,
          origins: open.map((o) => o.protocol.peerOrigin!).sort(),
          bytesIn: s?.bytesIn ?? 0,
          bytesOut: s?.bytesOut ?? 0,
          framesIn: s?.framesIn ?? 0,
          framesOut: s?.framesOut ?? 0,
          eventsIn: s?.eventsIn ?? 0,
          duplicatesIn: s?.duplicatesIn ?? 0,
          snapshotDocsIn: s?.snapshotDocsIn ?? 0,
          foldedIn: s?.foldedIn ?? 0,
          unackedBytes: open.reduce((n, o) => n + o.protocol.unackedBytes, 0),
          eventsInTotal: p.eventsIn,
          duplicatesInTotal: p.duplicatesIn,
          violations: p.violations,
        }
      })
  }

  /** Persists acked vectors that changed (one small write per peer instead of one per ack). */
  flushAcks(onError: (peer: string, err: Error) => void): void {
    for (const p of this.peers.values()) {
      if (!p.ackDirty) continue
      p.ackDirty = false
      try {
        this.#book.recordPeerAck(p.id, p.ackedVv, p.lastSeen ?? this.#now())
      } catch (err) {
        onError(p.id, err as Error)
      }
    }
  }
}
