import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { DruError, type LifecycleState } from '@dru/core'
import type { ConflictJson, VerifyJson } from '@dru/node/admin-api'
import { startAdminServer, type AdminServer } from '../../node/src/admin-http.js'
import type { AdminSource } from '../../node/src/admin-routes.js'

// The CLI under test is the built one, as users run it (npm test builds first).
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url))

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function dru(args: string[], env: Record<string, string> = {}, cwd?: string): Promise<Run> {
  return new Promise((resolve) => {
    const childEnv = { ...process.env, ...env }
    if (!('DRU_ADMIN' in env)) delete childEnv.DRU_ADMIN
    execFile(process.execPath, [MAIN, ...args], { env: childEnv, cwd, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? null) : 0
      resolve({ code: typeof code === 'number' ? code : null, stdout, stderr })
    })
  })
}

/** A scripted DRU behind the real admin server. */
function fakeSource() {
  const seen: { verifyDeep: boolean[]; resolved: Array<[string, unknown]>; decommissioned: string[] } = {
    verifyDeep: [],
    resolved: [],
    decommissioned: [],
  }
  let verifyResult: (deep: boolean) => VerifyJson = (deep) => ({
    ok: true,
    deep,
    local: { digest: '9f86d081884c7d65' },
    peers: [
      { peer: 'us-east-1', reachable: true, equal: true, remoteDigest: '9f86d081884c7d65' },
      { peer: 'ap-south-1', reachable: false, equal: null, error: 'connection refused' },
    ],
  })
  const conflict: ConflictJson = {
    id: 7,
    docId: 'order-42',
    path: ['lines', 0, 'qty'],
    values: [
      { origin: 'us-east-1/1', value: 3, hlc: '0000018bcfe56800-0000-us-east-1/1' },
      { origin: 'eu-west-1/1', value: 5, hlc: '0000018bcfe56801-0000-eu-west-1/1' },
    ],
    detectedAt: Date.UTC(2026, 10, 25, 12, 0, 0),
    status: 'open',
  }
  let state: LifecycleState = 'catching-up'
  const source: AdminSource = {
    state: () => state,
    readyWeight: () => (state === 'active' ? 100 : 0),
    status: () => ({
      id: 'eu-west-1',
      origin: 'eu-west-1/1',
      state,
      since: new Date(Date.now() - 65_000).toISOString(),
      fingerprint: { digest: '9f86d081884c7d65', vv: { 'eu-west-1/1': 120, 'us-east-1/1': 98 } },
      peers: [
        { id: 'us-east-1', connected: true, lagEvents: 1234, lagSeconds: 2.5, lastSeen: '2026-11-25T12:00:00.000Z' },
        { id: 'ap-south-1', connected: false, lagEvents: 0, lagSeconds: null, membership: 'member' },
      ],
      conflictsOpen: 1,
    }),
    metrics: () => '',
    gaps: () => ({
      peers: [
        {
          peer: 'us-east-1',
          connected: true,
          weLack: 12,
          theyLack: 3,
          origins: [
            { origin: 'us-east-1/1', local: 98, remote: 110, weLack: 12, theyLack: 0 },
            { origin: 'eu-west-1/1', local: 120, remote: 117, weLack: 0, theyLack: 3 },
            { origin: 'ap-south-1/1', local: 40, remote: 40, weLack: 0, theyLack: 0 },
          ],
        },
        { peer: 'ap-south-1', connected: false, weLack: 0, theyLack: 0, origins: [] },
      ],
    }),
    async verify({ deep }, progress) {
      seen.verifyDeep.push(deep)
      progress({ phase: 'compare', done: 1, total: 2, unit: 'peers' })
      progress({ phase: 'compare', done: 2, total: 2, unit: 'peers' })
      return verifyResult(deep)
    },
    conflicts: {
      list: (filter) => (filter === 'resolved' ? [] : [conflict]),
      get: (id) => (id === '7' ? conflict : undefined),
      resolve(id, value) {
        if (id !== '7') throw new DruError('NOT_FOUND', `no conflict ${JSON.stringify(id)}`)
        seen.resolved.push([id, value])
        return { id: 7, status: 'resolved', event: { origin: 'eu-west-1/1', seq: 121 } }
      },
    },
    async compact(progress) {
      progress({ phase: 'snapshot', done: 40, total: 40, unit: 'docs' })
      return {
        floor: { 'eu-west-1/1': 100, 'us-east-1/1': 90 },
        eventsRemoved: 1900,
        docsSnapshotted: 40,
        durationMs: 350,
      }
    },
    decommission(id) {
      seen.decommissioned.push(id)
      return { id, removed: id === 'ap-south-1', floor: { 'eu-west-1/1': 120 } }
    },
    unquarantine(peer) {
      if (peer === 'nowhere-1') throw new DruError('NOT_FOUND', `${peer} is not a configured peer`)
      return { peer, lifted: peer === 'ap-south-1' }
    },
  }
  return {
    source,
    seen,
    setState: (s: LifecycleState) => {
      state = s
    },
    setVerify: (fn: (deep: boolean) => VerifyJson) => {
      verifyResult = fn
    },
  }
}

