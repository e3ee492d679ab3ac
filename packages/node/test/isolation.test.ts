import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as A from '@automerge/automerge'
import { afterEach, describe, expect, it } from 'vitest'
import { GENESIS_HASH, encodeHlc, sealEvent, type DruEvent, type Origin } from '@dru/core'
import { DocumentStore, actorForOrigin } from '@dru/documents'
import { EventStore } from '@dru/store-sqlite'
import { openDru, runtimeOf, type Dru } from '../src/index.js'

// A document whose stored snapshot cannot be loaded is isolated: reading it fails with a
// typed error, it is listed in /status and fails dru verify, and every endpoint keeps
// answering. (A change Automerge refuses no longer isolates anything: it is skipped.)

const dirs: string[] = []
const drus: Dru[] = []
afterEach(async () => {
  for (const d of drus.splice(0)) await d.close()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** A database whose document `poison` has a damaged snapshot (a bad disk, or one written before snapshots were checked). */
function poisonedDb(): string {
  const dir = mkdtempSync(join(tmpdir(), 'dru-isolation-'))
  dirs.push(dir)
  const path = join(dir, 'a.db')
  const bare = EventStore.open({ path, druId: 'a', skewPolicy: 'tolerate' })
  const docs = new DocumentStore(bare, { onError: () => undefined })
  const origin = 'm/1' as Origin
  let doc = A.init<Record<string, number>>({ actor: actorForOrigin(origin) })
  let prev = GENESIS_HASH
  const events: DruEvent[] = ['x', 'y'].map((tag, i) => {
    doc = A.change(doc, (d) => (d[tag] = 1))
    const e = sealEvent({
      origin,
      seq: i + 1,
      hlc: encodeHlc({ wall: 1_700_000_000_000 + i, counter: 0, node: origin }),
      docId: 'poison',
      change: A.getLastLocalChange(doc)!,
      prev,
    })
    prev = e.hash
    return e
  })
  bare.ingest(events)
  docs.get('poison')
  docs.flushSnapshots()
  bare.db.prepare("update docs set snapshot = x'85dead' where doc_id = 'poison'").run()
  docs.close()
  bare.close()
  return path
}

async function json(url: string, init?: RequestInit): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, init)
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

describe('an isolated document', () => {
  it('fails alone: typed errors for it, /status and verify name it, /status, /verify?deep=1, /compact and /metrics keep answering', async () => {
    const dru = await openDru({ id: 'a', path: poisonedDb(), admin: { host: '127.0.0.1', port: 0 } })
    drus.push(dru)
    await dru.change('healthy', (d) => (d.ok = true))
    expect(() => dru.get('poison')).toThrow(expect.objectContaining({ code: 'DOCUMENT_ISOLATED' }))
    await expect(dru.change('poison', (d) => (d.x = 2))).rejects.toMatchObject({ code: 'DOCUMENT_ISOLATED' })
    expect(dru.get('healthy')).toEqual({ ok: true })
    const base = runtimeOf(dru).admin!.url
    const status = await json(`${base}/status`)
    expect(status.status).toBe(200)
    expect(status.body.isolatedDocuments).toMatchObject({ count: 1, docs: [{ docId: 'poison' }] })
    const verify = await json(`${base}/verify?deep=1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
    })
    expect(verify.status).toBe(200)
    expect(verify.body.ok).toBe(false)
    expect(verify.body.local).toMatchObject({ isolatedDocuments: 1, isolated: ['poison'], documents: 1 })
    const compact = await json(`${base}/compact`, { method: 'POST', headers: { 'content-type': 'application/json' } })
    expect(compact.status).toBe(200)
    const metrics = await (await fetch(`${base}/metrics`)).text()
    expect(metrics).toMatch(/dru_documents_isolated\{[^}]*\} 1/)
  })
})
