import { describe, expect, it } from 'vitest'
import {
  DruError,
  hashedEvent,
  sealEvent,
  summaryMatches,
  type DruEvent,
  type PeerBook,
  type ReplicaLog,
  type VersionVector,
} from '@dru/core'

/** A log under test, with the two operations the port leaves to its owner. */
export interface ReplicaLogUnderTest {
  readonly log: ReplicaLog & PeerBook
  /** One local commit of `changes` to `docId`. */
  append(docId: string, changes: readonly Uint8Array[]): DruEvent[]
  /** Compaction: events up to `floor` leave the log, their envelopes stay. */
  fold(floor: VersionVector): void
  close(): void
}

/** Makes a fresh, empty log for DRU `druId`. */
export type ReplicaLogSetup = (druId: string) => ReplicaLogUnderTest

const bytes = (...xs: number[]) => new Uint8Array(xs)

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    if (err instanceof DruError) return err.code
    throw err
  }
  return undefined
}

/** Moves to `to` what it lacks of `from`'s log, in small batches. */
function exchange(from: ReplicaLog, to: ReplicaLog, maxBatchBytes = 16): void {
  for (const batch of from.eventsMissing(to.vv(), { maxBatchBytes })) to.ingest(batch)
}

/**
 * The contract every {@link ReplicaLog} implementation passes (`EventStore` on SQLite and the
 * testkit's `MemoryLog`): what the peer protocol relies on, checked the same way on both.
 */
