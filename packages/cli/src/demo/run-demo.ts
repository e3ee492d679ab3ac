// The demo's script (`dru demo`), read top to bottom as the story it prints: start three DRUs,
// lose a region, write on both sides of a partition, heal, then gaps, catch-up, verify,
// conflicts, active. Longer than ~400 lines on purpose: splitting the scenes into modules
// would hide their order, which is the point of the file.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { canonicalJson } from '@dru/documents'
import { generateKeys } from '@dru/sync'
import { LinkProxy } from '@dru/testkit'
import { createAdminClient, type AdminClient } from '../admin-client.js'
import type { ConflictJson, GapsJson, StatusJson, VerifyJson } from '@dru/node/admin-api'
import { renderConflictList } from '../commands/conflicts.js'
import { renderGaps } from '../commands/gaps.js'
import { formatCount, renderTable } from '../render.js'

/** The demo's readiness ramp: short, so the report shows it part-way. */
const RAMP_WINDOW_MS = 20_000

/** The three regions of the demo, in the order they are started. */
const REGIONS = ['us-east', 'eu-west', 'ap-south'] as const
type Region = (typeof REGIONS)[number]
/** The region that fails. */
const FAILED: Region = 'ap-south'

export interface DemoOptions {
  /** Where to print (one call per line or block). */
  readonly out: (text: string) => void
  /** Keep the temp folder (databases, configs, logs) instead of removing it. */
  readonly keep?: boolean
  /** Folder to use instead of a new temp folder. */
  readonly dir?: string
  /** Orders per phase (the default finishes well under a minute). */
  readonly orders?: number
}

export interface DemoReport {
  readonly converged: boolean
  readonly convergeMs: number
  readonly written: Record<string, number>
  readonly exchanged: number
  readonly conflictsFound: number
  readonly conflictsResolved: number
  readonly fingerprints: Record<string, string>
  readonly states: Record<string, string>
  readonly timeline: ReadonlyArray<{ state: string; atMs: number }>
  readonly dir: string
}

interface Unit {
  readonly id: Region
  readonly dir: string
  readonly configPath: string
  /** Ports the process actually bound (it asks for port 0 and reports them when ready). */
  listenPort: number
  appPort: number
  /** The admin token in this region's config. */
  readonly adminToken: string
  admin: AdminClient
  child?: ChildProcess
  exited?: Promise<void>
  transitions: Array<{ from: string; to: string; at: number }>
  log: string[]
}

const orderService = fileURLToPath(new URL('./order-service.js', import.meta.url))
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Runs the README's main job: three DRUs, a regional failure, writes on both sides
 * (conflicting ones included), and reconciliation walked through gaps → catch-up →
 * verify → conflicts → active. Resolves with the report; `converged` false means the
 * demo failed.
 */
