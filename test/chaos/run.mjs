#!/usr/bin/env node
/**
 * Chaos harness: N DRU processes on 127.0.0.1, every directed link through a
 * fault-injecting proxy, one client per DRU writing unique tokens, a seeded nemesis,
 * then a final heal, quiescence and the checker (checker.mjs).
 *
 *   npm run chaos -- [--seed S] [--duration 30s] [--drus 5] [--hold 300-3500] [--rss-mib 512]
 *                    [--faults N] [--converge 60s] [--keep] [--dir D]
 *
 * --hold is how long each fault stays before it is undone, in ms unless a unit is given
 * (uniform in the range). --duration and --converge default to seconds. --faults N injects
 * exactly N faults instead of running for --duration (a seed then replays the same faults
 * however slow the machine is).
 *
 * Exit 0 when the checker finds nothing, 1 on any violation (the seed is printed to
 * replay), 2 on a harness error. DRU_TEST_PLANT in the environment is passed to the
 * fixtures (test-only planted bugs, see fixtures/chaos-dru.mjs).
 */
import { copyFileSync, createWriteStream, mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateKeys } from '@dru/sync'
import { DruProcess, LinkProxy } from '@dru/testkit'
import { check } from './checker.mjs'

const PLUGIN = fileURLToPath(new URL('./fixtures/chaos-dru.mjs', import.meta.url))
const SYNC = { heartbeatMs: 200, heartbeatTimeoutMs: 1_000, startupGraceMs: 1_500 }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// ---- options --------------------------------------------------------------------------
function parseArgs(argv) {
  const o = {
    seed: Math.floor(Math.random() * 2 ** 31),
    durationMs: 30_000,
    drus: 5,
    rssMiB: 512,
    keep: false,
    dir: undefined,
    convergeMs: 60_000,
    hold: [300, 3500],
    faults: 0,
  }
  const ms = (s, unit = 's') => {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s)
    if (!m) throw new Error(`bad duration ${s}`)
    return Number(m[1]) * { ms: 1, s: 1e3, m: 60e3, h: 3600e3 }[m[2] ?? unit]
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => argv[++i]
    if (a === '--seed') o.seed = Number(next())
    else if (a === '--duration') o.durationMs = ms(next())
    else if (a === '--drus') o.drus = Number(next())
    else if (a === '--rss-mib') o.rssMiB = Number(next())
    else if (a === '--converge') o.convergeMs = ms(next())
    else if (a === '--hold')
      o.hold = next()
        .split('-')
        .map((x) => ms(x, 'ms'))
    else if (a === '--faults') o.faults = Number(next())
    else if (a === '--keep') o.keep = true
    else if (a === '--dir') o.dir = next()
    else throw new Error(`unknown option ${a}`)
  }
  if (!Number.isInteger(o.drus) || o.drus < 3) throw new Error('--drus must be an integer ≥ 3')
  return o
}

/** mulberry32: a small seeded PRNG, so a seed replays the same nemesis schedule. */
function prng(seed) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (xs) => xs[Math.floor(next() * xs.length)],
    shuffle: (xs) => {
      const ys = [...xs]
      for (let i = ys.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1))
        ;[ys[i], ys[j]] = [ys[j], ys[i]]
      }
      return ys
    },
  }
}

// ---- the cluster ------------------------------------------------------------------------
class Cluster {
  constructor(dir, ids) {
    this.dir = dir
    this.ids = ids
    this.units = new Map()
    this.links = [] // {from, to, proxy}
  }

