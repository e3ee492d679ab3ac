import { createPrivateKey, createPublicKey } from 'node:crypto'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import type { DruEvent, Fingerprint } from '@dru/core'
import * as A from '@automerge/automerge'
import {
  PeerProtocol,
  encodeFrame,
  frameAllowed,
  generateKeys,
  silentLogger,
  type Frame,
  type FrameType,
  type Phase,
  type SessionLimits,
} from '../src/index.js'
import { unitLimits } from './helpers/limits.js'
import { MemberEnd } from './helpers/member-end.js'
import { SignedLog } from './helpers/signed-log.js'

/**
 * Model-based test of the session state machine (docs/PROTOCOL.md "Session states"): a
 * driver plays member `m` against a real PeerProtocol of DRU `x` and sends random
 * sequences of frames — right ones, frames of the wrong phase, and lies a member might tell.
 * The model says which frames the session may accept; after every frame the session is
 * open exactly when the model says it accepted it, and a refused frame changed nothing.
 */

const RUNS = Number(process.env.DRU_PROPERTY_RUNS ?? 300)
const SECRET = 'model-test-secret-0123456789'
const keys = { x: generateKeys(), m: generateKeys(), n: generateKeys() }
const limits: SessionLimits = unitLimits
const cleanups: Array<() => void> = []
afterEach(() => {
  while (cleanups.length) cleanups.pop()!()
})

/** What the driver can send. `lie:*` frames are well-formed but untrue or out of role. */
const ACTIONS = [
  'hello',
  'auth',
  'auth:wrong-key',
  'vv',
  'vv:with-base',
  'vv:own-origin-ahead',
  'vv:non-member',
  'events',
  'ack',
  'ack:not-held',
  'ack:beyond-head',
  // What the peer gets by other paths: only ever a reason to send it less, for a while.
  'routes',
  'routes:non-member',
  'ping',
  'pong',
  'probe',
  'report',
  'tree-probe',
  'tree-report',
  'expand',
  'bootstrap',
  'snapshot',
  'bootstrap-end',
  'error',
  // A relay's doing: a frame without the session's seal, and a sealed frame sent twice.
  'ping:unsealed',
  'ping:replayed',
  // Anyone on the path can inject a clear-text error claiming any code.
  'error:unsealed',
] as const
type Action = (typeof ACTIONS)[number]

interface World {
  x: { store: SignedLog }
  m: SignedLog
  mEvents: DruEvent[]
  protocol: PeerProtocol
  out: Frame[]
  /** Member m's end of the session: seals and opens frames as a real peer does. */
  end: MemberEnd
}

function world(): World {
  const store = new SignedLog('x', keys.x.privateKey)
  for (let i = 0; i < 3; i++) store.commit(`x-doc-${i}`, change({ v: i }))
  const m = new SignedLog('m', keys.m.privateKey)
  for (let i = 0; i < 6; i++) m.commit(`m-doc-${i % 2}`, change({ [`k${i}`]: i }))
  const mEvents = [...m.eventsMissing({})].flat()
  cleanups.push(() => {
    store.close()
    m.close()
  })
  const out: Frame[] = []
  const end = new MemberEnd('m', m.origin, SECRET)
  const protocol = new PeerProtocol(
    {
      log: store,
      druId: 'x',
      secret: SECRET,
      privateKey: createPrivateKey(keys.x.privateKey),
      publicKeys: new Map(Object.entries(keys).map(([id, k]) => [id, createPublicKey(k.publicKey)])),
      limits,
      logger: silentLogger,
      now: () => 1_700_000_000_000,
      // x never compacted: it serves no snapshots, and stages what a bootstrap brings it.
      snapshots: { page: () => ({ docs: [], next: undefined }), changesOf: (_id, b) => A.getAllChanges(A.load(b)) },
    },
    {},
    { send: (b) => out.push(end.decode(b)), close: () => undefined, bufferedAmount: 0 },
    'acceptor',
  )
  protocol.start()
  return { x: { store }, m, mEvents, protocol, out, end }
}

/** The bytes of one Automerge change that sets `fields`. */
function change(fields: Record<string, number>): Uint8Array {
  return A.getLastLocalChange(A.change(A.init<Record<string, number>>(), (d) => Object.assign(d, fields)))!
}

/** The driver: member `m`, building each frame from what it has seen. */
class Driver {
  sentEvents = 0
  constructor(
    readonly w: World,
    readonly end: MemberEnd = w.end,
  ) {}