let server: AdminServer
let fake: ReturnType<typeof fakeSource>
let admin: string
let dir: string
const extra: Array<{ close(): Promise<void> }> = []

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error(`build the CLI first (npx tsc -b): ${MAIN} is missing`)
  fake = fakeSource()
  server = await startAdminServer({ port: 0, source: fake.source })
  admin = server.url
  dir = mkdtempSync(join(tmpdir(), 'dru-cli-'))
})
afterAll(async () => {
  await server.close()
  rmSync(dir, { recursive: true, force: true })
})
afterEach(async () => {
  await Promise.all(extra.splice(0).map((s) => s.close()))
})

describe('dru --help', () => {
  const commands = [
    [],
    ['start'],
    ['status'],
    ['wait'],
    ['gaps'],
    ['verify'],
    ['conflicts'],
    ['conflicts', 'list'],
    ['conflicts', 'show'],
    ['conflicts', 'resolve'],
    ['compact'],
    ['decommission'],
    ['unquarantine'],
  ]
  it('prints usage and exits 0 for every command', async () => {
    const runs = await Promise.all(commands.map((c) => dru([...c, '--help'])))
    runs.forEach((r, i) => {
      const name = ['dru', ...commands[i]!].join(' ')
      expect(r.code, name).toBe(0)
      expect(r.stdout, name).toContain(`Usage: ${name}`)
    })
    const byName = Object.fromEntries(runs.map((r, i) => [commands[i]!.join(' '), r.stdout]))
    for (const c of [
      'status',
      'wait',
      'gaps',
      'verify',
      'conflicts list',
      'conflicts show',
      'conflicts resolve',
      'compact',
      'decommission',
    ]) {
      expect(byName[c], c).toContain('--admin <url>')
      expect(byName[c], c).toContain('--json')
    }
    for (const c of [
      'status',
      'wait',
      'gaps',
      'verify',
      'conflicts list',
      'conflicts show',
      'conflicts resolve',
      'compact',
      'decommission',
      'unquarantine',
    ]) {
      expect(byName[c], c).toContain('--token-file <file>')
    }
    expect(byName.verify).toContain('--deep')
    expect(byName.start).toContain('--config <file>')
    expect(byName['']).toMatch(/Exit codes: 0 ok/)
  })

  it('exits 2 on unknown commands, unknown options and missing arguments', async () => {
    const [cmd, opt, arg] = await Promise.all([
      dru(['frobnicate']),
      dru(['status', '--bogus']),
      dru(['conflicts', 'show']),
    ])
    expect(cmd.code).toBe(2)
    expect(cmd.stderr).toContain("unknown command 'frobnicate'")
    expect(opt.code).toBe(2)
    expect(opt.stderr).toContain("unknown option '--bogus'")
    expect(arg.code).toBe(2)
    expect(arg.stderr).toContain("missing required argument 'id'")
  })
})