export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  const out = options.out
  const perPhase = options.orders ?? 30
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'dru-demo-'))
  const units = new Map<Region, Unit>()
  const links: Array<{ from: Region; to: Region; proxy: LinkProxy }> = []
  const t0 = Date.now()
  const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`
  try {
    out(`dru demo: three DRUs on embedded SQLite go through a regional failure (folder ${dir})\n`)

    // ---- 1. cluster -----------------------------------------------------------------
    const secret = randomBytes(24).toString('base64url')
    // As an operator would: the admin APIs take their writes (conflict resolution) only with a token.
    const adminToken = randomBytes(24).toString('base64url')
    const keys = Object.fromEntries(REGIONS.map((id) => [id, generateKeys()]))
    const publicKeys = Object.fromEntries(REGIONS.map((id) => [id, keys[id]!.publicKey]))
    for (const id of REGIONS) {
      const admin = createAdminClient({ baseUrl: 'http://127.0.0.1:0', timeoutMs: 10_000 })
      units.set(id, {
        id,
        dir,
        configPath: join(dir, `${id}.json`),
        listenPort: 0,
        appPort: 0,
        adminToken,
        admin,
        transitions: [],
        log: [],
      })
    }
    // Every directed link runs through a proxy the demo can cut, as a region's network would
    // fail. Proxies learn their target once the process has bound its (OS-chosen) port.
    for (const from of REGIONS) {
      for (const to of REGIONS) if (from !== to) links.push({ from, to, proxy: await LinkProxy.start() })
    }
    const retarget = (u: Unit) => {
      for (const l of links) if (l.to === u.id) l.proxy.retarget(u.listenPort)
    }
    for (const u of units.values()) {
      const config = {
        id: u.id,
        path: join(dir, `${u.id}.db`),
        durability: 'process',
        listen: { host: '127.0.0.1', port: 0 },
        admin: { host: '127.0.0.1', port: 0, token: u.adminToken },
        peers: links.filter((l) => l.from === u.id).map((l) => ({ id: l.to, url: `ws://127.0.0.1:${l.proxy.port}` })),
        secret,
        keys: { privateKey: keys[u.id]!.privateKey, publicKeys },
        sync: { heartbeatMs: 200, heartbeatTimeoutMs: 1_000, startupGraceMs: 1_500 },
        // Short enough to watch within the demo (the default is 10 % → 100 % over five minutes).
        ramp: { startPercent: 10, windowMs: RAMP_WINDOW_MS },
        // The demo walks through the operator's conflict review; the default (keep-visible)
        // would record each conflict as resolved with the value every DRU shows.
        conflictPolicy: 'manual',
        log: 'json',
      }
      writeFileSync(u.configPath, JSON.stringify(config, null, 2))
    }
    out('[1/8] Starting us-east, eu-west and ap-south, each its own process with its own SQLite file')
    await Promise.all([...units.values()].map(async (u) => retarget(await start(u))))
    await waitFor('all three active', async () => (await statuses(units)).every((s) => s.state === 'active'), 20_000)
    const started = await statuses(units)
    out(
      indent(
        renderTable(
          ['DRU', 'state', 'origin (writer identity)', 'sync', 'admin'],
          started.map((s) => [
            s.id,
            s.state,
            s.origin ?? '',
            `127.0.0.1:${units.get(s.id as Region)!.listenPort}`,
            units.get(s.id as Region)!.admin.baseUrl,
          ]),
        ),
      ),
    )
    out(`      all three active after ${elapsed()}\n`)

    // ---- 2. normal operation ----------------------------------------------------------
    const written: Record<string, number> = { 'us-east': 0, 'eu-west': 0, 'ap-south': 0 }
    const write = async (id: Region, order: string, patch: Record<string, unknown>) => {
      const u = units.get(id)!
      const res = await fetch(`http://127.0.0.1:${u.appPort}/orders/${order}`, {
        method: 'POST',
        body: JSON.stringify(patch),
      })
      const body = (await res.json()) as { ok?: boolean; code?: string; message?: string }
      if (!res.ok) throw new Error(`${id} refused ${order}: ${body.code} ${body.message}`)
      written[id]!++
    }
    for (let i = 1; i <= perPhase; i++) {
      const region = REGIONS[i % 3]!
      await write(region, `order-${i}`, { status: 'new', qty: 1 + (i % 5), region, total: 10 * i })
    }
    await waitConverged(units)
    out(`[2/8] Normal operation: ${perPhase} orders written across the three regions; all three converged`)
    out(`      fingerprint ${(await statuses(units))[0]!.fingerprint.digest} on all three\n`)

    // ---- 3. regional failure -----------------------------------------------------------
    const failed = units.get(FAILED)!
    failed.child!.kill('SIGKILL')
    await failed.exited
    for (const l of links) if (l.from === FAILED || l.to === FAILED) l.proxy.cut()
    out(`[3/8] Regional failure: ${FAILED}'s process is killed (SIGKILL) and its region cut off the network`)
    await waitFor(
      'survivors notice',
      async () => {
        const s = await units.get('us-east')!.admin.get<StatusJson>('/status')
        return s.peers.some((p) => p.id === FAILED && !p.connected)
      },
      10_000,
    )
    for (let i = 1; i <= perPhase; i++) {
      const region: Region = i % 2 ? 'us-east' : 'eu-west'
      if (i <= perPhase / 2)
        await write(region, `order-${perPhase + i}`, { status: 'new', qty: 1, region, total: 7 * i })
      else await write(region, `order-${i}`, { status: 'paid' })
    }
    await write('us-east', 'order-3', { status: 'shipped', carrier: 'UPS' })
    await write('us-east', 'order-6', { qty: 9 })
    const survivors = await statuses(units, ['us-east', 'eu-west'])
    out(
      `      us-east and eu-west stay ${survivors.map((s) => s.state).join('/')} and keep taking orders: ${perPhase / 2} new, ${perPhase / 2} paid, order-3 shipped, order-6 qty 9\n`,
    )

    // ---- 4. restart, still isolated -------------------------------------------------------
    retarget(await start(failed))
    await waitFor(
      `${FAILED} isolated`,
      async () => (await failed.admin.get<StatusJson>('/status')).state === 'isolated',
      15_000,
    )
    const isolated = await failed.admin.get<StatusJson>('/status')
    out(
      `[4/8] ${FAILED} restarts with its disk while its region is still cut off: state ${isolated.state}, writable ${isolated.writable === false ? 'no' : 'yes'}`,
    )
    out(
      `      it writes as ${isolated.origin} (a new incarnation: after a crash its log cannot prove it is the newest copy)`,
    )
    for (let i = 1; i <= perPhase / 3; i++)
      await write(FAILED, `order-${2 * perPhase + i}`, { status: 'new', qty: 2, region: FAILED, total: 3 * i })
    await write(FAILED, 'order-3', { status: 'cancelled' })
    await write(FAILED, 'order-6', { qty: 4 })
    out(
      `      ${FAILED} takes ${perPhase / 3} local orders and edits order-3 (cancelled) and order-6 (qty 4), which us-east also edited\n`,
    )

    // ---- 5. heal: gap analysis ---------------------------------------------------------
    const before = await statuses(units)
    const gaps = gapsBetween(
      before.find((s) => s.id === FAILED)!,
      before.filter((s) => s.id !== FAILED),
    )
    const bytesBefore = await wireBytes(units)
    failed.transitions = []
    const healAt = Date.now()
    for (const l of links) l.proxy.heal()
    out('[5/8] The partition heals. Gap analysis on ap-south (`dru gaps`): what each side lacks, per origin')
    out(indent(renderGaps(gaps)))

    // ---- 6. catch-up and convergence -----------------------------------------------------
    await waitConverged(units, 30_000)
    const convergeMs = Date.now() - healAt
    await waitFor(
      `${FAILED} active`,
      async () => (await failed.admin.get<StatusJson>('/status')).state === 'active',
      15_000,
    )
    const timeline = failed.transitions.map((t) => ({ state: t.to, atMs: Math.max(0, t.at - healAt) }))
    const after = await statuses(units)
    const exchanged =
      after.reduce((n, s) => n + total(s.fingerprint.vv), 0) - before.reduce((n, s) => n + total(s.fingerprint.vv), 0)
    const bytes = (await wireBytes(units)) - bytesBefore
    out(
      `[6/8] Reconciliation on ${FAILED}: ${['isolated', ...timeline.map((t) => `${t.state} (+${t.atMs} ms)`)].join(' → ')}`,
    )
    out(
      `      converged ${convergeMs} ms after the heal: ${formatCount(exchanged)} events exchanged (${formatCount(bytes)} bytes on the wire),`,
    )
    out(`      equal fingerprints and identical JSON for every order on all three\n`)

    // ---- 7. verify -----------------------------------------------------------------------
    out(
      '[7/8] Verification (`dru verify --deep` on each DRU): fingerprints and materialised state digests against every peer',
    )
    const verifies: Array<[Region, VerifyJson]> = []
    for (const u of units.values())
      verifies.push([u.id, await u.admin.stream<VerifyJson>('/verify?deep=1', () => undefined)])
    out(
      indent(
        renderTable(
          ['DRU', 'result', 'peers equal', 'state digest'],
          verifies.map(([id, v]) => [
            id,
            v.ok ? 'ok' : 'DIFFERENT',
            v.peers
              .map((p) => `${p.peer}:${p.equal === true ? 'yes' : p.equal === false ? 'NO' : 'unreachable'}`)
              .join(' '),
            String(v.local.stateDigest ?? '').slice(0, 16),
          ]),
        ),
      ),
    )

    // ---- 8. conflicts ----------------------------------------------------------------------
    const found = await units.get('us-east')!.admin.get<ConflictJson[]>('/conflicts')
    out(
      `[8/8] Conflicts from the partition (\`dru conflicts list\` on us-east): ${found.length} concurrent edits to the same field`,
    )
    if (found.length > 0) out(indent(renderConflictList(found)))
    let resolved = 0
    for (const c of found) {
      const pick = c.values.find((v) => v.origin.startsWith('us-east/')) ?? c.values[0]!
      await units.get('us-east')!.admin.post(`/conflicts/${c.id}/resolve`, { value: pick.value })
      resolved++
      out(
        `      resolved #${c.id} (${c.docId} ${c.path.join('.')}) on us-east with ${JSON.stringify(pick.value)}: the resolution is a new change and replicates`,
      )
    }
    await waitConverged(units, 15_000)
    await waitFor(
      'conflicts cleared everywhere',
      async () => {
        for (const u of units.values()) if ((await u.admin.get<ConflictJson[]>('/conflicts')).length > 0) return false
        return true
      },
      15_000,
    )
    const final = await statuses(units)
    const fingerprints = Object.fromEntries(final.map((s) => [s.id, s.fingerprint.digest]))
    const states = Object.fromEntries(final.map((s) => [s.id, s.state]))
    const docs = await orderJson(units)
    const converged =
      new Set(Object.values(fingerprints)).size === 1 &&
      docs.every((d) => d === docs[0]) &&
      Object.values(states).every((s) => s === 'active')
    out(`      open conflicts now: 0 on every DRU\n`)

    out('Report')
    out(
      indent(
        renderTable(
          ['DRU', 'orders written', 'events in log', 'state', 'fingerprint'],
          final.map((s) => [
            s.id,
            String(written[s.id] ?? 0),
            formatCount(total(s.fingerprint.vv)),
            s.state,
            s.fingerprint.digest,
          ]),
        ),
      ),
    )
    out(
      `  events exchanged in reconciliation: ${formatCount(exchanged)}; time to converge after the heal: ${convergeMs} ms`,
    )
    out(`  conflicts found: ${found.length}; resolved by an operator: ${resolved}`)
    out(
      `  traffic ramp (readiness weight in /readyz, 10 % → 100 % over ${RAMP_WINDOW_MS / 1000} s after becoming active): ` +
        final
          .map(
            (s) =>
              `${s.id} ${s.readyWeight ?? '?'} % (active ${Math.round((Date.now() - Date.parse(s.since)) / 1000)} s)`,
          )
          .join(', '),
    )
    out(
      `  ${converged ? 'CONVERGED: equal fingerprints, equal documents, every DRU active' : 'NOT CONVERGED'} (total ${elapsed()})`,
    )
    return {
      converged,
      convergeMs,
      written,
      exchanged,
      conflictsFound: found.length,
      conflictsResolved: resolved,
      fingerprints,
      states,
      timeline,
      dir,
    }
  } finally {
    for (const u of units.values()) u.child?.kill('SIGTERM')
    await Promise.all([...units.values()].map((u) => u.exited?.catch(() => undefined)))
    await Promise.all(links.map((l) => l.proxy.close()))
    if (!options.keep && !options.dir) rmSync(dir, { recursive: true, force: true })
  }
}

