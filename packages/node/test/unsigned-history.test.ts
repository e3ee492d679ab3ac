import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { isDruError } from '@dru/core'
import { EventStore, unsignedOrigins } from '@dru/store-sqlite'
import { generateKeys, openDru, runtimeOf, type Dru } from '../src/index.js'
import { closedAfterEach, until } from './fixtures/wait.js'

// A DRU tried out alone (no keys) that later joins a cluster with keys: its own unsigned
// history is signed at open, so its peers accept it instead of quarantining it; another DRU's
// unsigned events cannot be signed, so a networked open refuses with UNSIGNED_HISTORY.

const SECRET = 'unsigned-history-secret-0123456789'
const cleanups = closedAfterEach()

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'dru-unsigned-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

describe('a history written without keys', () => {
  it('is signed when the DRU first opens with keys, and its peers accept all of it', async () => {
    const dir = tempDir()
    const path = join(dir, 'a.db')
    const trial = await openDru({ id: 'a', path })
    for (let i = 0; i < 30; i++)
      await trial.change(`trial-${i}`, (d: { n?: number }) => {
        d.n = i
      })
    await trial.close()
    const peek = EventStore.open({ path, druId: 'a' })
    expect(unsignedOrigins(peek).map((u) => u.druId)).toEqual(['a'])
    peek.close()

    const keys = { a: generateKeys(), b: generateKeys() }
    const publicKeys = { a: keys.a.publicKey, b: keys.b.publicKey }
    const sync = { heartbeatMs: 100, heartbeatTimeoutMs: 800, startupGraceMs: 300 }
    const b: Dru = await openDru({
      id: 'b',
      path: ':memory:',
      listen: { host: '127.0.0.1', port: 0 },
      secret: SECRET,
      keys: { privateKey: keys.b.privateKey, publicKeys },
      sync,
    })
    cleanups.push(() => b.close())
    const lines: string[] = []
    const a: Dru = await openDru({
      id: 'a',
      path,
      peers: [{ id: 'b', url: `ws://127.0.0.1:${runtimeOf(b).network!.sync.port}` }],
      secret: SECRET,
      keys: { privateKey: keys.a.privateKey, publicKeys },
      sync,
      logger: {
        info: (m: string) => lines.push(m),
        warn: () => undefined,
        error: () => undefined,
        debug: () => undefined,
      },
    })
    cleanups.push(() => a.close())
    // One signature on the head vouches for all 30 (each hash covers its predecessor's).
    expect(lines.some((l) => /signed 1 event closing this DRU's own unsigned history/.test(l))).toBe(true)

    await until('b holds the trial writes', () => b.get('trial-29') !== undefined)
    expect(b.get<{ n: number }>('trial-0')).toEqual({ n: 0 })
    await until('both active', () => a.state() === 'active' && b.state() === 'active')
    // Nobody was quarantined for the old events.
    expect(
      runtimeOf(b)
        .network!.peerStatus()
        .map((p) => p.quarantined),
    ).toEqual([false])
    expect(
      runtimeOf(a)
        .network!.peerStatus()
        .map((p) => p.quarantined),
    ).toEqual([false])
  })

  it("another DRU's unsigned events: a networked open refuses with UNSIGNED_HISTORY and changes nothing", async () => {
    const dir = tempDir()
    const x = EventStore.open({ path: join(dir, 'x.db'), druId: 'x' })
    const xEvents = [x.append('doc', new Uint8Array([1])), x.append('doc', new Uint8Array([2]))]
    x.close()
    const path = join(dir, 'a.db')
    const a0 = EventStore.open({ path, druId: 'a' })
    a0.ingest(xEvents)
    a0.append('mine', new Uint8Array([3]))
    a0.close()

    const keys = { a: generateKeys(), x: generateKeys() }
    const err = await openDru({
      id: 'a',
      path,
      listen: { host: '127.0.0.1', port: 0 },
      secret: SECRET,
      keys: { privateKey: keys.a.privateKey, publicKeys: { a: keys.a.publicKey, x: keys.x.publicKey } },
    }).catch((e: unknown) => e)
    expect(isDruError(err, 'UNSIGNED_HISTORY')).toBe(true)
    expect((err as Error).message).toMatch(/other DRUs written without keys \(x\/\d+ \(up to #2\)\)/)
    // Nothing was signed, not even its own events: the refusal changed nothing.
    const after = EventStore.open({ path, druId: 'a' })
    expect(
      unsignedOrigins(after)
        .map((u) => u.druId)
        .sort(),
    ).toEqual(['a', 'x'])
    after.close()
  })
})