describe('dru status', () => {
  it('prints state, fingerprint and an aligned peer table', async () => {
    const r = await dru(['status', '--admin', admin])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('dru          eu-west-1 (origin eu-west-1/1)')
    expect(r.stdout).toMatch(/state {8}catching-up \(not ready\) for 1m 0[5-9]s, since /)
    expect(r.stdout).toContain('fingerprint  9f86d081884c7d65 (2 origins, 218 events)')
    expect(r.stdout).toContain('conflicts    1 open')
    const lines = r.stdout.split('\n')
    const header = lines.find((l) => l.startsWith('PEER'))!
    expect(header).toMatch(/^PEER\s+CONNECTED\s+LAG EVENTS\s+LAG\s+LAST SEEN\s+MEMBERSHIP$/)
    const east = lines.find((l) => l.startsWith('us-east-1'))!
    expect(east).toMatch(/^us-east-1\s+yes\s+1,234\s+2\.5s\s+2026-11-25T12:00:00Z\s+member$/)
    // right-aligned numbers end under the end of their header
    expect(east.indexOf('1,234') + '1,234'.length).toBe(header.indexOf('LAG EVENTS') + 'LAG EVENTS'.length)
    expect(lines.find((l) => l.startsWith('ap-south-1'))).toMatch(/^ap-south-1\s+no\s+0\s+-\s+-\s+member$/)
  })

  it('--json prints the status document', async () => {
    const r = await dru(['status', '--json', '--admin', admin])
    expect(r.code).toBe(0)
    const body = JSON.parse(r.stdout)
    expect(body.state).toBe('catching-up')
    expect(body.peers).toHaveLength(2)
  })

  it('takes the admin address from DRU_ADMIN, then from --config', async () => {
    const env = await dru(['status', '--json'], { DRU_ADMIN: admin })
    expect(env.code).toBe(0)
    const cfg = join(dir, 'admin.json')
    writeFileSync(
      cfg,
      JSON.stringify({ id: 'eu-west-1', path: 'x.db', admin: { host: '127.0.0.1', port: server.port } }),
    )
    const viaConfig = await dru(['status', '--json', '--config', cfg])
    expect(viaConfig.code).toBe(0)
    expect(JSON.parse(viaConfig.stdout).id).toBe('eu-west-1')
    // --admin wins over DRU_ADMIN
    const wins = await dru(['status', '--admin', admin], { DRU_ADMIN: 'http://127.0.0.1:1' })
    expect(wins.code).toBe(0)
  })
})

describe('dru wait', () => {
  it('polls until active, printing state changes and catch-up progress', async () => {
    // each /status call advances the script: lag shrinks while catching up, then verify, then active
    const script: Array<[LifecycleState, number]> = [
      ['catching-up', 100],
      ['catching-up', 60],
      ['catching-up', 20],
      ['verifying', 0],
      ['active', 0],
    ]
    let calls = 0
    const base = fake.source.status() as ReturnType<AdminSource['status']> & object
    const scripted = await startAdminServer({
      port: 0,
      source: {
        ...fake.source,
        status: () => {
          const [state, lag] = script[Math.min(calls++, script.length - 1)]!
          return {
            ...base,
            state,
            peers: [{ id: 'us-east-1', connected: true, lagEvents: lag, lagSeconds: lag ? 3 : null }],
          }
        },
      },
    })
    extra.push(scripted)
    const r = await dru(['wait', '--interval', '20', '--admin', scripted.url])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^eu-west-1 is active after \d+\.\ds\n$/)
    expect(r.stderr).toContain('state: catching-up\n')
    expect(r.stderr).toContain('state: catching-up -> verifying\n')
    expect(r.stderr).toContain('state: verifying -> active\n')
    expect(r.stderr).toContain('catch-up: 0/100 events (0%)')
    expect(r.stderr).toMatch(/catch-up: 100\/100 events \(100%\)/)
    expect(calls).toBe(5)
  })

  it('exits 10 when the state is not reached in time', async () => {
    const r = await dru(['wait', '--within', '0.4', '--interval', '50', '--quiet', '--admin', admin])
    expect(r.code).toBe(10)
    expect(r.stderr).toBe(
      'dru: eu-west-1 still catching-up after 0.4s (waiting for active); see dru status and dru gaps\n',
    )
  })

  it('refuses an unknown state', async () => {
    const r = await dru(['wait', '--for', 'ready', '--admin', admin])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('expected one of starting, catching-up, verifying, active, isolated')
  })
})

describe('dru gaps', () => {
  it('prints one row per lacking origin and totals', async () => {
    const r = await dru(['gaps', '--admin', admin])
    expect(r.code).toBe(0)
    const lines = r.stdout.split('\n')
    expect(lines[0]).toMatch(/^PEER\s+CONNECTED\s+ORIGIN\s+LOCAL SEQ\s+PEER SEQ\s+WE LACK\s+PEER LACKS$/)
    expect(r.stdout).toMatch(/us-east-1\s+yes\s+us-east-1\/1\s+98\s+110\s+12\s+0/)
    expect(r.stdout).toMatch(/us-east-1\s+yes\s+eu-west-1\/1\s+120\s+117\s+0\s+3/)
    expect(r.stdout).not.toContain('ap-south-1/1') // equal on both sides: not a gap
    expect(r.stdout).toMatch(/ap-south-1\s+no\s+\(in sync at last contact\)/)
    expect(r.stdout).toContain('total: we lack 12 events; peers lack 3 events')
  })

  it('--json prints the gaps document', async () => {
    const r = await dru(['gaps', '--json', '--admin', admin])
    expect(JSON.parse(r.stdout).peers[0].weLack).toBe(12)
  })
})

