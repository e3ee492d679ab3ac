import {
  DruError,
  GENESIS_HASH,
  encodeHlc,
  decodeHlc,
  hashEvent,
  validateEvent,
  MAX_SEQ,
  type DruEvent,
  type Origin,
} from '@dru/core'
import { MAX_EVENTS_PER_FRAME, SIGNATURE_BYTES } from './limits.js'

/**
 * The compact form of an `events` frame's batch (protocol 6). It carries only what the
 * receiver cannot compute:
 *
 *     [names, docs, runs]
 *     names: string[]   origins and HLC nodes, each written once per frame
 *     docs:  string[]   document ids, each written once per frame
 *     run:   [origin, firstSeq, prev | null, events, sig | null]
 *     event: [wallDelta, counter, node, doc, change]
 *
 * A run is consecutive events of one origin whose chain links (`prev` is the previous
 * event's hash). No event carries its hash or `prev`: the receiver recomputes each hash from
 * the event's contents and the previous hash, starting from the run's `prev` — or, when that
 * is null, from the last event of the same origin's previous run in this frame, which the
 * run must continue. HLCs travel as numbers (the wall clock as a delta from the previous
 * event's, usually a few bytes) and are written back in their canonical text form, so every
 * recomputed hash is the one the origin computed. Only the signature that checks an origin's
 * last event in the frame is sent: the receiver verifies exactly that one (batch-check.ts)
 * and drops the others, and the hash chain carries it back over every event before it. A
 * changed byte anywhere therefore changes that origin's last hash and fails its signature
 * (BAD_SIGNATURE naming origin and seq), besides failing the frame's seal.
 */

/** The wire form of a batch (after the frame's type). */
export function batchToWire(batch: readonly DruEvent[]): unknown[] {
  const names = new Dictionary()
  const docs = new Dictionary()
  const runs: unknown[][] = []
  // Per origin: its last event so far and the run it is in (to attach only the final signature).
  const lastOf = new Map<string, { event: DruEvent; run: unknown[] }>()
  let run: unknown[] | undefined
  let runEvents: unknown[][] = []
  let last: DruEvent | undefined
  let wall = 0
  for (const e of batch) {
    const h = decodeHlc(e.hlc)
    const continues = last !== undefined && last.origin === e.origin && e.seq === last.seq + 1 && e.prev === last.hash
    if (!continues) {
      const before = lastOf.get(e.origin)?.event
      const linked = before !== undefined && e.seq === before.seq + 1 && e.prev === before.hash
      runEvents = []
      run = [names.id(e.origin), e.seq, linked ? null : Buffer.from(e.prev, 'hex'), runEvents, null]
      runs.push(run)
    }
    runEvents.push([h.wall - wall, h.counter, names.id(h.node), docs.id(e.docId), e.change])
    wall = h.wall
    last = e
    lastOf.set(e.origin, { event: e, run: run! })
  }
  for (const { event, run: r } of lastOf.values()) if (event.sig !== undefined) r[4] = event.sig
  return [names.list, docs.list, runs]
}

class Dictionary {
  readonly list: string[] = []
  readonly #ids = new Map<string, number>()
  id(value: string): number {
    let id = this.#ids.get(value)
    if (id === undefined) {
      id = this.list.length
      this.list.push(value)
      this.#ids.set(value, id)
    }
    return id
  }
}

const invalid = (message: string): never => {
  throw new DruError('INVALID_FRAME', message)
}

function strings(v: unknown, what: string): string[] {
  if (!Array.isArray(v)) invalid(`${what} must be an array`)
  const list = v as unknown[]
  if (list.length > MAX_EVENTS_PER_FRAME) invalid(`${what} lists more than ${MAX_EVENTS_PER_FRAME} entries`)
  for (const [i, s] of list.entries())
    if (typeof s !== 'string' || s.length === 0 || s.length > 256) invalid(`${what}[${i}] must be a short string`)
  return list as string[]
}

function index(v: unknown, list: readonly string[], what: string): string {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= list.length)
    invalid(`${what} must index its dictionary (0..${list.length - 1})`)
  return list[v as number]!
}