export function runReplicaLogContract(name: string, setup: ReplicaLogSetup): void {
  describe(`ReplicaLog contract: ${name}`, () => {
    const made: ReplicaLogUnderTest[] = []
    const make = (id: string) => {
      const x = setup(id)
      made.push(x)
      return x
    }
    const done = () => {
      for (const x of made.splice(0)) x.close()
    }

    it('stores a batch once: ingesting it again (and repeated inside itself) only counts duplicates', () => {
      try {
        const a = make('a')
        const b = make('b')
        const events = [...a.append('d', [bytes(1), bytes(2)]), ...a.append('d', [bytes(3)])]
        expect(b.log.ingest(events).stored).toHaveLength(3)
        expect(b.log.ingest([...events, ...events])).toMatchObject({ stored: [], duplicates: 6 })
        expect(b.log.fingerprint()).toEqual(a.log.fingerprint())
      } finally {
        done()
      }
    })

    it('checks the hash of every event not built by the wire codec, even a copy of one that was', () => {
      try {
        const a = make('a')
        const b = make('b')
        const [e1] = a.append('d', [bytes(1)])
        const before = b.log.fingerprint()
        // The codec builds events with hashedEvent; the mark is the object's, not its fields'.
        const built = hashedEvent({ ...e1! })
        const altered: DruEvent = { ...built, change: bytes(7) }
        expect(codeOf(() => b.log.ingest([altered]))).toBe('HASH_MISMATCH')
        const wrongHash = (built.hash[0] === '0' ? '1' : '0') + built.hash.slice(1)
        expect(codeOf(() => b.log.ingest([{ ...built, hash: wrongHash }]))).toBe('HASH_MISMATCH')
        expect(b.log.fingerprint()).toEqual(before)
        // The marked event itself is stored.
        b.log.ingest([built])
        expect(b.log.fingerprint()).not.toEqual(before)
      } finally {
        done()
      }
    })

    it('refuses FORK, SEQ_GAP, CHAIN_BROKEN, HASH_MISMATCH and INVALID_EVENT and changes nothing', () => {
      try {
        const a = make('a')
        const b = make('b')
        const events = a.append('d', [bytes(1), bytes(2), bytes(3)])
        b.log.ingest(events.slice(0, 2))
        const before = b.log.fingerprint()
        const e3 = events[2]!
        const forged = sealEvent({ ...events[1]!, change: bytes(9) })
        const cases: Array<[string, unknown[]]> = [
          ['FORK', [forged]],
          ['SEQ_GAP', [sealEvent({ ...e3, seq: 4, prev: e3.hash })]],
          ['CHAIN_BROKEN', [sealEvent({ ...e3, prev: forged.hash })]],
          ['HASH_MISMATCH', [{ ...e3, change: bytes(7) }]],
          ['INVALID_EVENT', [{ ...e3, seq: -1 }]],
        ]
        for (const [code, batch] of cases) {
          expect(
            codeOf(() => b.log.ingest(batch)),
            code,
          ).toBe(code)
          expect(b.log.fingerprint(), code).toEqual(before)
        }
        // A good event after a bad one in the same batch: the whole batch is refused.
        expect(codeOf(() => b.log.ingest([e3, forged]))).toBe('FORK')
        expect(b.log.fingerprint()).toEqual(before)
      } finally {
        done()
      }
    })

    it('refuses events of its own current origin beyond its head (another writer holds its key)', () => {
      try {
        const a = make('a')
        const [first] = a.append('d', [bytes(1)])
        const beyond = sealEvent({
          origin: a.log.origin,
          seq: 2,
          hlc: first!.hlc,
          docId: 'd',
          change: bytes(2),
          prev: first!.hash,
        })
        expect(codeOf(() => a.log.ingest([beyond]))).toBe('FORK')
        expect(a.log.vv()[a.log.origin]).toBe(1)
      } finally {
        done()
      }
    })

    it('eventsMissing yields exactly the set difference, per origin in seq order, in bounded batches', () => {
      try {
        const a = make('a')
        const b = make('b')
        for (let i = 0; i < 10; i++) a.append(`d${i % 3}`, [bytes(i, i), bytes(i, i + 1)])
        for (let i = 0; i < 4; i++) b.append('x', [bytes(i)])
        exchange(b.log, a.log)
        const remote = { [a.log.origin]: 7, [b.log.origin]: 2 }
        const batches = [...a.log.eventsMissing(remote, { maxBatchBytes: 5 })]
        for (const batch of batches)
          expect(batch.reduce((n, e) => n + e.change.byteLength, 0) <= 5 || batch.length === 1).toBe(true)
        const got = batches.flat().map((e) => `${e.origin}#${e.seq}`)
        const want = [
          ...Array.from({ length: 13 }, (_, i) => `${a.log.origin}#${i + 8}`),
          `${b.log.origin}#3`,
          `${b.log.origin}#4`,
        ]
        expect(got.sort()).toEqual(want.sort())
      } finally {
        done()
      }
    })

    it('runs derive listeners before notify listeners, whatever the order they registered in', () => {
      try {
        const a = make('a')
        const order: string[] = []
        a.log.onCommit(() => order.push('notify'), { phase: 'notify' })
        const off = a.log.onCommit(() => order.push('derive'), { phase: 'derive' })
        a.append('d', [bytes(1)])
        expect(order).toEqual(['derive', 'notify'])
        off()
        a.append('d', [bytes(2)])
        expect(order).toEqual(['derive', 'notify', 'notify'])
      } finally {
        done()
      }
    })

    it('after folding: hashAt at the base, BELOW_FLOOR or skip below it, retired origins summarised, logs still compare equal', () => {
      try {
        const a = make('a')
        const b = make('b')
        const events = a.append('d', [bytes(1), bytes(2), bytes(3), bytes(4)])
        exchange(a.log, b.log)
        a.fold({ [a.log.origin]: 4 })
        expect(a.log.base()[a.log.origin]).toMatchObject({ seq: 4, hash: events[3]!.hash })
        expect(a.log.hashAt(a.log.origin, 4)).toBe(events[3]!.hash)
        expect(a.log.retired()).toEqual([{ origin: a.log.origin, seq: 4, hash: events[3]!.hash }])
        expect(a.log.summary().live.vv).toEqual({})
        expect(codeOf(() => [...a.log.eventsMissing({})])).toBe('BELOW_FLOOR')
        expect([...a.log.eventsMissing({}, { belowBase: 'skip' })].flat()).toEqual([])
        // b did not fold: its log is the same, and compares equal to a's summary.
        expect(summaryMatches(b.log.fingerprint(), a.log.summary())).toBe(true)
        // Re-delivering folded events is harmless; a fork at the base is still seen.
        expect(a.log.ingest(events).duplicates).toBe(4)
        expect(codeOf(() => a.log.ingest([sealEvent({ ...events[3]!, change: bytes(8) })]))).toBe('FORK')
      } finally {
        done()
      }
    })

    it('rebuilds folded events from envelopes and staged changes; a change nobody staged is MALFORMED', () => {
      try {
        const a = make('a')
        const c = make('c')
        const changes = [bytes(1, 1), bytes(2, 2), bytes(3, 3)]
        a.append('d', changes.slice(0, 2))
        a.append('e', changes.slice(2))
        a.fold(a.log.vv())
        const envs = a.log.folded(a.log.origin, 1, 100)
        expect(envs.map((e) => e.seq)).toEqual([1, 2, 3])
        c.log.stageChanges('d', changes.slice(0, 1))
        const before = c.log.fingerprint()
        expect(codeOf(() => c.log.rebuildFolded(envs))).toBe('MALFORMED')
        expect(c.log.fingerprint()).toEqual(before)
        c.log.stageChanges('d', changes.slice(1, 2))
        c.log.stageChanges('e', changes.slice(2))
        c.log.ingest(c.log.rebuildFolded(envs))
        c.log.clearStage()
        expect(c.log.fingerprint().heads[a.log.origin]).toBe(a.log.fingerprint().heads[a.log.origin])
        // Envelopes it already holds are skipped; a hole stops that origin's rebuild.
        expect(c.log.rebuildFolded(envs)).toEqual([])
      } finally {
        done()
      }
    })

    it('remembers peers and merges their acknowledged vectors by max', () => {
      try {
        const a = make('a')
        a.log.recordPeerAck('b', { 'a/1': 5, 'b/1': 2 })
        expect(a.log.recordPeerAck('b', { 'a/1': 3, 'c/1': 1 })).toEqual({ 'a/1': 5, 'b/1': 2, 'c/1': 1 })
        a.log.recordPeer('b', { url: 'ws://127.0.0.1:1', state: 'connected' })
        expect(a.log.peer('b')).toMatchObject({
          peerId: 'b',
          url: 'ws://127.0.0.1:1',
          state: 'connected',
          ackedVv: { 'a/1': 5, 'b/1': 2, 'c/1': 1 },
        })
        expect(a.log.peer('nobody')).toBeUndefined()
      } finally {
        done()
      }
    })
  })
}