describe('dru verify', () => {
  it('reports in sync, shows progress on stderr, exits 0', async () => {
    const r = await dru(['verify', '--admin', admin])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/us-east-1\s+yes\s+yes\s+9f86d081884c7d65/)
    expect(r.stdout).toMatch(/ap-south-1\s+no\s+-\s+-\s+connection refused/)
    expect(r.stdout).toContain('in sync: fingerprints equal with 1 reachable peer(s); local 9f86d081884c7d65')
    expect(r.stderr).toContain('compare: 1/2 peers (50%)')
    expect(r.stderr).toContain('compare: 2/2 peers (100%)')
    expect(fake.seen.verifyDeep.at(-1)).toBe(false)
  })

  it('--deep asks for the deep check; --quiet hides progress; --json prints the result', async () => {
    const r = await dru(['verify', '--deep', '--quiet', '--json', '--admin', admin])
    expect(r.code).toBe(0)
    expect(r.stderr).toBe('')
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, deep: true })
    expect(fake.seen.verifyDeep.at(-1)).toBe(true)
  })

  it('exits 5 when a peer differs', async () => {
    fake.setVerify((deep) => ({
      ok: false,
      deep,
      local: { digest: 'aaaa' },
      peers: [
        {
          peer: 'us-east-1',
          reachable: true,
          equal: false,
          remoteDigest: 'bbbb',
          docsDiffering: ['order-1', 'order-2'],
        },
      ],
    }))
    try {
      const r = await dru(['verify', '--deep', '--admin', admin])
      expect(r.code).toBe(5)
      expect(r.stdout).toMatch(/us-east-1\s+yes\s+no\s+bbbb\s+2 docs differ: order-1, order-2/)
      expect(r.stdout).toContain('NOT in sync: fingerprints and document digests differ (local aaaa)')
      expect(r.stderr).toContain('dru: verify found differences')
    } finally {
      fake.setVerify((deep) => ({ ok: true, deep, local: { digest: 'x' }, peers: [] }))
    }
  })
})

describe('dru conflicts', () => {
  it('lists open conflicts (also as the default subcommand)', async () => {
    const [list, bare] = await Promise.all([
      dru(['conflicts', 'list', '--admin', admin]),
      dru(['conflicts', '--admin', admin]),
    ])
    for (const r of [list, bare]) {
      expect(r.code).toBe(0)
      expect(r.stdout).toMatch(/^ID\s+DOC\s+PATH\s+VALUES\s+DETECTED\s+STATUS$/m)
      expect(r.stdout).toMatch(
        /^7\s+order-42\s+lines\[0\]\.qty\s+3 \(us-east-1\/1\) \| 5 \(eu-west-1\/1\)\s+2026-11-25T12:00:00Z\s+open$/m,
      )
    }
    const none = await dru(['conflicts', 'list', '--status', 'resolved', '--admin', admin])
    expect(none.stdout).toBe('no conflicts\n')
  })

  it('shows one conflict', async () => {
    const r = await dru(['conflicts', 'show', '7', '--admin', admin])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('path      lines[0].qty')
    expect(r.stdout).toMatch(/us-east-1\/1\s+0000018bcfe56800-0000-us-east-1\/1\s+3/)
    expect(r.stdout).toContain("resolve with: dru conflicts resolve 7 '<json value>'")
  })

  it('resolves with a JSON value', async () => {
    const r = await dru(['conflicts', 'resolve', '7', '{"qty":4,"note":"agreed"}', '--admin', admin])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('resolved conflict 7 with event eu-west-1/1#121\n')
    expect(fake.seen.resolved.at(-1)).toEqual(['7', { qty: 4, note: 'agreed' }])
  })

  it('exits 6 for an unknown conflict and 2 for a value that is not JSON', async () => {
    const [show, resolve, notJson] = await Promise.all([
      dru(['conflicts', 'show', '99', '--admin', admin]),
      dru(['conflicts', 'resolve', '99', '1', '--admin', admin]),
      dru(['conflicts', 'resolve', '7', 'paid', '--admin', admin]),
    ])
    expect(show.code).toBe(6)
    expect(show.stderr).toBe('dru: NOT_FOUND: no conflict "99"\n')
    expect(resolve.code).toBe(6)
    expect(notJson.code).toBe(2)
    expect(notJson.stderr).toContain(`quote strings, e.g. '"paid"'`)
  })
})