/**
 * Reads a batch's wire form back into events with their hashes and links, checking every
 * field (INVALID_FRAME naming where). Signatures are not checked here: the session checks
 * each origin's last one against its key.
 */
export function batchFromWire(namesValue: unknown, docsValue: unknown, runsValue: unknown): DruEvent[] {
  const names = strings(namesValue, 'events.names')
  const docs = strings(docsValue, 'events.docs')
  if (!Array.isArray(runsValue)) return invalid('events.runs must be an array')
  if (runsValue.length === 0) invalid('events.runs must not be empty')
  if (runsValue.length > MAX_EVENTS_PER_FRAME) invalid(`events.runs lists more than ${MAX_EVENTS_PER_FRAME} runs`)
  const out: DruEvent[] = []
  const lastOf = new Map<string, DruEvent>()
  let wall = 0
  for (const [r, runValue] of (runsValue as unknown[]).entries()) {
    const where = `events.runs[${r}]`
    if (!Array.isArray(runValue) || runValue.length !== 5) invalid(`${where} must be [origin, seq, prev, events, sig]`)
    const [originIx, firstSeq, prevValue, eventsValue, sig] = runValue as unknown[]
    const origin = index(originIx, names, `${where}.origin`) as Origin
    if (typeof firstSeq !== 'number' || !Number.isInteger(firstSeq) || firstSeq < 1 || firstSeq > MAX_SEQ)
      invalid(`${where}.seq must be an integer in 1..${MAX_SEQ}`)
    let prev: string
    if (prevValue === null) {
      const before = lastOf.get(origin)
      if (before === undefined || before.seq + 1 !== firstSeq)
        invalid(`${where} has no prev but does not continue an earlier run of ${origin} in this frame`)
      prev = before!.hash
    } else {
      if (!(prevValue instanceof Uint8Array) || prevValue.byteLength !== 32) invalid(`${where}.prev must be 32 bytes`)
      prev = Buffer.from(prevValue as Uint8Array).toString('hex')
    }
    if (!Array.isArray(eventsValue) || eventsValue.length === 0) invalid(`${where}.events must be a non-empty array`)
    const events = eventsValue as unknown[]
    if (out.length + events.length > MAX_EVENTS_PER_FRAME)
      invalid(`events carries more than ${MAX_EVENTS_PER_FRAME} events`)
    if (sig !== null && !(sig instanceof Uint8Array && sig.byteLength === SIGNATURE_BYTES))
      invalid(`${where}.sig must be null or a 64-byte Ed25519 signature`)
    let seq = firstSeq as number
    let e: DruEvent | undefined
    for (const [i, value] of events.entries()) {
      const at = `${where}.events[${i}]`
      if (!Array.isArray(value) || value.length !== 5) invalid(`${at} must be [wall, counter, node, doc, change]`)
      const [delta, counter, nodeIx, docIx, change] = value as unknown[]
      if (!Number.isSafeInteger(delta)) invalid(`${at}.wall must be an integer`)
      wall += delta as number
      const hlc = encodeHlc({ wall, counter: counter as number, node: index(nodeIx, names, `${at}.node`) })
      if (seq > MAX_SEQ) invalid(`${at}.seq passes ${MAX_SEQ}`)
      const fields = { origin, seq, hlc, docId: index(docIx, docs, `${at}.doc`), change, prev }
      try {
        // Checks every field's type and range (a number that prints as a malformed HLC fails here).
        validateEvent({ ...fields, hash: GENESIS_HASH }, at)
      } catch (err) {
        throw new DruError('INVALID_FRAME', (err as Error).message, { cause: err })
      }
      e = { ...(fields as Omit<DruEvent, 'hash'>), hash: hashEvent(fields as Omit<DruEvent, 'hash'>) }
      out.push(e)
      prev = e.hash
      seq++
    }
    if (sig !== null) e = { ...e!, sig: sig as Uint8Array }
    out[out.length - 1] = e!
    lastOf.set(origin, e!)
  }
  return out
}
