import { DruError, mergeVv } from '@dru/core'
import { MetaKey, type EventStore } from '@dru/store-sqlite'
import type { Logger, SyncNode } from '@dru/sync'
import type { MemberAck } from './compaction.js'
import type { LifecycleDriver } from './lifecycle-driver.js'

/**
 * Cluster membership: every DRU with a public key in the config, minus those removed for
 * good by `dru decommission`. The removed ids are kept in the log's meta table
 * (`decommissioned`), so a restart keeps them out.
 *
 * @module
 */

/** Cluster membership as the network layer knows it (absent for a standalone DRU). */
export interface Membership {
  /** Current members (decommissioned ones excluded) with what each durably acknowledged. */
  members(): MemberAck[]
  /** Removes a member for good; see {@link Dru.decommission}. */
  decommission(id: string, options: { force: boolean }): { id: string; removed: boolean }
}

/** The DRU ids removed by `dru decommission`, from the log's meta table. */
export function readDecommissioned(store: EventStore): string[] {
  const raw = store.getMeta(MetaKey.DECOMMISSIONED)
  if (typeof raw !== 'string') return []
  const list = JSON.parse(raw) as unknown
  return Array.isArray(list) ? list.filter((x): x is string => typeof x === 'string') : []
}

/** Options of {@link createMembership}. */
export interface MembershipOptions {
  readonly druId: string
  readonly store: EventStore
  readonly sync: SyncNode
  readonly driver: LifecycleDriver
  /** Every DRU id with a public key, this one excluded. */
  readonly memberIds: readonly string[]
  readonly log: Logger
  /** Called after a decommission, so the lifecycle sees the new peer count at once. */
  readonly reassess: () => void
}

/** Membership of a networked DRU: members with their acknowledgements, and decommission. */
export function createMembership(o: MembershipOptions): Membership {
  const { store, sync } = o
  return {
    members() {
      const gone = new Set(readDecommissioned(store))
      const live = new Map(sync.peerStatus().map((p) => [p.id, p.ackedVv]))
      return o.memberIds
        .filter((id) => !gone.has(id))
        .map((id) => ({ id, acked: mergeVv(store.peer(id)?.ackedVv ?? {}, live.get(id) ?? {}) }))
    },
    // Persisted first, so a restart keeps the peer out.
    decommission(id, { force }) {
      if (id === o.druId) throw new DruError('INVALID_ARGUMENT', `${id} cannot decommission itself`)
      if (!o.memberIds.includes(id))
        throw new DruError('NOT_FOUND', `${id} is not a member of this cluster (no public key for it)`)
      const gone = readDecommissioned(store)
      if (gone.includes(id)) return { id, removed: false }
      const peer = sync.peerStatus().find((p) => p.id === id)
      if (peer?.connected && !force) {
        throw new DruError(
          'INVALID_ARGUMENT',
          `${id} is connected right now, so it is not lost; stop it first, or pass force to remove a live DRU`,
        )
      }
      store.setMeta(MetaKey.DECOMMISSIONED, JSON.stringify([...gone, id].sort()))
      sync.decommission(id)
      const left = sync.peerStatus().filter((p) => !p.decommissioned).length
      o.driver.setPeerCount(left)
      o.log.warn('peer decommissioned: removed from membership; its replicated events stay', { peer: id })
      o.reassess()
      return { id, removed: true }
    },
  }
}