  frame(a: Action): Frame {
    const w = this.w
    const fpOf = (n: number): Fingerprint =>
      n === 0 ? { vv: {}, heads: {} } : { vv: { [w.m.origin]: n }, heads: { [w.m.origin]: w.mEvents[n - 1]!.hash } }
    const xVv = w.x.store.vv()
    const xOrigin = w.x.store.origin
    switch (a) {
      case 'hello':
        return this.end.hello()
      case 'auth':
      case 'auth:wrong-key':
        return this.end.auth(a === 'auth' ? keys.m.privateKey : keys.n.privateKey)
      case 'vv':
        return {
          type: 'vv',
          summary: { live: fpOf(this.sentEvents), retired: w.x.store.summary().retired },
          bases: {},
          full: false,
        }
      case 'vv:with-base': {
        // Claims to have compacted m's first events, which x lacks: x asks for a bootstrap.
        const n = w.mEvents.length
        return {
          type: 'vv',
          summary: { live: fpOf(n), retired: w.x.store.summary().retired },
          bases: { [w.m.origin]: n },
          full: false,
        }
      }
      case 'vv:own-origin-ahead':
        return {
          type: 'vv',
          summary: {
            live: { vv: { [xOrigin]: (xVv[xOrigin] ?? 0) + 5 }, heads: { [xOrigin]: 'a'.repeat(64) } },
            retired: w.x.store.summary().retired,
          },
          bases: {},
          full: false,
        }
      case 'vv:non-member':
        return {
          type: 'vv',
          summary: {
            live: { vv: { 'mallory/1': 1 }, heads: { 'mallory/1': 'a'.repeat(64) } },
            retired: w.x.store.summary().retired,
          },
          bases: {},
          full: false,
        }
      case 'events': {
        const next = w.mEvents.slice(this.sentEvents, this.sentEvents + 2)
        return { type: 'events', batch: next.length > 0 ? next : w.mEvents.slice(0, 1) }
      }
      case 'ack':
        return { type: 'ack', vv: { [xOrigin]: xVv[xOrigin] ?? 0 } }
      case 'ack:not-held':
        return { type: 'ack', vv: { 'n/1': 3 } }
      case 'ack:beyond-head':
        return { type: 'ack', vv: { [xOrigin]: (xVv[xOrigin] ?? 0) + 1_000_000 } }
      case 'routes':
        // Even naming x's own current origin far ahead is harmless: x never holds back its own.
        return {
          type: 'routes',
          vv: { [xOrigin]: (xVv[xOrigin] ?? 0) + 1_000_000, [w.m.origin]: 0 },
          neighbours: ['x'],
        }
      case 'routes:non-member':
        return { type: 'routes', vv: { 'mallory/1': 3 }, neighbours: [] }
      case 'ping':
      case 'ping:unsealed':
      case 'ping:replayed':
        return { type: 'ping', n: 1 }
      case 'pong':
        return { type: 'pong', n: 1 }
      case 'probe':
        return { type: 'probe', id: 1, deep: false }
      case 'report':
        return { type: 'report', id: 99, summary: w.x.store.summary(), stateDigest: null, documents: null }
      case 'tree-probe':
        return { type: 'tree-probe', id: 3, level: 0, nodes: [0] }
      case 'tree-report':
        return { type: 'tree-report', id: 98, hashes: [], docs: [] }
      case 'expand':
        return { type: 'expand' }
      case 'bootstrap':
        return { type: 'bootstrap' }
      case 'snapshot':
        return { type: 'snapshot', docs: [{ docId: 'm-doc-0', bytes: A.save(A.from({ forged: true })) }] }
      case 'bootstrap-end':
        return { type: 'bootstrap-end' }
      case 'error':
      case 'error:unsealed':
        return { type: 'error', code: 'DECOMMISSIONED', message: 'you are out' }
    }
  }
}

/** The model: the phase and whether x asked us for a bootstrap, advanced by accepted frames. */
interface Model {
  phase: Phase
  bootstrapping: boolean
  gotVv: boolean
}

/** What the model expects of a frame: `ok` (accepted, session stays open), or the close code. */
function expect_(model: Model, a: Action, f: Frame): 'ok' | string {
  // Once the peer's auth is in, what lacks the seal (or repeats one) is refused before decoding.
  if ((a === 'ping:unsealed' || a === 'ping:replayed' || a === 'error:unsealed') && model.phase === 'open')
    return 'AUTH_FAILED'
  if (!frameAllowed({ phase: model.phase, bootstrapping: model.bootstrapping }, f.type)) return 'PROTOCOL_VIOLATION'
  switch (a) {
    case 'error':
    case 'error:unsealed':
      return 'DECOMMISSIONED'
    case 'auth:wrong-key':
      return 'AUTH_FAILED'
    case 'vv:own-origin-ahead':
    case 'vv:non-member':
    case 'routes:non-member':
    case 'ack:not-held':
    case 'ack:beyond-head':
    case 'pong': // x sent no ping (it was never ticked)
    case 'report': // x sent no probe
    case 'tree-report': // nor a tree probe
      return 'PROTOCOL_VIOLATION'
    case 'bootstrap':
      return model.gotVv ? 'ok' : 'PROTOCOL_VIOLATION'
    // Events past x's head are not fatal (x asks again from its vv); a snapshot in a
    // bootstrap x asked for is staged, never applied by itself.
    default:
      return 'ok'
  }
}

