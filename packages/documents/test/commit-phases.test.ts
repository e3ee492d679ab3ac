import { EventStore } from '@dru/store-sqlite'
import { afterEach, describe, expect, it } from 'vitest'
import { DocumentStore } from '@dru/documents'

const open: Array<{ store: EventStore; docs?: DocumentStore }> = []

afterEach(() => {
  for (const { store, docs } of open.splice(0)) {
    docs?.close()
    store.close()
  }
})

function openStore(druId: string): EventStore {
  const store = EventStore.open({ path: ':memory:', druId, skewPolicy: 'tolerate' })
  open.push({ store })
  return store
}

function withDocuments(store: EventStore): DocumentStore {
  const docs = new DocumentStore(store)
  open.find((o) => o.store === store)!.docs = docs
  return docs
}

/** Copies every event `from` holds and `to` lacks. */
function sync(from: EventStore, to: EventStore): void {
  for (const batch of from.eventsMissing(to.vv())) to.ingest(batch)
}

describe('commit phases: documents derive before anyone is notified', () => {
  it('a notify listener registered before the documents still sees them materialised', () => {
    const a = openStore('eu-west-1')
    const docsA = withDocuments(a)
    const b = openStore('us-east-1')
    const order: string[] = []
    const seen: unknown[] = []
    // Registered first, in the default (notify) phase, like sync or metrics would be.
    b.onCommit((events, source) => {
      order.push(`notify:${source}`)
      seen.push(docsB.get(events[0]!.docId))
    })
    const docsB = withDocuments(b)
    docsB.onUpdate((_ids, source) => order.push(`documents:${source}`))

    docsA.change('order-1', (d) => {
      d.status = 'new'
    })
    sync(a, b)
    // Now cached on B: a later remote change reaches it only through the commit listener.
    expect(docsB.isCached('order-1')).toBe(true)
    docsA.change('order-1', (d) => {
      d.status = 'paid'
    })
    sync(a, b)
    docsB.change('order-2', (d) => {
      d.status = 'new'
    })

    expect(seen).toEqual([{ status: 'new' }, { status: 'paid' }, { status: 'new' }])
    expect(order).toEqual([
      'documents:remote',
      'notify:remote',
      'documents:remote',
      'notify:remote',
      'documents:local',
      'notify:local',
    ])
  })
})