describe('dru compact and decommission', () => {
  it('compacts with progress', async () => {
    const r = await dru(['compact', '--admin', admin])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(
      'compacted in 0.3s: 1,900 events removed, 40 document snapshots written\nfloor: eu-west-1/1:100 us-east-1/1:90\n',
    )
    expect(r.stderr).toContain('snapshot: 40/40 docs (100%)')
  })

  it('decommissions a member, and says so when it was not one', async () => {
    const [gone, unknown] = await Promise.all([
      dru(['decommission', 'ap-south-1', '--admin', admin]),
      dru(['decommission', 'nowhere-1', '--admin', admin]),
    ])
    expect(gone.code).toBe(0)
    expect(gone.stdout).toContain('ap-south-1 removed from membership of this DRU; its replicated events stay')
    expect(gone.stdout).toContain('run it on every surviving DRU')
    expect(unknown.code).toBe(0)
    expect(unknown.stdout).toBe('nowhere-1 was already decommissioned; nothing changed\n')
    expect(fake.seen.decommissioned).toEqual(expect.arrayContaining(['ap-south-1', 'nowhere-1']))
  })

  it('lifts a quarantine, says when there was none, and exits 6 for an unknown peer', async () => {
    const [lifted, none, unknown] = await Promise.all([
      dru(['unquarantine', 'ap-south-1', '--admin', admin]),
      dru(['unquarantine', 'us-east-1', '--admin', admin]),
      dru(['unquarantine', 'nowhere-1', '--admin', admin]),
    ])
    expect(lifted.code).toBe(0)
    expect(lifted.stdout).toBe('ap-south-1: quarantine lifted; it may reconnect\n')
    expect(none.stdout).toBe('us-east-1 was not quarantined; nothing changed\n')
    expect(unknown.code).toBe(6)
  })

  it('maps a fork to exit 8 and a missing operation to exit 9', async () => {
    const forking = await startAdminServer({
      port: 0,
      source: {
        ...fake.source,
        compact: async () => {
          throw new DruError('FORK', 'us-east-1/1 seq 5 has two different events')
        },
        decommission: undefined,
      },
    })
    extra.push(forking)
    const [fork, missing] = await Promise.all([
      dru(['compact', '--admin', forking.url]),
      dru(['decommission', 'x', '--admin', forking.url]),
    ])
    expect(fork.code).toBe(8)
    expect(fork.stderr).toBe('dru: FORK: us-east-1/1 seq 5 has two different events\n')
    expect(missing.code).toBe(9)
    expect(missing.stderr).toContain('NOT_SUPPORTED')
  })
})