  async setup() {
    const secret = 'chaos-harness-secret-0123456789'
    const keys = Object.fromEntries(this.ids.map((id) => [id, generateKeys()]))
    const publicKeys = Object.fromEntries(this.ids.map((id) => [id, keys[id].publicKey]))
    for (const id of this.ids) {
      // Ports are chosen by the OS at each start (port 0) and read back from the child, so
      // parallel test files never race for a port and a restart never needs its old one.
      this.units.set(id, {
        id,
        listenPort: 0,
        adminUrl: '',
        appPort: 0,
        dbPath: join(this.dir, `${id}.db`),
        configPath: join(this.dir, `${id}.json`),
        skewMs: 0,
        log: [],
      })
    }
    for (const from of this.ids)
      for (const to of this.ids) if (from !== to) this.links.push({ from, to, proxy: await LinkProxy.start() })
    for (const u of this.units.values()) {
      const config = {
        id: u.id,
        path: u.dbPath,
        durability: 'process',
        listen: { host: '127.0.0.1', port: 0 },
        admin: { host: '127.0.0.1', port: 0 },
        peers: this.links
          .filter((l) => l.from === u.id)
          .map((l) => ({ id: l.to, url: `ws://127.0.0.1:${l.proxy.port}` })),
        secret,
        keys: { privateKey: keys[u.id].privateKey, publicKeys },
        sync: SYNC,
        log: 'silent',
      }
      writeFileSync(u.configPath, JSON.stringify(config, null, 2))
    }
  }

  start(id) {
    if (this.stopping) return Promise.reject(new Error('stopping'))
    const u = this.units.get(id)
    const starting = DruProcess.start({
      configPath: u.configPath,
      plugin: PLUGIN,
      env: { CHAOS_SKEW_MS: String(u.skewMs) },
      onLine: (line) => u.log.push(line),
      onStderr: (text) => u.log.push(text),
    })
    return starting.then(
      (dru) => {
        Object.assign(u, {
          process: dru,
          paused: false,
          appPort: dru.ports.control,
          listenPort: dru.ports.sync,
          adminUrl: dru.ports.admin,
        })
        for (const l of this.links) if (l.to === id) l.proxy.target = dru.ports.sync
      },
      (err) => {
        throw new Error(`${id} ${err.message}`)
      },
    )
  }

  running(id) {
    return this.units.get(id).process?.running ?? false
  }

  async kill(id) {
    await this.units.get(id).process?.kill()
  }

  signal(id, sig) {
    const u = this.units.get(id)
    if (!this.running(id)) return
    u.process.signal(sig)
    u.paused = sig === 'SIGSTOP'
  }

  /** Sets the mode of every directed link between a member of `a` and a member of `b`. */
  cutBetween(a, b, mode) {
    for (const l of this.links)
      if ((a.includes(l.from) && b.includes(l.to)) || (b.includes(l.from) && a.includes(l.to))) l.proxy.set(mode)
  }

  healLinks() {
    for (const l of this.links) l.proxy.set('pass')
  }

  http(id, method, path, timeoutMs = 5_000) {
    return this.units.get(id).process.request(method, path, { timeoutMs })
  }

  async dump(id) {
    return (await this.http(id, 'GET', '/dump', 10_000)).body
  }

  async admin(id, path) {
    const res = await fetch(`${this.units.get(id).adminUrl}${path}`, { signal: AbortSignal.timeout(3_000) })
    return res.json()
  }

  async dispose(keep) {
    this.stopping = true
    for (const id of this.ids) {
      this.signal(id, 'SIGCONT')
      await this.kill(id)
    }
    await Promise.all(this.links.map((l) => l.proxy.close()))
    if (!keep) rmSync(this.dir, { recursive: true, force: true })
  }
}

