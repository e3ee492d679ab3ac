import { runReplicaLogContract, type ReplicaLogUnderTest } from '@dru/testkit'
import type { VersionVector } from '@dru/core'
import { EventStore } from '../src/index.js'

function underTest(store: EventStore): ReplicaLogUnderTest {
  return {
    log: store,
    append: (docId, changes) => store.transact((tx) => changes.map((c) => tx.append(docId, c))).result,
    // Compaction's log half (the documents package writes the covering snapshots first).
    fold: (floor: VersionVector) => {
      store.raiseBase(floor)
      while (store.deleteBelowBase(100) === 100);
    },
    close: () => store.close(),
  }
}

runReplicaLogContract('EventStore (SQLite, :memory:)', (druId) =>
  underTest(EventStore.open({ path: ':memory:', druId })),
)
