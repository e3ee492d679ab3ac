import { createPrivateKey, createPublicKey } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { meetVv } from '@dru/core'
import { DocumentStore } from '@dru/documents'
import { EventStore } from '@dru/store-sqlite'
import {
  PeerProtocol,
  SEAL_TAG_BYTES,
  decodeFrame,
  decompressFrame,
  generateKeys,
  signerFor,
  silentLogger,
  type Frame,
  type SessionLimits,
} from '@dru/sync'

// Every open is a fresh incarnation, so a DRU restarted a thousand times has written under a
// thousand origins. Compaction retires them (head == base): handshakes, acks and status then
// carry a fixed-size summary instead of a thousand entries.

const keys = { a: generateKeys(), b: generateKeys() }
const SECRET = 'retirement-test-secret-0123'
const limits: SessionLimits = {
  maxFrameBytes: 16 << 20,
  maxBatchBytes: 1 << 20,
  maxUnackedBytes: 8 << 20,
  heartbeatMs: 1000,
  heartbeatTimeoutMs: 5000,
  preAuthMaxFrameBytes: 4096,
  handshakeTimeoutMs: 5000,
  framesPerSecond: 1e9,
  frameBurst: 1e9,
  costlyFramesPerSecond: 1e9,
  costlyFrameBurst: 1e9,
}
const dirs: string[] = []
const open: Array<{ close(): void }> = []
afterEach(() => {
  for (const x of open.splice(0).reverse()) x.close()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function openDocs(id: 'a' | 'b', path: string) {
  const store = EventStore.open({ path, druId: id, sign: signerFor(keys[id].privateKey), durability: 'process' })
  const docs = new DocumentStore(store)
  return { store, docs, close: () => (docs.close(), store.close()) }
}

/** A sent frame's type; frames after a side's auth carry the seal's tag at their end. */
function frameType(bytes: Uint8Array): Frame['type'] {
  try {
    return decodeFrame(bytes).type
  } catch {
    // Sealed: the tag follows the frame, which may be compressed.
    const frame = bytes.subarray(0, bytes.byteLength - SEAL_TAG_BYTES)
    return decodeFrame(decompressFrame(frame, limits.maxFrameBytes)).type
  }
}

/** Runs a handshake between a and b in memory; returns the frames each sent, by type with their byte sizes. */
function handshake(a: EventStore, b: EventStore): Array<{ from: string; type: Frame['type']; bytes: number }> {
  const publicKeys = new Map(Object.entries(keys).map(([id, k]) => [id, createPublicKey(k.publicKey)]))
  const queues: [Uint8Array[], Uint8Array[]] = [[], []]
  const sent: Array<{ from: string; type: Frame['type']; bytes: number }> = []
  const make = (log: EventStore, id: 'a' | 'b', dir: 0 | 1, role: 'dialer' | 'acceptor') =>
    new PeerProtocol(
      {
        log,
        druId: id,
        secret: SECRET,
        privateKey: createPrivateKey(keys[id].privateKey),
        publicKeys,
        limits,
        logger: silentLogger,
        now: () => 1_800_000_000_000,
      },
      {},
      {
        send: (bytes) => {
          queues[dir].push(bytes)
          sent.push({ from: id, type: frameType(bytes), bytes: bytes.byteLength })
        },
        close: () => undefined,
        bufferedAmount: 0,
      },
      role,
      role === 'dialer' ? 'b' : undefined,
    )
  const pa = make(a, 'a', 0, 'dialer')
  const pb = make(b, 'b', 1, 'acceptor')
  pa.start()
  pb.start()
  for (let i = 0; i < 20 && (queues[0].length || queues[1].length); i++) {
    for (const bytes of queues[0].splice(0)) pb.receive(bytes)
    for (const bytes of queues[1].splice(0)) pa.receive(bytes)
  }
  expect(pa.isOpen && pb.isOpen).toBe(true)
  pa.close()
  pb.close()
  return sent
}

describe('old incarnations are retired by compaction', () => {
  it('a DRU restarted 1,000 times (a write each time) keeps its handshake, acks and status small once compacted', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dru-retire-'))
    dirs.push(dir)
    const path = join(dir, 'a.db')
    for (let i = 0; i < 1000; i++) {
      const a = openDocs('a', path)
      a.docs.change(`doc-${i % 10}`, (d) => (d[`k${i}`] = i))
      a.close()
    }
    const a = openDocs('a', path)
    const b = openDocs('b', join(dir, 'b.db'))
    open.push(a, b)
    for (const batch of a.store.eventsMissing(b.store.vv())) b.store.ingest(batch)
    expect(Object.keys(a.store.vv())).toHaveLength(1000)

    const before = handshake(a.store, b.store)
    const vvBefore = before.filter((f) => f.type === 'vv').map((f) => f.bytes)
    // A thousand origins, each with its random 32-byte head: ~45 KB even compressed.
    expect(Math.min(...vvBefore)).toBeGreaterThan(30_000)

    // Both compact at what both hold: every origin is folded (the current ones hold nothing yet).
    for (const n of [a, b]) {
      const steps = n.docs.compact(meetVv([a.store.vv(), b.store.vv()]))
      while (!steps.next().done);
    }
    expect(a.store.retired()).toHaveLength(1000)
    const summary = a.store.summary()
    expect(summary.live.vv).toEqual({})
    expect(summary.retired.count).toBe(1000)
    expect(summary).toEqual(b.store.summary())
    // What /status and verification carry: a fixed-size summary.
    expect(JSON.stringify(summary).length).toBeLessThan(200)

    const after = handshake(a.store, b.store)
    for (const f of after) expect(f.bytes, `${f.from} ${f.type}`).toBeLessThan(1024)
    // No expand round trip was needed: the summaries name the same retired origins.
    expect(after.some((f) => f.type === 'expand')).toBe(false)
    expect(after.filter((f) => f.type === 'vv')).toHaveLength(2)

    // A new write un-retires nothing else: one live origin more, the rest stays summarised.
    a.docs.change('doc-new', (d) => (d.x = 1))
    for (const batch of a.store.eventsMissing(b.store.vv(), { belowBase: 'skip' })) b.store.ingest(batch)
    const later = handshake(a.store, b.store)
    for (const f of later) expect(f.bytes).toBeLessThan(1024)
  })
})
