import { afterEach, describe, expect, it } from 'vitest'
import { TREE_FANOUT, type TreeEntry } from '@dru/core'
import { EventStore } from '@dru/store-sqlite'
import type { SyncNode } from '@dru/sync'
import { verifyPeers, type VerificationSources } from '../src/peer-verification.js'

// A deep verify gathers the documents of the differing buckets from the peer's answers. One
// `tree-report` may list up to MAX_TREE_DOCS (200,000) entries, more than a JavaScript call
// can take as arguments: joining them with a spread (`push(...docs)`) overflowed the stack
// and the peer was reported unreachable.

const DOCS = 150_000
const open: EventStore[] = []
afterEach(() => {
  for (const s of open.splice(0)) s.close()
})

describe('a deep verify whose peer answers with more documents than a call can take arguments', () => {
  it('counts every differing document and keeps the peer reachable', async () => {
    const store = EventStore.open({ path: ':memory:', druId: 'a', skewPolicy: 'tolerate' })
    open.push(store)
    const zero = () => Array.from({ length: TREE_FANOUT }, () => new Uint8Array(8))
    const docs: TreeEntry[] = Array.from({ length: DOCS }, (_, i) => ({
      docId: `d${i}`,
      digest: 'isolated',
      heads: [],
    }))
    // The peer's tree differs from ours in the first child of each node: one bucket at the leaves.
    const sync = {
      peerStatus: () => [{ id: 'b', connected: true }],
      probe: async () => ({ summary: store.summary(), stateDigest: 'f'.repeat(64), documents: DOCS }),
      treeProbe: async (_peer: string, level: number, nodes: readonly number[]) => {
        if (level === 4) return { hashes: [], docs, bytes: 0 }
        const hashes = nodes.flatMap(() => {
          const h = zero()
          h[0] = new Uint8Array(8).fill(1)
          return h
        })
        return { hashes, docs: [], bytes: 0 }
      },
    } as unknown as SyncNode
    const sources: VerificationSources = {
      druId: 'a',
      store,
      sync,
      tree: { refresh: () => ({ root: '0'.repeat(64), documents: 0 }), children: zero, bucket: () => [] },
    }
    const [b] = await verifyPeers(sources, { deep: true })
    expect(b).toMatchObject({ peer: 'b', reachable: true, equal: false, differingDocuments: DOCS })
  }, 30_000)
})