/** Starts (or restarts) a region's process; resolves once it reports the ports it bound. */
function start(u: Unit): Promise<Unit> {
  const child = spawn(process.execPath, [orderService, u.configPath, '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
  u.child = child
  u.exited = new Promise((resolve) => child.once('exit', () => resolve()))
  child.stderr!.on('data', (d: Buffer) => u.log.push(d.toString()))
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('ready ')) {
        const ports = JSON.parse(line.slice(6)) as { app: number; sync: number; admin: number }
        u.appPort = ports.app
        u.listenPort = ports.sync
        u.admin = createAdminClient({
          baseUrl: `http://127.0.0.1:${ports.admin}`,
          timeoutMs: 10_000,
          token: u.adminToken,
        })
        return resolve(u)
      }
      u.log.push(line)
      try {
        const entry = JSON.parse(line) as { msg?: string; from?: string; to?: string; time?: number }
        if (entry.msg?.startsWith('lifecycle ') && entry.to)
          u.transitions.push({ from: entry.from!, to: entry.to, at: entry.time ?? Date.now() })
      } catch {
        // not a log line
      }
    })
    child.once('exit', (code, signal) =>
      reject(new Error(`${u.id} exited (${code ?? signal}) before it was ready:\n${u.log.join('\n')}`)),
    )
  })
}