describe('an admin API with a token', () => {
  const TOKEN = 'cli-test-admin-token-0123456789'
  it('writes need the token: refused with exit 11 without it, done with --token-file, DRU_ADMIN_TOKEN or the config', async () => {
    const guarded = await startAdminServer({ port: 0, source: fake.source, token: TOKEN })
    extra.push(guarded)
    const url = guarded.url
    const without = await dru(['compact', '--admin', url, '--quiet'])
    expect(without.code).toBe(11)
    expect(without.stderr).toBe("dru: the DRU's admin API needs a token: pass --token-file or set DRU_ADMIN_TOKEN\n")
    const file = join(dir, 'admin.token')
    writeFileSync(file, `${TOKEN}\n`)
    expect((await dru(['compact', '--admin', url, '--quiet', '--token-file', file])).code).toBe(0)
    expect((await dru(['compact', '--admin', url, '--quiet'], { DRU_ADMIN_TOKEN: TOKEN })).code).toBe(0)
    const port = Number(new URL(url).port)
    const config = join(dir, 'tokened.json')
    writeFileSync(
      config,
      JSON.stringify({ id: 'eu-west-1', path: './x.db', admin: { host: '127.0.0.1', port, tokenFile: 'admin.token' } }),
    )
    expect((await dru(['compact', '--config', config, '--quiet'])).code).toBe(0)
    // Reads on loopback need no token.
    expect((await dru(['status', '--admin', url])).code).toBe(0)
    const wrong = await dru(['compact', '--admin', url, '--quiet'], { DRU_ADMIN_TOKEN: 'wrong-token-0123456789' })
    expect(wrong.code).toBe(11)
    expect(wrong.stderr).toContain('refused the token given')
  })

  it('every writing command sends the token; without it each exits 11 and the DRU does nothing', async () => {
    const guarded = await startAdminServer({ port: 0, source: fake.source, token: TOKEN })
    extra.push(guarded)
    const file = join(dir, 'admin2.token')
    writeFileSync(file, TOKEN)
    const writes = [
      ['conflicts', 'resolve', '7', '5'],
      ['decommission', 'ap-south-1'],
      ['unquarantine', 'ap-south-1'],
      ['verify', '--quiet'],
      ['compact', '--quiet'],
    ]
    const resolvedBefore = fake.seen.resolved.length
    const decommissionedBefore = fake.seen.decommissioned.length
    const verifiesBefore = fake.seen.verifyDeep.length
    for (const w of writes) {
      const r = await dru([...w, '--admin', guarded.url])
      expect(r.code, w.join(' ')).toBe(11)
    }
    expect(fake.seen.resolved.length).toBe(resolvedBefore)
    expect(fake.seen.decommissioned.length).toBe(decommissionedBefore)
    expect(fake.seen.verifyDeep.length).toBe(verifiesBefore)
    for (const w of writes)
      expect((await dru([...w, '--admin', guarded.url, '--token-file', file])).code, w.join(' ')).toBe(0)
    expect(fake.seen.resolved.length).toBe(resolvedBefore + 1)
    expect(fake.seen.decommissioned.length).toBe(decommissionedBefore + 1)
  })

  it('reads carry the token too (an admin API off loopback needs it for /status)', async () => {
    const seen: Array<string | undefined> = []
    const api: Server = createServer((req, res) => {
      seen.push(req.headers.authorization)
      if (req.headers.authorization !== `Bearer ${TOKEN}`) {
        res
          .writeHead(401, { 'content-type': 'application/json' })
          .end(JSON.stringify({ code: 'UNAUTHORIZED', message: 'needs its token' }))
        return
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(fake.source.status()))
    })
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve))
    extra.push({ close: () => new Promise((resolve) => api.close(() => resolve())) })
    const url = `http://127.0.0.1:${(api.address() as AddressInfo).port}`
    expect((await dru(['status', '--admin', url])).code).toBe(11)
    expect((await dru(['status', '--admin', url], { DRU_ADMIN_TOKEN: TOKEN })).code).toBe(0)
    expect(seen).toEqual([undefined, `Bearer ${TOKEN}`])
  })

  it('a token file that is missing or empty is a config error (exit 3), not a silent tokenless call', async () => {
    const empty = join(dir, 'empty.token')
    writeFileSync(empty, '\n')
    const [missing, blank] = await Promise.all([
      dru(['status', '--admin', admin, '--token-file', join(dir, 'no-such.token')]),
      dru(['status', '--admin', admin, '--token-file', empty]),
    ])
    expect(missing.code).toBe(3)
    expect(missing.stderr).toContain('cannot read the admin token from --token-file')
    expect(blank.code).toBe(3)
    expect(blank.stderr).toContain('is empty')
  })
})

describe('dru start and the admin API', () => {
  const TOKEN = 'cli-test-admin-token-0123456789'
  it('refuses an admin API off loopback without a token (exit 3 naming admin); DRU_ADMIN_TOKEN supplies one', async () => {
    const file = join(dir, 'public-admin.json')
    writeFileSync(file, JSON.stringify({ id: 'eu-west-1', path: './pub.db', admin: { host: '0.0.0.0', port: 7401 } }))
    const without = await dru(['start', '--config', file, '--check'])
    expect(without.code).toBe(3)
    expect(without.stderr).toMatch(
      /config field "admin" \.host "0\.0\.0\.0" is off loopback: set \.token or \.tokenFile/,
    )
    const withEnv = await dru(['start', '--config', file, '--check'], { DRU_ADMIN_TOKEN: TOKEN })
    expect(withEnv.code).toBe(0)
    expect(withEnv.stdout).toContain('config OK')
  })

  it('an admin port already taken exits 12 with ADDRESS_IN_USE and the address', async () => {
    const squatter: Server = createServer()
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve))
    extra.push({ close: () => new Promise((resolve) => squatter.close(() => resolve())) })
    const port = (squatter.address() as AddressInfo).port
    const file = join(dir, 'taken.json')
    writeFileSync(file, JSON.stringify({ id: 'eu-west-1', path: './taken.db', admin: { host: '127.0.0.1', port } }))
    const r = await dru(['start', '--config', file])
    expect(r.code).toBe(12)
    expect(r.stderr).toContain(
      `dru: ADDRESS_IN_USE: the admin address 127.0.0.1:${port} is already in use by another process`,
    )
    expect(r.stderr).toContain('set another admin.port')
  })
})

