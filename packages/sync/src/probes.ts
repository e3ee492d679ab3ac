import { DruError, type LogSummary } from '@dru/core'
import type { ReportFrame } from './frames.js'
import type { PeerProtocol } from './protocol/peer-protocol.js'

/** A peer's answer to a probe. */
export interface ProbeResult {
  readonly summary: LogSummary
  readonly stateDigest: string | null
  readonly documents: number | null
}

interface Pending {
  readonly peerId: string
  readonly session: PeerProtocol
  readonly resolve: (r: ProbeResult) => void
  readonly reject: (e: Error) => void
  readonly timer: NodeJS.Timeout
}

/** Verification probes in flight: ids, timeouts, and matching answers to the peer that was asked. */
export class Probes {
  readonly #pending = new Map<number, Pending>()
  #ids = 0

  ask(peerId: string, session: PeerProtocol, deep: boolean, timeoutMs: number): Promise<ProbeResult> {
    // 1 … 2³²−2: id 0 is the session's own refresh probe (REFRESH_PROBE).
    const id = (this.#ids = (this.#ids % 0xfffffffe) + 1)
    return new Promise<ProbeResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        session.forgetProbe(id)
        reject(new DruError('TIMEOUT', `${peerId} did not answer a verification probe within ${timeoutMs} ms`))
      }, timeoutMs)
      timer.unref()
      this.#pending.set(id, { peerId, session, resolve, reject, timer })
      session.probe(id, deep)
    })
  }

  /** An answer arrived (the session already checked that it asked this id). */
  answered(session: PeerProtocol, report: ReportFrame): void {
    const pending = this.#pending.get(report.id)
    if (!pending || pending.session !== session) return
    this.#pending.delete(report.id)
    clearTimeout(pending.timer)
    pending.resolve({ summary: report.summary, stateDigest: report.stateDigest, documents: report.documents })
  }

  rejectAll(err: Error): void {
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer)
      p.reject(err)
    }
    this.#pending.clear()
  }
}
