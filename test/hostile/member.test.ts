import * as A from '@automerge/automerge'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { actorForOrigin } from '@dru/documents'
import type { Frame } from '@dru/sync'
import { Cluster, sleep } from '../procedures/cluster.js'
import { Ledger, assertNoFork, metric, rssOf } from './harness.js'
import { connectAsMember, signedChain, type RawPeer } from './raw-peer.js'

// Role: a member that lies. "m" holds the cluster secret and its own configured key, so it
// passes the handshake; then it claims what is not so. Real DRU processes a and b (full
// stack: documents, change checks) sync through proxies; m talks to a's sync port directly.
// What m can do is bounded: it can write under its own origin, nothing else; a lie is
// refused with a typed error, counted, and changes nothing a or b hold.

const IDS = ['a', 'b']
const MiB = 2 ** 20
let c: Cluster
let ledger: Ledger

beforeAll(async () => {
  c = await Cluster.create(IDS, {}, { members: ['m'] })
  await Promise.all(IDS.map((id) => c.start(id)))
  await c.waitConverged(IDS)
  ledger = new Ledger(c)
})

afterAll(async () => {
  await c?.dispose()
})

const asM = () =>
  connectAsMember(c.unit('a').listenPort, {
    id: 'm',
    verifier: 'a',
    secret: c.secret,
    privateKey: c.keys.m!.privateKey,
  })

async function refusedWith(p: RawPeer, code: string): Promise<void> {
  const err = await p.next('error')
  expect(err.code).toBe(code)
  await p.closed
}

/** A real Automerge change by m's actor (what a valid event of origin m/1 carries). */
function mChanges(n: number, docId: string): Uint8Array[] {
  let doc = A.init<Record<string, number>>({ actor: actorForOrigin('m/1') })
  const out: Uint8Array[] = []
  for (let i = 0; i < n; i++) {
    doc = A.change(doc, (d) => (d[`k${i}`] = i))
    out.push(A.getLastLocalChange(doc)!)
  }
  void docId
  return out
}

async function fp(unit: string): Promise<{ digest: string; vv: Record<string, number> }> {
  return (await c.status(unit)).fingerprint
}