describe('connection failures', () => {
  it('says no DRU is answering and exits 4 when the port is closed', async () => {
    const closed = await startAdminServer({ port: 0, source: fake.source })
    const url = closed.url
    await closed.close()
    const r = await dru(['status', '--admin', url])
    expect(r.code).toBe(4)
    expect(r.stderr).toBe(
      `dru: no DRU answering at ${url} (connection refused); is it running? Check --admin or DRU_ADMIN\n`,
    )
  })

  it('exits 10 when the DRU does not answer in time', async () => {
    const slow = await startAdminServer({
      port: 0,
      source: {
        ...fake.source,
        status: () => new Promise((resolve) => setTimeout(() => resolve(fake.source.status()), 5_000)),
      },
    })
    extra.push(slow)
    const r = await dru(['status', '--timeout', '0.3', '--admin', slow.url])
    expect(r.code).toBe(10)
    expect(r.stderr).toContain('did not answer within 0.3s')
  })

  it('exits 1 when something that is not a DRU answers', async () => {
    const other: Server = createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'text/html' }).end('<html>hi</html>'),
    )
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve))
    extra.push({ close: () => new Promise((resolve) => other.close(() => resolve())) })
    const r = await dru(['status', '--admin', `http://127.0.0.1:${(other.address() as AddressInfo).port}`])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('not JSON')
  })

  it('exits 2 for an admin address that is not an http URL', async () => {
    const [notUrl, ws] = await Promise.all([
      dru(['status', '--admin', 'nope']),
      dru(['status', '--admin', 'ws://127.0.0.1:1']),
    ])
    expect(notUrl.code).toBe(2)
    expect(notUrl.stderr).toContain('is not a URL')
    expect(ws.code).toBe(2)
    expect(ws.stderr).toContain('must start with http://')
  })
})

describe('dru start: config loading', () => {
  const write = (name: string, text: string) => {
    const file = join(dir, name)
    writeFileSync(file, text)
    return file
  }

  it('exits 3 naming the problem for unreadable, non-JSON and invalid configs', async () => {
    const cases: Array<[string, RegExp]> = [
      [join(dir, 'missing.json'), /cannot read config file .*missing\.json: no such file/],
      [write('broken.json', '{"id": "a",'), /broken\.json is not valid JSON/],
      [write('array.json', '[]'), /array\.json: the config must be a JSON object/],
      [write('noid.json', '{"path":"a.db"}'), /noid\.json: config field "id" is required/],
      [write('nopath.json', '{"id":"a"}'), /nopath\.json: config field "path" is required/],
      [
        write('port.json', '{"id":"a","path":"a.db","admin":{"port":70000}}'),
        /config field "admin.port" must be an integer 0-65535 \(got 70000\)/,
      ],
      [
        write('peer.json', '{"id":"a","path":"a.db","peers":[{"id":"b","url":"http://x"}]}'),
        /config field "peers\[0\]\.url" must be a ws:\/\/ or wss:\/\/ URL/,
      ],
    ]
    const runs = await Promise.all(cases.map(([file]) => dru(['start', '--config', file])))
    runs.forEach((r, i) => {
      expect(r.code, cases[i]![0]).toBe(3)
      expect(r.stderr, cases[i]![0]).toMatch(cases[i]![1])
    })
  })

  it('--check validates and resolves the path against the config folder', async () => {
    const file = write('ok.json', '{"id":"eu-west-1","path":"data/eu.db"}')
    const r = await dru(['start', '--config', 'ok.json', '--check'], {}, dir)
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(`config OK: eu-west-1 at ${join(dir, 'data', 'eu.db')}\n`)
    expect(existsSync(file)).toBe(true)
  })

  it('requires --config', async () => {
    const r = await dru(['start'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain("required option '--config <file>' not specified")
  })
})
