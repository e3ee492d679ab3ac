import {
  DruError,
  GENESIS_HASH,
  MAX_CHANGE_BYTES,
  MAX_SEQ,
  decodeHlc,
  encodeHlc,
  hashedEvent,
  isDocId,
  isOrigin,
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

// The ranges core's encodeHlc writes in its fixed widths (15 and 10 digits).
const HLC_WALL_LIMIT = 1e15
const HLC_COUNTER_LIMIT = 1e10
// core's HLC text form: a node of 1-96 characters, no line terminators.
const HLC_NODE = /^.{1,96}$/

/** A dictionary of the frame, each entry checked once (not once per event that names it). */
function dictionary(v: unknown, what: string, ok: (s: string) => boolean): { list: string[]; ok: boolean[] } {
  if (!Array.isArray(v)) invalid(`${what} must be an array`)
  const list = v as unknown[]
  if (list.length > MAX_EVENTS_PER_FRAME) invalid(`${what} lists more than ${MAX_EVENTS_PER_FRAME} entries`)
  for (const [i, s] of list.entries()) if (typeof s !== 'string') invalid(`${what}[${i}] must be a string`)
  return { list: list as string[], ok: (list as string[]).map(ok) }
}

/** The entry `v` names in `d` if it indexes an entry that passed the dictionary's check, else undefined. */
function entry(v: unknown, d: { list: string[]; ok: boolean[] }): string | undefined {
  return typeof v === 'number' && d.ok[v] === true ? d.list[v] : undefined
}

/** Throws the INVALID_FRAME for a value {@link entry} did not accept. */
function badEntry(v: unknown, d: { list: string[]; ok: boolean[] }, what: string, kind: string): never {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= d.list.length)
    invalid(`${what} must index its dictionary (0..${d.list.length - 1})`)
  return invalid(`${what} names ${JSON.stringify(d.list[v as number]!.slice(0, 100))}, not ${kind}`)
}

const runAt = (r: number): string => `events.runs[${r}]`
const eventAt = (r: number, i: number): string => `events.runs[${r}].events[${i}]`

/**
 * Reads a batch's wire form back into events with their hashes and links, checking every
 * field (INVALID_FRAME naming where): each dictionary entry once, then per event only its
 * numbers and change bytes. Signatures are not checked here: the session checks each
 * origin's last one against its key.
 */
export function batchFromWire(namesValue: unknown, docsValue: unknown, runsValue: unknown): DruEvent[] {
  const names = dictionary(namesValue, 'events.names', (s) => HLC_NODE.test(s))
  const origins = { list: names.list, ok: names.list.map((s) => isOrigin(s)) }
  const docs = dictionary(docsValue, 'events.docs', (s) => isDocId(s))
  if (!Array.isArray(runsValue)) return invalid('events.runs must be an array')
  if (runsValue.length === 0) invalid('events.runs must not be empty')
  if (runsValue.length > MAX_EVENTS_PER_FRAME) invalid(`events.runs lists more than ${MAX_EVENTS_PER_FRAME} runs`)
  const out: DruEvent[] = []
  const lastOf = new Map<string, DruEvent>()
  let wall = 0
  for (let r = 0; r < runsValue.length; r++) {
    const runValue: unknown = runsValue[r]
    // Error labels (runAt, eventAt) are built only on failure: every received event passes here.
    if (!Array.isArray(runValue) || runValue.length !== 5)
      invalid(`${runAt(r)} must be [origin, seq, prev, events, sig]`)
    const [originIx, firstSeq, prevValue, eventsValue, sig] = runValue as unknown[]
    const origin = (entry(originIx, origins) ??
      badEntry(originIx, origins, `${runAt(r)}.origin`, 'an origin')) as Origin
    if (typeof firstSeq !== 'number' || !Number.isInteger(firstSeq) || firstSeq < 1 || firstSeq > MAX_SEQ)
      invalid(`${runAt(r)}.seq must be an integer in 1..${MAX_SEQ}`)
    let prev: string
    if (prevValue === null) {
      const before = lastOf.get(origin)
      if (before === undefined || before.seq + 1 !== firstSeq)
        invalid(`${runAt(r)} has no prev but does not continue an earlier run of ${origin} in this frame`)
      prev = before!.hash
    } else {
      if (!(prevValue instanceof Uint8Array) || prevValue.byteLength !== 32)
        invalid(`${runAt(r)}.prev must be 32 bytes`)
      prev = Buffer.from(prevValue as Uint8Array).toString('hex')
      if (firstSeq === 1 && prev !== GENESIS_HASH) invalid(`${runAt(r)}.prev of seq 1 must be the genesis hash`)
    }
    if (!Array.isArray(eventsValue) || eventsValue.length === 0) invalid(`${runAt(r)}.events must be a non-empty array`)
    const events = eventsValue as unknown[]
    if (out.length + events.length > MAX_EVENTS_PER_FRAME)
      invalid(`events carries more than ${MAX_EVENTS_PER_FRAME} events`)
    if ((firstSeq as number) + events.length - 1 > MAX_SEQ) invalid(`${runAt(r)} runs past seq ${MAX_SEQ}`)
    if (sig !== null && !(sig instanceof Uint8Array && sig.byteLength === SIGNATURE_BYTES))
      invalid(`${runAt(r)}.sig must be null or a 64-byte Ed25519 signature`)
    let seq = firstSeq as number
    const lastIx = events.length - 1
    for (let i = 0; i <= lastIx; i++) {
      const value = events[i]
      if (!Array.isArray(value) || value.length !== 5)
        invalid(`${eventAt(r, i)} must be [wall, counter, node, doc, change]`)
      const [delta, counter, nodeIx, docIx, change] = value as unknown[]
      if (!Number.isSafeInteger(delta)) invalid(`${eventAt(r, i)}.wall must be an integer`)
      wall += delta as number
      if (wall < 0 || wall >= HLC_WALL_LIMIT) invalid(`${eventAt(r, i)}.wall must be in 0..${HLC_WALL_LIMIT - 1}`)
      if (!Number.isInteger(counter) || (counter as number) < 0 || (counter as number) >= HLC_COUNTER_LIMIT)
        invalid(`${eventAt(r, i)}.counter must be an integer in 0..${HLC_COUNTER_LIMIT - 1}`)
      const node = entry(nodeIx, names) ?? badEntry(nodeIx, names, `${eventAt(r, i)}.node`, 'an HLC node')
      const docId = entry(docIx, docs) ?? badEntry(docIx, docs, `${eventAt(r, i)}.doc`, 'a document id')
      if (!(change instanceof Uint8Array) || change.byteLength > MAX_CHANGE_BYTES)
        invalid(`${eventAt(r, i)}.change must be at most ${MAX_CHANGE_BYTES} bytes`)
      const hlc = encodeHlc({ wall, counter: counter as number, node })
      // Hashed from its contents as it is built, so ingest need not hash it again; only the
      // run's last event carries the signature.
      const fields = { origin, seq, hlc, docId, change: change as Uint8Array, prev }
      const e = hashedEvent(fields, i === lastIx && sig !== null ? (sig as Uint8Array) : undefined)
      out.push(e)
      prev = e.hash
      seq++
    }
    lastOf.set(origin, out[out.length - 1]!)
  }
  return out
}
