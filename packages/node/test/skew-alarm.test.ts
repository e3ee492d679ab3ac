import { describe, expect, it } from 'vitest'
import * as A from '@automerge/automerge'
import { encodeHlc, sealEvent } from '@dru/core'
import { actorForOrigin } from '@dru/documents'
import { EventStore } from '@dru/store-sqlite'
import { openDru, runtimeOf } from '../src/index.js'

describe('clock skew alarm', () => {
  it('stores events from a peer whose clock runs hours ahead, keeps its own clock, and raises the metric and log', async () => {
    const warnings: string[] = []
    const logger = { info: () => undefined, warn: (m: string) => void warnings.push(m), error: () => undefined }
    const dru = await openDru({ id: 'a', path: ':memory:', logger })
    const peer = EventStore.open({ path: ':memory:', druId: 'b' })
    try {
      const ahead = Date.now() + 3 * 3_600_000
      const e = sealEvent({
        origin: peer.origin,
        seq: 1,
        hlc: encodeHlc({ wall: ahead, counter: 0, node: peer.origin }),
        docId: 'x',
        // A real Automerge change by the peer's actor: anything else is refused before storing.
        change: A.getLastLocalChange(
          A.change(A.init({ actor: actorForOrigin(peer.origin) }), (d: { x?: number }) => (d.x = 1)),
        )!,
        prev: '0'.repeat(64),
      })
      expect(dru.store.ingest([e]).stored).toHaveLength(1)
      expect(dru.store.skewedEvents).toBe(1)
      expect(dru.store.clock.tick().wall).toBeLessThan(ahead - 3_000_000)
      const text = await runtimeOf(dru).metrics.render()
      expect(text).toMatch(/dru_clock_skew_alarms_total\{[^}]*peer="b"[^}]*\} 1/)
      expect(warnings.some((w) => w.startsWith('clock skew'))).toBe(true)
    } finally {
      peer.close()
      await dru.close()
    }
  })
})
