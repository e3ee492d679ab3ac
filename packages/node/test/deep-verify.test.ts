import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as A from '@automerge/automerge'
import { afterEach, describe, expect, it } from 'vitest'
import { TREE_LEVELS } from '@dru/core'
import { DocumentStore } from '@dru/documents'
import { EventStore } from '@dru/store-sqlite'
import { createOperations } from '../src/operations.js'
import type { RepairJson, VerifyJson } from '../src/admin-api.js'
import { generateKeys, openDru, runtimeOf, type Dru, type DruConfig } from '../src/index.js'

// `dru verify --deep` through two real DRUs and the admin API: documents altered behind a
// DRU's log (snapshots replaced while it was stopped) are named, with both sides' heads,
// by walking the digest tree over the peer protocol; `POST /repair` rebuilds them from the
// log and verifies again. The 10,000-document case runs at the documents level
// (packages/documents/test/digest-tree.test.ts); this one checks the whole path.

const TOKEN = 'deep-verify-admin-token-0123456789'
const dirs: string[] = []
const drus: Dru[] = []
afterEach(async () => {
  for (const d of drus.splice(0)) await d.close()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

async function post<T>(dru: Dru, path: string, body?: unknown, token = TOKEN): Promise<{ status: number; body: T }> {
  const res = await fetch(`${runtimeOf(dru).admin!.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  })
  return { status: res.status, body: (await res.json()) as T }
}

async function until(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error('condition not reached')
}

/** Replaces the snapshot of each document by one holding a change the log never saw. */
function tamper(path: string, docIds: readonly string[]): void {
  const store = EventStore.open({ path, druId: 'a', skewPolicy: 'tolerate' })
  try {
    for (const docId of docIds) {
      const row = store.db.prepare('select snapshot from docs where doc_id = ?').get(docId) as { snapshot: Buffer }
      const doc = A.change(A.load<{ n?: number }>(row.snapshot), (d) => {
        d.n = -1
      })
      store.db.prepare('update docs set snapshot = ? where doc_id = ?').run(A.save(doc), docId)
    }
  } finally {
    store.close()
  }
}

describe('deep verify and repair between two DRUs', () => {
  it('names exactly the documents altered behind the log, in bounded round trips and bytes; repair makes both sides verify', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dru-deep-'))
    dirs.push(dir)
    const keys = { a: generateKeys(), b: generateKeys() }
    const publicKeys = { a: keys.a.publicKey, b: keys.b.publicKey }
    const common = {
      secret: 'deep-verify-secret-0123456789',
      sync: { heartbeatMs: 100, heartbeatTimeoutMs: 2_000, startupGraceMs: 300 },
      admin: { host: '127.0.0.1', port: 0, token: TOKEN },
    }
    const b = await openDru({
      id: 'b',
      path: ':memory:',
      listen: { host: '127.0.0.1', port: 0 },
      keys: { privateKey: keys.b.privateKey, publicKeys },
      ...common,
    })
    drus.push(b)
    const configA: DruConfig = {
      id: 'a',
      path: join(dir, 'a.db'),
      peers: [{ id: 'b', url: `ws://127.0.0.1:${runtimeOf(b).network!.sync.port}` }],
      keys: { privateKey: keys.a.privateKey, publicKeys },
      ...common,
    }
    let a = await openDru(configA)
    drus.push(a)
    const ids = Array.from({ length: 300 }, (_, i) => `order-${i}`)
    for (const id of ids)
      await b.change<{ n?: number }>(id, (d) => {
        d.n = 1
      })
    await until(async () => (await a.verify()).ok)
    const altered = ['order-7', 'order-150', 'order-299']
    for (const id of altered) a.get(id) // cached, so closing writes their snapshots
    await a.close()
    drus.splice(drus.indexOf(a), 1)
    tamper(configA.path!, altered)
    a = await openDru(configA)
    drus.push(a)
    await a.ready()
    await until(async () => (await a.verify()).ok)

    const v = await post<VerifyJson>(a, '/verify?deep=1')
    expect(v.status).toBe(200)
    expect(v.body.ok).toBe(false)
    const peer = v.body.peers[0]!
    expect(peer).toMatchObject({ peer: 'b', reachable: true, equal: false, logsEqual: true, differingDocuments: 3 })
    expect([...peer.docsDiffering!].sort()).toEqual([...altered].sort())
    for (const d of peer.differences!) {
      // Ours holds the unlogged change on top of the logged one; the peer only the logged one.
      expect(d.local!.heads).toHaveLength(1)
      expect(d.remote!.heads).toHaveLength(1)
      expect(d.local!.heads).not.toEqual(d.remote!.heads)
    }
    expect(peer.tree!.roundTrips).toBeLessThanOrEqual(TREE_LEVELS + 2)
    // 300 digests would take ~300 × 45 bytes; the walk costs ~2 KiB per difference whatever the count.
    expect(peer.tree!.bytes).toBeLessThan(3 * 3_000)
    // The peer sees the same three from its side.
    const fromB = await post<VerifyJson>(b, '/verify?deep=1')
    expect([...fromB.body.peers[0]!.docsDiffering!].sort()).toEqual([...altered].sort())

    // Bad input is refused with a typed error and changes nothing.
    const root = (await a.verify({ deep: true })).local.stateDigest
    expect((await post(a, '/repair', { docs: ['order-7'] }, 'wrong-token-0123456789012345')).status).toBe(401)
    expect(await post(a, '/repair', '{"docs": "order-7"}')).toMatchObject({
      status: 400,
      body: { code: 'INVALID_ARGUMENT' },
    })
    expect(await post(a, '/repair', { docs: [] })).toMatchObject({ status: 400 })
    expect(await post(a, '/repair', { docs: ['order-7'], extra: 1 })).toMatchObject({ status: 400 })
    expect(await post(a, '/repair', { docs: ['order-7', 'no-such-doc'] })).toMatchObject({
      status: 404,
      body: { code: 'NOT_FOUND' },
    })
    expect((await a.verify({ deep: true })).local.stateDigest).toBe(root)

    const r = await post<RepairJson>(a, '/repair', { docs: altered })
    expect(r.status).toBe(200)
    expect(r.body).toMatchObject({ ok: true, logsDiffer: [], stillDiffering: [] })
    for (const d of r.body.repaired) {
      expect(d.droppedChanges).toBe(1)
      expect(d.before!.digest).not.toBe(d.after!.digest)
    }
    expect(r.body.verify?.ok).toBe(true)
    expect((await post<VerifyJson>(a, '/verify?deep=1')).body.ok).toBe(true)
    expect((await post<VerifyJson>(b, '/verify?deep=1')).body.ok).toBe(true)
    expect(a.get('order-150')).toEqual({ n: 1 })
  }, 60_000)

  it('repair refuses to touch anything while the log differs from a peer, and says catch up', async () => {
    const store = EventStore.open({ path: ':memory:', druId: 'a', skewPolicy: 'tolerate' })
    const documents = new DocumentStore(store)
    try {
      documents.change('x', (d) => {
        d.n = 1
      })
      const ops = createOperations(store, documents, {
        peerStatus: () => [],
        verifyPeers: async () => [{ peer: 'b', reachable: true, equal: false }],
        configuredPeers: 1,
      })
      const loads = documents.stats().loads
      const r = await ops.repair(['x'], () => undefined)
      expect(r).toMatchObject({ ok: false, logsDiffer: ['b'], repaired: [] })
      expect(documents.stats().loads).toBe(loads)
      await expect(ops.repair([], () => undefined)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
      await expect(ops.repair(['x', '\u0000'], () => undefined)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
      await expect(ops.repair(['nope'], () => undefined)).rejects.toMatchObject({ code: 'NOT_FOUND' })
    } finally {
      documents.close()
      store.close()
    }
  })
})