async function waitFor(what, cond, ms) {
  const end = Date.now() + ms
  for (;;) {
    try {
      if (await cond()) return
    } catch {
      // not answering yet
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(50)
  }
}

// ---- main -----------------------------------------------------------------------------
async function main() {
  const opts = parseArgs(process.argv.slice(2))
  const rng = prng(opts.seed)
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'dru-chaos-'))
  mkdirSync(dir, { recursive: true })
  const ids = Array.from({ length: opts.drus }, (_, i) => `dru${i + 1}`)
  const cluster = new Cluster(dir, ids)
  const historyPath = join(dir, 'history.jsonl')
  const historyFile = createWriteStream(historyPath)
  const history = []
  const t0 = Date.now()
  let historyOpen = true
  const record = (r) => {
    const rec = { ...r, time: Date.now() }
    history.push(rec)
    if (historyOpen) historyFile.write(`${JSON.stringify(rec)}\n`)
    return rec
  }
  const faults = {}
  const say = (s) => process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${s}\n`)
  const plant = process.env.DRU_TEST_PLANT
  say(
    `dru chaos: seed ${opts.seed}, ${opts.drus} DRUs, ${opts.faults > 0 ? `${opts.faults} faults` : `${opts.durationMs / 1000} s of faults`}, folder ${dir}${plant ? `, PLANTED BUG ${plant}` : ''}`,
  )

  let exitCode = 2
  // Stopped from outside (a test timing out, Ctrl-C): take the DRU children down with us.
  for (const sig of ['SIGTERM', 'SIGINT']) {
    process.once(sig, () => {
      process.stderr.write(`chaos harness: ${sig}, stopping the DRUs (seed ${opts.seed})\n`)
      historyOpen = false
      void cluster.dispose(true).finally(() => process.exit(2))
    })
  }
  try {
    await cluster.setup()
    await Promise.all(ids.map((id) => cluster.start(id)))
    await waitFor(
      'every DRU active',
      async () => (await Promise.all(ids.map((id) => cluster.admin(id, '/status')))).every((s) => s.state === 'active'),
      30_000,
    )
    say('cluster active')

    // ---- clients --------------------------------------------------------------------------
    let stopClients = false
    let counter = 0
    const docs = Array.from({ length: 8 }, (_, i) => `doc${i}`)
    const client = async (id) => {
      const wrng = prng(opts.seed ^ (ids.indexOf(id) * 7919 + 1))
      while (!stopClients) {
        const value = { dru: id, doc: wrng.pick(docs), token: `t${++counter}_${id}`, acks: wrng.next() < 0.3 ? 1 : 0 }
        record({ process: `client-${id}`, type: 'invoke', f: 'write', value })
        const q = `/write?doc=${value.doc}&token=${value.token}&acks=${value.acks}&timeoutMs=1500`
        try {
          const { status, body } = await cluster.http(id, 'POST', q, 3_000)
          if (status === 200) record({ process: `client-${id}`, type: 'ok', f: 'write', value, result: body })
          // NOT_WRITABLE refuses before anything is written: a definite failure.
          else if (status === 503) record({ process: `client-${id}`, type: 'fail', f: 'write', value, result: body })
          // ACK_TIMEOUT: committed locally, not acknowledged by a peer; anything else: unknown.
          else record({ process: `client-${id}`, type: 'info', f: 'write', value, result: body })
        } catch (err) {
          const code = err.cause?.code ?? err.name
          // Connection refused: the request never reached the process, nothing was written.
          const type = code === 'ECONNREFUSED' ? 'fail' : 'info'
          record({ process: `client-${id}`, type, f: 'write', value, result: { code } })
          if (type === 'fail') await sleep(100)
        }
        await sleep(wrng.int(5, 40))
      }
    }
    const clients = ids.map((id) => client(id))

    // ---- monitor: samples each process's VV and acked VVs (I9: they never regress) -----------
    const monitor = async () => {
      while (!stopClients) {
        for (const id of ids) {
          if (!cluster.running(id) || cluster.units.get(id).paused) continue
          try {
            const { body } = await cluster.http(id, 'GET', '/vv', 1_000)
            record({ process: 'monitor', type: 'info', f: 'vv', value: { dru: id, ...body } })
          } catch {
            // killed or paused meanwhile: no sample
          }
        }
        await sleep(250)
      }
    }
    const monitoring = monitor()

    // ---- nemesis ------------------------------------------------------------------------------
    const nem = (f, value) => {
      faults[f] = (faults[f] ?? 0) + 1
      record({ process: 'nemesis', type: 'info', f, value })
      say(`nemesis ${f} ${JSON.stringify(value)}`)
    }
    const linkMode = () => rng.pick(['blackhole', 'cut'])
    // I10: an isolated DRU must say so. Once the cut outlasted the heartbeat timeout (plus
    // an interval and scheduling slack) its /status must show no connected peer.
    let isolated
    const observeIsolated = async (heldMs) => {
      const x = isolated
      if (heldMs < SYNC.heartbeatTimeoutMs + SYNC.heartbeatMs + 600 || !cluster.running(x)) return
      const s = await cluster.admin(x, '/status')
      record({
        process: 'nemesis',
        type: 'info',
        f: 'observe-isolated',
        value: { dru: x, heldMs, state: s.state, connected: s.peers.filter((p) => p.connected).map((p) => p.id) },
      })
    }
    let restoresLeft = 2
    const schedule = {
      isolate: async () => {
        const x = rng.pick(ids.filter((i) => !cluster.units.get(i).paused))
        isolated = x
        const mode = linkMode()
        cluster.cutBetween(
          [x],
          ids.filter((i) => i !== x),
          mode,
        )
        nem('partition-isolate', { isolated: x, mode })
        return () => cluster.healLinks()
      },
      majority: async () => {
        const s = rng.shuffle(ids)
        const minority = s.slice(0, Math.floor(ids.length / 2))
        const mode = linkMode()
        cluster.cutBetween(minority, s.slice(minority.length), mode)
        nem('partition-majority', { minority, majority: s.slice(minority.length), mode })
        return () => cluster.healLinks()
      },
      bridge: async () => {
        const [b, ...rest] = rng.shuffle(ids)
        const half = Math.ceil(rest.length / 2)
        const mode = linkMode()
        cluster.cutBetween(rest.slice(0, half), rest.slice(half), mode)
        nem('partition-bridge', { bridge: b, sides: [rest.slice(0, half), rest.slice(half)], mode })
        return () => cluster.healLinks()
      },
      asymmetric: async () => {
        // Everything x sends is held; everything sent to x arrives (F2).
        const x = rng.pick(ids)
        for (const l of cluster.links) {
          if (l.from === x) l.proxy.set('hold-up')
          else if (l.to === x) l.proxy.set('hold-down')
        }
        nem('partition-asymmetric', { mute: x })
        return () => cluster.healLinks()
      },
      kill: async () => {
        const x = rng.pick(ids.filter((i) => cluster.running(i)))
        await cluster.kill(x)
        nem('kill', { dru: x })
        await sleep(rng.int(100, 1500))
        await cluster.start(x)
        return () => undefined
      },
      pause: async () => {
        const x = rng.pick(ids)
        cluster.signal(x, 'SIGSTOP')
        nem('pause', { dru: x })
        return () => cluster.signal(x, 'SIGCONT')
      },
      slow: async () => {
        const x = rng.pick(ids)
        const ms = rng.int(50, 400)
        cluster.cutBetween(
          [x],
          ids.filter((i) => i !== x),
          `slow:${ms}`,
        )
        nem('slow-links', { dru: x, delayMs: ms })
        return () => cluster.healLinks()
      },
      flap: async () => {
        const x = rng.pick(ids)
        nem('flap', { dru: x })
        const end = Date.now() + rng.int(1000, 2500)
        while (Date.now() < end) {
          const y = rng.pick(ids.filter((i) => i !== x))
          cluster.cutBetween([x], [y], rng.pick(['cut', 'blackhole', 'pass']))
          await sleep(rng.int(100, 400))
        }
        return () => cluster.healLinks()
      },
      skew: async () => {
        const x = rng.pick(ids)
        const u = cluster.units.get(x)
        u.skewMs = rng.pick([-1, 1]) * rng.int(1, 5) * 3600_000
        if (cluster.running(x) && !u.paused) await cluster.http(x, 'POST', `/skew?ms=${u.skewMs}`)
        nem('clock-skew', { dru: x, skewHours: u.skewMs / 3600_000 })
        return () => undefined
      },
      restore: async () => {
        const x = rng.pick(ids.filter((i) => cluster.running(i) && !cluster.units.get(i).paused))
        const u = cluster.units.get(x)
        const copy = join(dir, `${x}.stale-copy.db`)
        const copyAt = Date.now()
        const { body } = await cluster.http(x, 'POST', `/backup?to=${encodeURIComponent(copy)}`)
        // Keep writing past the copy so the restored file really is stale.
        await sleep(rng.int(800, 2000))
        await cluster.kill(x)
        for (const s of ['-wal', '-shm']) rmSync(`${u.dbPath}${s}`, { force: true })
        copyFileSync(copy, u.dbPath)
        await cluster.start(x)
        const after = (await cluster.admin(x, '/status')).origin
        nem('restore', { dru: x, copyAt, before: body.origin, after })
        return () => undefined
      },
    }
    // Compaction under faults (F10/F34): fold what every member acknowledged on one DRU. A
    // later lost disk or stale restore then needs a bootstrap from snapshots.
    // Every running DRU compacts, as an operator would cluster-wide, so a DRU that later
    // loses its disk can only get the folded events as snapshots.
    schedule.compact = async () => {
      const targets = ids.filter((i) => cluster.running(i) && !cluster.units.get(i).paused)
      const results = await Promise.all(
        targets.map(async (x) => {
          const res = await fetch(`${cluster.units.get(x).adminUrl}/compact`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: '{}',
            signal: AbortSignal.timeout(10_000),
          })
          const body = await res.json().catch(() => ({}))
          return {
            dru: x,
            status: res.status,
            eventsRemoved: body.eventsRemoved ?? null,
            eventsAfter: body.eventsAfter ?? null,
            code: body.code ?? null,
          }
        }),
      )
      nem('compact', { results, eventsRemoved: results.reduce((n, r) => n + (r.eventsRemoved ?? 0), 0) })
      return () => undefined
    }
    // A seeded deck of every fault kind, reshuffled when empty, so even a short run injects
    // each kind once; a stale restore and a lost disk run at most twice in all per run.
    // A lost disk (F14): the DRU comes back empty under the same id. Every acks:0 write it
    // took that no peer held yet may be lost (copyAt 0 marks all of its writes at risk).
    schedule.wipe = async () => {
      const x = rng.pick(ids.filter((i) => cluster.running(i) && !cluster.units.get(i).paused))
      const u = cluster.units.get(x)
      const before = (await cluster.admin(x, '/status')).origin
      await cluster.kill(x)
      for (const s of ['', '-wal', '-shm']) rmSync(`${u.dbPath}${s}`, { force: true })
      await cluster.start(x)
      const after = (await cluster.admin(x, '/status')).origin
      nem('lost-disk', { dru: x, copyAt: 0, before, after })
      return () => undefined
    }
    const kinds = Object.keys(schedule)
    let deck = []
    const faultEnd = Date.now() + opts.durationMs
    let injected = 0
    while (opts.faults > 0 ? injected++ < opts.faults : Date.now() < faultEnd) {
      if (deck.length === 0) deck = rng.shuffle(kinds)
      let kind = deck.pop()
      if ((kind === 'restore' || kind === 'wipe') && restoresLeft-- <= 0) kind = 'kill'
      const undo = await schedule[kind]()
      // Some faults outlast the heartbeat timeout (1 s) and the acks timeout (1.5 s), some do not.
      const held = rng.int(opts.hold[0], opts.hold[1])
      await sleep(held)
      if (kind === 'isolate') await observeIsolated(held)
      await undo()
      await sleep(rng.int(200, 1000))
    }

    // ---- final heal and quiescence -------------------------------------------------------------
    cluster.healLinks()
    for (const id of ids) cluster.signal(id, 'SIGCONT')
    for (const id of ids) if (!cluster.running(id)) await cluster.start(id)
    stopClients = true
    await Promise.all([...clients, monitoring])
    record({ process: 'nemesis', type: 'info', f: 'final-heal', value: {} })
    const healAt = Date.now()
    say('final heal: links pass, every DRU running; clients stopped')
    let dumps = []
    let converged = true
    try {
      await waitFor(
        'convergence',
        async () => {
          dumps = await Promise.all(ids.map((id) => cluster.dump(id)))
          return (
            dumps.every((d) => d.state === 'active') &&
            new Set(dumps.map((d) => `${d.fingerprint.digest ?? JSON.stringify(d.fingerprint)}|${d.digest}`)).size === 1
          )
        },
        opts.convergeMs,
      )
    } catch {
      converged = false
    }
    const convergeMs = Date.now() - healAt
    if (dumps.length !== ids.length) dumps = await Promise.all(ids.map((id) => cluster.dump(id)))

    // ---- check and report ------------------------------------------------------------------
    const { violations, stats } = check(history, dumps, { rssBoundKiB: opts.rssMiB * 1024 })
    // Compaction and bootstrap seen in this run (from the nemesis record and the DRUs' logs).
    stats.compactedEvents = history
      .filter((x) => x.f === 'compact')
      .reduce((n, x) => n + (x.value.eventsRemoved ?? 0), 0)
    stats.bootstraps = [...cluster.units.values()].reduce(
      (n, u) => n + u.log.filter((l) => String(l).includes('bootstrapped from document snapshots')).length,
      0,
    )
    if (!converged)
      violations.push({
        invariant: 'I8 LIVE',
        message: `no convergence within ${opts.convergeMs} ms of the final heal`,
      })
    const lines = [
      '',
      'Report',
      `  seed ${opts.seed}; ${opts.drus} DRUs; ${opts.faults > 0 ? `${opts.faults} faults` : `${opts.durationMs / 1000} s of faults`}; total ${((Date.now() - t0) / 1000).toFixed(1)} s`,
      `  writes: ${stats.writes} invoked, ${stats.ok} ok (${stats.okAcks1} with acks:1), ${stats.fail} fail, ${stats.info} info (indeterminate); ${stats.lostAllowed} acks:0 writes lost with a restored disk (allowed)`,
      `  acks:1 ok writes whose writer later lost its disk or was restored (must all survive): ${stats.acks1AcrossDiskLoss}; ACK_TIMEOUT writes (committed, must survive): ${stats.committedUnacked}`,
      `  events in the cluster: ${stats.events}; remote applications checked for exactly-once: ${stats.remoteEventsApplied}; VV samples checked for regressions: ${stats.vvSamples}`,
      `  compaction: ${stats.compactedEvents} events folded into snapshots; ${stats.bootstraps} bootstrap(s) of a DRU below a floor`,
      `  faults: ${
        Object.entries(faults)
          .map(([k, n]) => `${k}×${n}`)
          .join(', ') || 'none'
      }`,
      `  converged ${converged ? `${convergeMs} ms` : 'NOT'} after the final heal; peak RSS ${stats.peakRssMiB.toFixed(0)} MiB (bound ${opts.rssMiB} MiB)`,
      `  origins now: ${dumps.map((d) => d.origin).join(' ')}`,
      `  history: ${historyPath}${opts.keep ? '' : ' (removed; use --keep)'}`,
    ]
    if (violations.length === 0) lines.push('  violations: none — PASS')
    else {
      lines.push(`  violations: ${violations.length} — FAIL`)
      const byKind = {}
      for (const x of violations) (byKind[x.invariant] ??= []).push(x.message)
      for (const [k, ms] of Object.entries(byKind)) {
        lines.push(`    ${k}: ${ms.length}`)
        for (const m of ms.slice(0, 5)) lines.push(`      ${m}`)
      }
      const argv = process.argv.slice(2).filter((x, i, xs) => x !== '--dir' && xs[i - 1] !== '--dir' && x !== '--keep')
      lines.push(`  replay: npm run chaos -- ${argv.join(' ')}${argv.includes('--seed') ? '' : ` --seed ${opts.seed}`}`)
    }
    process.stdout.write(`${lines.join('\n')}\n`)
    process.stdout.write(
      `CHAOS_RESULT ${JSON.stringify({ seed: opts.seed, pass: violations.length === 0, convergeMs, converged, faults, stats, violations: violations.reduce((n, x) => ({ ...n, [x.invariant]: (n[x.invariant] ?? 0) + 1 }), {}) })}\n`,
    )
    exitCode = violations.length === 0 ? 0 : 1
  } catch (err) {
    process.stderr.write(`chaos harness error (seed ${opts.seed}): ${err.stack ?? err}\n`)
    for (const u of cluster.units.values())
      if (u.log.length) process.stderr.write(`--- ${u.id} log tail\n${u.log.join('').slice(-1500)}\n`)
  } finally {
    historyOpen = false
    historyFile.end()
    await cluster.dispose(opts.keep || exitCode !== 0)
  }
  process.exit(exitCode)
}

await main()