function advance(model: Model, a: Action, w: World, d: Driver): void {
  if (a === 'hello') model.phase = 'auth'
  else if (a === 'auth') model.phase = 'open'
  else if (a === 'vv' || a === 'vv:with-base') {
    model.gotVv = true
    // x asks for a bootstrap when it is below our claimed base (and is not already in one).
    if (a === 'vv:with-base' && !model.bootstrapping && (w.x.store.vv()[w.m.origin] ?? 0) < w.mEvents.length)
      model.bootstrapping = true
  } else if (a === 'bootstrap-end') model.bootstrapping = false
  else if (a === 'events') {
    const stored = w.x.store.vv()[w.m.origin] ?? 0
    d.sentEvents = stored
  }
}

describe('the session state machine against its model', () => {
  it(`random frame sequences in every phase: nothing outside the model is accepted, and refused frames change nothing (${RUNS} runs)`, () => {
    const seen = new Set<string>()
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...ACTIONS), { minLength: 1, maxLength: 25 }),
        // Prefixes that reach every phase often, however many actions there are: none, half the
        // handshake (the auth phase), the handshake, the handshake and a bootstrap we asked for.
        fc.constantFrom<Action[]>([], ['hello'], ['hello', 'auth'], ['hello', 'auth', 'vv:with-base']),
        (actions, prefix) => {
          const w = world()
          const d = new Driver(w)
          const model: Model = { phase: 'hello', bootstrapping: false, gotVv: false }
          const plan: Action[] = [...prefix, ...actions]
          let lastSealed: Uint8Array | undefined
          for (const a of plan) {
            const f = d.frame(a)
            const before = JSON.stringify(w.x.store.fingerprint())
            const expected = expect_(model, a, f)
            const unsealed = a === 'ping:unsealed' || a === 'error:unsealed'
            const bytes =
              unsealed || (a === 'ping:replayed' && !lastSealed)
                ? encodeFrame(f)
                : a === 'ping:replayed'
                  ? lastSealed!
                  : w.end.encode(f)
            if (model.phase === 'open' && !unsealed && a !== 'ping:replayed') lastSealed = bytes
            w.protocol.receive(bytes)
            seen.add(
              `${model.phase}${model.bootstrapping ? '+bootstrapping' : ''}:${f.type}:${expected === 'ok' ? 'accepted' : 'refused'}`,
            )
            if (expected === 'ok') {
              expect(
                w.protocol.phase,
                `${a} in ${model.phase} must be accepted (closed: ${w.protocol.closeReason?.code} ${w.protocol.closeReason?.message})`,
              ).not.toBe('closed')
              advance(model, a, w, d)
              expect(w.protocol.phase).toBe(model.phase)
              expect(w.protocol.bootstrapping).toBe(model.bootstrapping)
            } else {
              expect(w.protocol.phase, `${a} in ${model.phase} must be refused`).toBe('closed')
              expect(w.protocol.closeReason?.code).toBe(expected)
              expect(JSON.stringify(w.x.store.fingerprint()), `${a} changed the store`).toBe(before)
              // A refused frame before authentication gets an error frame and nothing else.
              break
            }
          }
          cleanups.splice(0).forEach((c) => c())
        },
      ),
      { numRuns: RUNS, seed: 20261128 },
    )
    // The runs visited every phase, accepting and refusing there.
    for (const must of [
      'open:ping:refused',
      'hello:hello:accepted',
      'hello:events:refused',
      'auth:auth:accepted',
      'auth:vv:refused',
      'open:events:accepted',
      'open:snapshot:refused',
      'open+bootstrapping:snapshot:accepted',
      'open:ack:refused',
      'open:hello:refused',
    ]) {
      expect([...seen], must).toContain(must)
    }
  })

  it('error frames from an unauthenticated peer change nothing; from an authenticated one they only concern that peer', () => {
    for (const authenticated of [false, true]) {
      const w = world()
      const end = new MemberEnd('m', w.m.origin, SECRET)
      const d = new Driver(w, end)
      const quarantined: string[] = []
      const p = new PeerProtocol(
        {
          log: w.x.store,
          druId: 'x',
          secret: SECRET,
          privateKey: createPrivateKey(keys.x.privateKey),
          publicKeys: new Map(Object.entries(keys).map(([id, k]) => [id, createPublicKey(k.publicKey)])),
          limits,
          logger: silentLogger,
          now: () => 1_700_000_000_000,
        },
        { quarantine: (id, code) => quarantined.push(`${id}:${code}`) },
        { send: (b) => w.out.push(end.decode(b)), close: () => undefined, bufferedAmount: 0 },
        'acceptor',
      )
      w.out.length = 0
      p.start()
      p.receive(end.encode(d.frame('hello')))
      if (authenticated) p.receive(end.encode(d.frame('auth')))
      expect(p.phase).toBe(authenticated ? 'open' : 'auth')
      p.receive(end.encode({ type: 'error', code: 'DECOMMISSIONED', message: 'forged' }))
      expect(p.phase).toBe('closed')
      expect(quarantined).toEqual(authenticated ? ['m:DECOMMISSIONED'] : [])
      cleanups.splice(0).forEach((c) => c())
    }
  })

  it('after authentication an error frame without the seal closes as AUTH_FAILED, whatever code it claims', () => {
    for (const claimed of ['DECOMMISSIONED', 'QUARANTINED', 'FORK', 'CLOSED', 'DUPLICATE_SESSION']) {
      const { p, reports } = clockedSession()
      // A stranger on the path: it holds no seal key, so it writes the frame in the clear.
      p.receive(encodeFrame({ type: 'error', code: claimed, message: 'injected' }))
      expect(p.phase).toBe('closed')
      expect(p.closeReason?.code, `an unsealed ${claimed}`).toBe('AUTH_FAILED')
      expect(reports).toEqual({ quarantined: [], violations: [], closed: ['AUTH_FAILED'] })
      // The same frame sealed is the peer's own word: it closes with the code it says.
      const sealed = clockedSession()
      sealed.p.receive(sealed.end.encode({ type: 'error', code: claimed, message: 'the peer says' }))
      expect(sealed.p.closeReason?.code).toBe(claimed)
      cleanups.splice(0).forEach((c) => c())
    }
  })

  it('an authenticated peer that keeps the link alive but never sends its vv is a counted violation', () => {
    const { p, send, clock, reports } = clockedSession()
    // Frames flow, the vv never comes: pings where the vv is due.
    for (let i = 1; i <= 6 && p.phase === 'open'; i++) {
      clock.ms += limits.heartbeatMs
      send({ type: 'ping', n: i })
      p.tick()
    }
    expect(p.closeReason?.code).toBe('PROTOCOL_VIOLATION')
    expect(reports.violations).toEqual(['PROTOCOL_VIOLATION'])
    expect(reports.closed).toEqual(['PROTOCOL_VIOLATION'])
  })

  it('an authenticated peer gone silent after its auth is a heartbeat timeout, not a violation', () => {
    const { p, clock, reports } = clockedSession()
    clock.ms += limits.heartbeatTimeoutMs + 1
    p.tick()
    expect(p.closeReason?.code).toBe('HEARTBEAT_TIMEOUT')
    expect(reports).toEqual({ quarantined: [], violations: [], closed: ['HEARTBEAT_TIMEOUT'] })
  })

  it('covers every frame type in the model table', () => {
    const types = new Set(ACTIONS.map((a) => new Driver(world()).frame(a).type))
    cleanups.splice(0).forEach((c) => c())
    for (const t of [
      'hello',
      'auth',
      'vv',
      'events',
      'ack',
      'routes',
      'ping',
      'pong',
      'probe',
      'report',
      'tree-probe',
      'tree-report',
      'expand',
      'bootstrap',
      'snapshot',
      'bootstrap-end',
      'error',
    ] as FrameType[])
      expect(types).toContain(t)
  })
})