async function statuses(units: Map<Region, Unit>, only?: Region[]): Promise<StatusJson[]> {
  return Promise.all(
    [...units.values()].filter((u) => !only || only.includes(u.id)).map((u) => u.admin.get<StatusJson>('/status')),
  )
}

async function wireBytes(units: Map<Region, Unit>): Promise<number> {
  let n = 0
  for (const s of await statuses(units)) for (const p of s.peers) n += p.bytesIn ?? 0
  return n
}

async function orderJson(units: Map<Region, Unit>): Promise<string[]> {
  const out: string[] = []
  for (const u of units.values()) {
    const ids = (await (await fetch(`http://127.0.0.1:${u.appPort}/orders`)).json()) as string[]
    const docs: Record<string, unknown> = {}
    for (const id of [...ids].sort())
      docs[id] = await (await fetch(`http://127.0.0.1:${u.appPort}/orders/${id}`)).json()
    out.push(canonicalJson(docs))
  }
  return out
}

async function waitConverged(units: Map<Region, Unit>, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    'convergence',
    async () => {
      const s = await statuses(units)
      if (new Set(s.map((x) => JSON.stringify([x.fingerprint.vv, x.fingerprint.heads]))).size !== 1) return false
      const docs = await orderJson(units)
      return docs.every((d) => d === docs[0])
    },
    timeoutMs,
  )
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      if (await check()) return
    } catch {
      // not answering yet
    }
    if (Date.now() > deadline) throw new Error(`demo: timed out waiting for ${what}`)
    await sleep(25)
  }
}

function gapsBetween(self: StatusJson, others: StatusJson[]): GapsJson {
  return {
    peers: others.map((o) => {
      const origins = [...new Set([...Object.keys(self.fingerprint.vv), ...Object.keys(o.fingerprint.vv)])].sort()
      const rows = origins
        .map((origin) => {
          const local = self.fingerprint.vv[origin] ?? 0
          const remote = o.fingerprint.vv[origin] ?? 0
          return { origin, local, remote, weLack: Math.max(0, remote - local), theyLack: Math.max(0, local - remote) }
        })
        .filter((r) => r.weLack > 0 || r.theyLack > 0)
      return {
        peer: o.id,
        connected: false,
        weLack: rows.reduce((n, r) => n + r.weLack, 0),
        theyLack: rows.reduce((n, r) => n + r.theyLack, 0),
        origins: rows,
      }
    }),
  }
}

const total = (vv: Record<string, number>) => Object.values(vv).reduce((a, b) => a + b, 0)
const indent = (text: string) =>
  text
    .trimEnd()
    .split('\n')
    .map((l) => `      ${l}`)
    .join('\n')
