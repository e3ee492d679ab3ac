import { createHash } from 'node:crypto'
import * as A from '@automerge/automerge'
import { DruError } from '@dru/core'
import { canonicalJson, documentDigest } from './canonical.js'
import type { AnyDoc } from './doc-cache.js'

/** Per-document state digest: sorted heads, canonical JSON, and their hash. */
export interface DocumentDigest {
  readonly docId: string
  readonly heads: readonly string[]
  readonly json: string
  readonly digest: string
}

/** Sorted heads of a document. */
export function headsOf(doc: AnyDoc): string[] {
  return [...A.getHeads(doc)].sort()
}

/** Heads, canonical JSON and their hash for one document. */
export function digestOf(docId: string, doc: AnyDoc): DocumentDigest {
  const heads = headsOf(doc)
  const json = canonicalJson(doc)
  return { docId, heads, json, digest: documentDigest(heads, json) }
}

/**
 * A digest over every document's state, in the order of `docIds`, each read through
 * `digest` (undefined when it does not exist). Two DRUs with the same digest hold the same
 * materialised state. An isolated document still counts, visibly: its state cannot equal
 * a readable one.
 */
export function clusterDigest(
  docIds: Iterable<string>,
  digest: (docId: string) => DocumentDigest | undefined,
): { digest: string; documents: number; isolated: number } {
  const h = createHash('sha256')
  let documents = 0
  let isolated = 0
  for (const docId of docIds) {
    let d: DocumentDigest | undefined
    try {
      d = digest(docId)
    } catch (err) {
      if (!(err instanceof DruError && err.code === 'DOCUMENT_ISOLATED')) throw err
      h.update(docId).update('\0').update('ISOLATED').update('\n')
      isolated++
      continue
    }
    if (!d) continue
    h.update(docId).update('\0').update(d.digest).update('\n')
    documents++
  }
  return { digest: h.digest('hex'), documents, isolated }
}