/** x's protocol, open with member m, on a clock the test moves; `reports` records its quarantine, violation and closed hooks. */
function clockedSession() {
  const w = world()
  const clock = { ms: 1_700_000_000_000 }
  const reports = { quarantined: [] as string[], violations: [] as string[], closed: [] as string[] }
  const end = new MemberEnd('m', w.m.origin, SECRET)
  const p = new PeerProtocol(
    {
      log: w.x.store,
      druId: 'x',
      secret: SECRET,
      privateKey: createPrivateKey(keys.x.privateKey),
      publicKeys: new Map(Object.entries(keys).map(([id, k]) => [id, createPublicKey(k.publicKey)])),
      limits,
      logger: silentLogger,
      now: () => clock.ms,
    },
    {
      quarantine: (id, code) => reports.quarantined.push(`${id}:${code}`),
      violation: (_p, code) => reports.violations.push(code),
      closed: (_p, reason) => reports.closed.push(reason.code),
    },
    { send: (b) => void end.decode(b), close: () => undefined, bufferedAmount: 0 },
    'acceptor',
  )
  p.start()
  p.receive(end.encode(end.hello()))
  p.receive(end.encode(end.auth(keys.m.privateKey)))
  expect(p.phase).toBe('open')
  const send = (f: Frame) => p.receive(end.encode(f))
  return { p, end, send, clock, reports }
}
