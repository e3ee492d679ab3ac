import { mergeVv, type PeerRecord, type VersionVector } from '@dru/core'
import { toPeer, type LogStatements, type RawPeer } from './statements.js'

/**
 * The `peers` table: each peer's address, connection state, last contact and what it has
 * durably acknowledged (merged by max, so an old or replayed ack never lowers it).
 */
export class PeerTable {
  readonly #stmt: LogStatements

  constructor(stmt: LogStatements) {
    this.#stmt = stmt
  }

  recordAck(peerId: string, acked: VersionVector, at: number): VersionVector {
    const merged = mergeVv(this.get(peerId)?.ackedVv ?? {}, acked)
    this.#stmt.upsertPeerAck.run(peerId, JSON.stringify(merged), at)
    return merged
  }

  record(peerId: string, fields: { url?: string | null; state?: string | null; lastSeen?: number | null }): void {
    this.#stmt.upsertPeer.run(peerId, fields.url ?? null, fields.state ?? null, fields.lastSeen ?? null)
  }

  get(peerId: string): PeerRecord | undefined {
    const row = this.#stmt.getPeer.get(peerId) as RawPeer | undefined
    return row ? toPeer(row) : undefined
  }

  all(): PeerRecord[] {
    return (this.#stmt.allPeers.all() as RawPeer[]).map(toPeer)
  }
}
