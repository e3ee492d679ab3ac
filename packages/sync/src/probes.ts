import { DruError, type LogSummary, type TreeEntry } from '@dru/core'
import { encodeFrame } from './frame-codec.js'
import type { ReportFrame, TreeReportFrame } from './frames.js'
import type { PeerProtocol } from './protocol/peer-protocol.js'

/** A peer's answer to a probe. */
export interface ProbeResult {
  readonly summary: LogSummary
  readonly stateDigest: string | null
  readonly documents: number | null
}

/** A peer's answer to a tree probe, and the bytes question and answer took on the wire (frames before their seal). */
export interface TreeProbeResult {
  /** {@link TREE_FANOUT} hashes per node asked, in order (inner levels). */
  readonly hashes: readonly Uint8Array[]
  /** The documents of the buckets asked (leaf level). */
  readonly docs: readonly TreeEntry[]
  readonly bytes: number
}

interface Pending {
  readonly peerId: string
  readonly session: PeerProtocol
  readonly resolve: (r: ReportFrame | TreeReportFrame) => void
  readonly reject: (e: Error) => void
  readonly timer: NodeJS.Timeout
  readonly kind: 'report' | 'tree-report'
}

/** Verification probes in flight: ids, timeouts, and matching answers to the peer that was asked. */
export class Probes {
  readonly #pending = new Map<number, Pending>()
  #ids = 0

  async ask(peerId: string, session: PeerProtocol, deep: boolean, timeoutMs: number): Promise<ProbeResult> {
    const report = (await this.#ask(peerId, session, 'report', timeoutMs, (id) =>
      session.probe(id, deep),
    )) as ReportFrame
    return { summary: report.summary, stateDigest: report.stateDigest, documents: report.documents }
  }

  /** Asks about nodes of the peer's digest tree (see `TreeProbeFrame`). */
  async askTree(
    peerId: string,
    session: PeerProtocol,
    level: number,
    nodes: readonly number[],
    timeoutMs: number,
  ): Promise<TreeProbeResult> {
    let asked = 0
    const report = (await this.#ask(peerId, session, 'tree-report', timeoutMs, (id) => {
      asked = encodeFrame({ type: 'tree-probe', id, level, nodes }).byteLength
      session.treeProbe(id, level, nodes)
    })) as TreeReportFrame
    return { hashes: report.hashes, docs: report.docs, bytes: asked + encodeFrame(report).byteLength }
  }

  #ask(
    peerId: string,
    session: PeerProtocol,
    kind: Pending['kind'],
    timeoutMs: number,
    send: (id: number) => void,
  ): Promise<ReportFrame | TreeReportFrame> {
    // 1 … 2³²−2: id 0 is the session's own refresh probe (REFRESH_PROBE).
    const id = (this.#ids = (this.#ids % 0xfffffffe) + 1)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        session.forgetProbe(id)
        reject(new DruError('TIMEOUT', `${peerId} did not answer a verification probe within ${timeoutMs} ms`))
      }, timeoutMs)
      timer.unref()
      this.#pending.set(id, { peerId, session, resolve, reject, timer, kind })
      send(id)
    })
  }

  /** An answer arrived (the session already checked that it asked this id). */
  answered(session: PeerProtocol, report: ReportFrame | TreeReportFrame): void {
    const pending = this.#pending.get(report.id)
    if (!pending || pending.session !== session || pending.kind !== report.type) return
    this.#pending.delete(report.id)
    clearTimeout(pending.timer)
    pending.resolve(report)
  }

  rejectAll(err: Error): void {
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer)
      p.reject(err)
    }
    this.#pending.clear()
  }
}