describe('hostile role: member that lies (secret and key, false claims)', () => {
  it("an ack claiming a seq of a's own origin far beyond its head: PROTOCOL_VIOLATION, a stays writable, no restore mode", async () => {
    const before = await metric(c, 'a', 'dru_protocol_violations_total')
    await ledger.around(IDS, 'ack-own-origin', async () => {
      const origin = (await c.status('a')).origin
      const m = await asM()
      m.send({ type: 'ack', vv: { [origin]: 1_000_000 } })
      await refusedWith(m, 'PROTOCOL_VIOLATION')
      const st = await c.status('a')
      expect(st.origin).toBe(origin) // no new incarnation taken
      expect(st.writable).not.toBe(false)
      expect((st as { staleCopy?: unknown }).staleCopy).toBeUndefined()
    })
    expect(await metric(c, 'a', 'dru_protocol_violations_total')).toBeGreaterThan(before)
  })

  it('acks naming origins nobody holds: PROTOCOL_VIOLATION, nothing kept', async () => {
    await ledger.around(IDS, 'ack-invented', async () => {
      const m = await asM()
      const vv = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`b/${1_000_000 + i}`, 3]))
      m.send({ type: 'ack', vv })
      await refusedWith(m, 'PROTOCOL_VIOLATION')
      const gaps = await (await fetch(`${c.unit('a').adminUrl}/gaps`)).text()
      expect(gaps).not.toContain('b/1000000')
    })
  })

  it('10 vv frames naming 10,000 invented origins each: bounded by one frame, forgotten with the session', async () => {
    const pid = c.unit('a').child!.pid!
    const rssBefore = rssOf(pid)
    await ledger.around(IDS, 'vv-invented', async () => {
      const m = await asM()
      const live = (await fp('a')).vv
      for (let f = 0; f < 10; f++) {
        const vv: Record<string, number> = { ...live }
        const heads: Record<string, string> = {}
        for (let i = 0; i < 10_000; i++) vv[`b/${2_000_000 + f * 10_000 + i}`] = 1
        for (const o of Object.keys(vv)) heads[o] = 'a'.repeat(64)
        // Heads of origins a holds must be true, or that is a fork claim (a different case).
        const status = await c.status('a')
        for (const o of Object.keys(live))
          heads[o] = (status.fingerprint as { heads?: Record<string, string> }).heads?.[o] ?? heads[o]!
        m.send({
          type: 'vv',
          summary: {
            live: { vv, heads },
            retired: { count: 0, digest: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' },
          },
          bases: {},
          full: false,
        } as Frame)
      }
      await sleep(300)
      m.ws.close()
      await m.closed
      const gaps = await (await fetch(`${c.unit('a').adminUrl}/gaps`)).text()
      expect(gaps.length).toBeLessThan(100_000) // the departed session's claims are gone
    })
    expect(rssOf(pid) - rssBefore).toBeLessThan(32 * MiB)
  })

  it('snapshots, folded envelopes and bootstrap ends nobody asked for: PROTOCOL_VIOLATION, documents unchanged', async () => {
    await ledger.around(IDS, 'unsolicited-bootstrap', async () => {
      await c.waitConverged(IDS)
      const digest = (await fp('a')).digest
      const doc = 'tok-a-unsolicited-bootstrap-before'
      const frames: Frame[] = [
        { type: 'snapshot', docs: [{ docId: doc, bytes: A.save(A.from({ token: 'overwritten' })) }] },
        { type: 'bootstrap-end' } as Frame,
      ]
      const e = signedChain('m/1', 1, 1, c.keys.m!.privateKey)[0]!
      frames.push({
        type: 'folded',
        envelopes: [{ origin: e.origin, seq: 1, hlc: e.hlc, docId: doc, changeHash: new Uint8Array(32), sig: e.sig! }],
      } as Frame)
      for (const f of frames) {
        const m = await asM()
        m.send(f)
        await refusedWith(m, 'PROTOCOL_VIOLATION')
      }
      expect((await fp('a')).digest).toBe(digest)
    })
  })

  it('a signed event whose change is not an Automerge change, or reuses an actor and seq: INVALID_EVENT, never stored or forwarded', async () => {
    await ledger.around(IDS, 'poison-change', async () => {
      const garbage = signedChain('m/1', 1, 2, c.keys.m!.privateKey, {
        docId: 'poisoned',
        change: (i) => new Uint8Array([0xde, 0xad, i]),
      })
      let m = await asM()
      m.send({ type: 'events', batch: garbage })
      await refusedWith(m, 'INVALID_EVENT')
      // Two different changes under one Automerge actor and seq.
      const one = A.getLastLocalChange(
        A.change(A.init<Record<string, number>>({ actor: actorForOrigin('m/1') }), (d) => (d.x = 1)),
      )!
      const two = A.getLastLocalChange(
        A.change(A.init<Record<string, number>>({ actor: actorForOrigin('m/1') }), (d) => (d.x = 2)),
      )!
      const reused = signedChain('m/1', 1, 2, c.keys.m!.privateKey, {
        docId: 'poisoned',
        change: (i) => (i === 0 ? one : two),
      })
      m = await asM()
      m.send({ type: 'events', batch: reused })
      await refusedWith(m, 'INVALID_EVENT')
      for (const u of IDS) expect((await fp(u)).vv['m/1'], u).toBeUndefined()
      expect(await c.read('a', 'poisoned')).toBeNull()
    })
  })

  it('a change Automerge refuses (an operation on a missing object) or one that does not survive save and load (a phantom predecessor): documents stay readable and writable on every DRU, through /compact and restarts', async () => {
    await ledger.around(IDS, 'crafted-changes', async () => {
      expect((await c.write('b', 'victim', { owner: 'b' })).status).toBe(200)
      await c.waitConverged(IDS)
      const mActor = actorForOrigin('m/1')
      const status = await c.status('a')
      expect(status.fingerprint.vv['m/1'] ?? 0).toBe(0) // m has not written yet: its first change in each document is seq 1
      // Crafted from a good first change by m's actor: actor and seq are right, the operations are not.
      const first = () =>
        A.decodeChange(
          A.getLastLocalChange(A.change(A.init<Record<string, number>>({ actor: mActor }), (d) => (d.x = 1)))!,
        )
      const missing = A.encodeChange({ ...first(), ops: first().ops.map((op) => ({ ...op, obj: `9999@${mActor}` })) })
      const phantom = A.encodeChange({ ...first(), ops: first().ops.map((op) => ({ ...op, pred: [`99@${mActor}`] })) })
      const [e1] = signedChain('m/1', 1, 1, c.keys.m!.privateKey, { docId: 'victim', change: () => missing })
      const [e2] = signedChain('m/1', 2, 1, c.keys.m!.privateKey, {
        docId: 'bomb',
        change: () => phantom,
        prev: e1!.hash,
      })
      const m = await asM()
      m.send({ type: 'events', batch: [e1!, e2!] })
      await c.waitFor(
        'the crafted events on a and b',
        async () => (await fp('a')).vv['m/1'] === 2 && (await fp('b')).vv['m/1'] === 2,
      )
      m.ws.close()
      for (const u of IDS) {
        expect(await c.read(u, 'victim'), u).toEqual({ owner: 'b' })
        expect(await c.read(u, 'bomb'), u).toEqual({ x: 1 })
        expect((await c.write(u, 'victim', { [`after-${u}`]: true })).status, u).toBe(200)
      }
      await c.waitConverged(IDS)
      for (const u of IDS) {
        const st = (await c.status(u)) as unknown as {
          rejectedChanges?: { count: number }
          isolatedDocuments?: unknown
        }
        expect(st.rejectedChanges?.count, u).toBe(1)
        expect(st.isolatedDocuments, u).toBeUndefined()
      }
      // Routine operations: a compaction (which would snapshot both documents), then restarts.
      for (const u of IDS) {
        const r = await fetch(`${c.unit(u).adminUrl}/compact`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{}',
        })
        expect(r.status).toBe(200)
        await r.text()
        await c.kill(u, 'SIGTERM')
        await c.start(u)
      }
      await c.waitConverged(IDS)
      for (const u of IDS) {
        expect(await c.read(u, 'victim'), u).toEqual({ 'after-a': true, 'after-b': true, owner: 'b' })
        expect(await c.read(u, 'bomb'), u).toEqual({ x: 1 })
        expect(((await c.status(u)) as unknown as { isolatedDocuments?: unknown }).isolatedDocuments, u).toBeUndefined()
      }
    })
  })

  it("events in b's name signed with m's key: BAD_SIGNATURE, m quarantined, b untouched", async () => {
    await ledger.around(IDS, 'forged-origin', async () => {
      await c.waitConverged(IDS)
      const st = await c.status('a')
      const bOrigin = (await c.status('b')).origin
      const head = st.fingerprint.vv[bOrigin]!
      const heads = (st.fingerprint as { heads?: Record<string, string> }).heads
      const m = await asM()
      m.send({
        type: 'events',
        batch: signedChain(bOrigin, head + 1, 2, c.keys.m!.privateKey, { prev: heads?.[bOrigin] }),
      })
      await refusedWith(m, 'BAD_SIGNATURE')
      const after = await c.status('a')
      expect((after.peers.find((p) => p.id === 'b') as { quarantined?: boolean }).quarantined ?? false).toBe(false)
      expect(after.fingerprint.vv[bOrigin]).toBe(head)
      // m is refused from now on, even with its real secret and key.
      await expect(asM()).rejects.toThrow()
      const unq = await fetch(`${c.unit('a').adminUrl}/peers/m/unquarantine`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      })
      expect(unq.status).toBe(200)
    })
  })

  it('what m may do, it can: its own valid events are stored by a and forwarded to b', async () => {
    await ledger.around(IDS, 'honest-m', async () => {
      const changes = mChanges(3, 'from-m')
      const m = await asM().catch(async (err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify(await c.status('a'))}`)
      })
      const st = await c.status('a')
      const from = (st.fingerprint.vv['m/1'] ?? 0) + 1
      const prev = (st.fingerprint as { heads?: Record<string, string> }).heads?.['m/1']
      m.send({
        type: 'events',
        batch: signedChain('m/1', from, 3, c.keys.m!.privateKey, {
          docId: 'from-m',
          change: (i) => changes[i]!,
          ...(prev ? { prev } : {}),
        }),
      })
      await c.waitFor(
        'm/1 on a and b',
        async () => (await fp('a')).vv['m/1'] === from + 2 && (await fp('b')).vv['m/1'] === from + 2,
      )
      expect(await c.read('b', 'from-m')).toEqual({ k0: 0, k1: 1, k2: 2 })
      m.ws.close()
    })
  })

  it('leaves no fork and one set of events in every database file', async () => {
    await ledger.everywhere(IDS)
    await assertNoFork(
      c,
      IDS.map((id) => c.unit(id).dbPath),
    )
  })
})
