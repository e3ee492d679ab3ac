import { afterEach, describe, expect, it } from 'vitest'
import { generateKeys } from '@dru/sync'
import { openDru, runtimeOf, type Dru } from '../src/index.js'

const open: Dru[] = []
afterEach(async () => {
  while (open.length) await open.pop()!.close()
})

describe('networked DRU metrics', () => {
  it('/metrics shows each peer as connected with its lag once the DRUs sync', async () => {
    const keys = { a: generateKeys(), b: generateKeys() }
    const publicKeys = { a: keys.a.publicKey, b: keys.b.publicKey }
    const common = {
      secret: 'metrics-test-secret-0123',
      sync: { heartbeatMs: 200, heartbeatTimeoutMs: 1_000, startupGraceMs: 500 },
    }
    const b = await openDru({
      id: 'b',
      path: ':memory:',
      listen: { host: '127.0.0.1', port: 0 },
      keys: { privateKey: keys.b.privateKey, publicKeys },
      ...common,
    })
    open.push(b)
    const port = runtimeOf(b).network!.sync.port
    const a = await openDru({
      id: 'a',
      path: ':memory:',
      admin: { host: '127.0.0.1', port: 0 },
      peers: [{ id: 'b', url: `ws://127.0.0.1:${port}` }],
      keys: { privateKey: keys.a.privateKey, publicKeys },
      allowWritesWhileRestoring: true,
      ...common,
    })
    open.push(a)
    await a.change('d', (doc: Record<string, unknown>) => {
      doc.x = 1
    })
    const url = `${runtimeOf(a).admin!.url}/metrics`
    const deadline = Date.now() + 10_000
    let text = ''
    for (;;) {
      text = await (await fetch(url)).text()
      if (
        /dru_peer_connected\{[^}]*peer="b"[^}]*\} 1/.test(text) &&
        /dru_peer_lag_events\{peer="b",direction="outbound"[^}]*\} 0/.test(text)
      )
        break
      if (Date.now() > deadline) throw new Error(`peer gauges never showed b connected and caught up:\n${text}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    expect(text).toMatch(/dru_peer_lag_seconds\{[^}]*peer="b"[^}]*\} 0/)
  })
})
