import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// The newcomer's path, as a stranger to this repository would walk it: pack every published
// package (npm pack), install the tarballs into a fresh project outside the repository, and
// there run `dru --help`, `dru init`, start the generated cluster with `dru start`, write
// through an embedding script compiled with `tsc --strict` against the published types, read
// through a plain ESM script, and check convergence with `dru verify`.

const REPO = fileURLToPath(new URL('../../', import.meta.url))
const PUBLISHED = ['core', 'store-sqlite', 'documents', 'sync', 'node', 'testkit', 'cli']
const versionOf = (pkg: string) =>
  JSON.parse(readFileSync(join(REPO, 'node_modules', pkg, 'package.json'), 'utf8')).version as string

let work: string
let project: string
const children: ChildProcess[] = []

function run(
  cmd: string,
  args: string[],
  cwd: string,
  timeoutMs = 300_000,
): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, npm_config_fund: 'false', npm_config_audit: 'false' },
  })
  if (r.error) throw r.error
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }
}

function ok(cmd: string, args: string[], cwd: string): string {
  const r = run(cmd, args, cwd)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`)
  return r.stdout
}

/** Ports the OS has just handed out (closed again before use, so a start may still lose a race: retried). */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<import('node:net').Server>((resolve) => {
          const s = createServer()
          s.listen(0, '127.0.0.1', () => resolve(s))
        }),
    ),
  )
  const ports = servers.map((s) => (s.address() as { port: number }).port)
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))
  return ports
}

/** Starts `dru start --config <file>` and resolves once it says it started (or rejects with its output). */
function startDru(cwd: string, config: string): Promise<ChildProcess> {
  // The installed bin, run by node directly: killing an `npx` wrapper would orphan the DRU.
  const child = spawn(
    process.execPath,
    [join(cwd, 'node_modules/@dru/cli/dist/main.js'), 'start', '--config', config],
    { cwd, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  children.push(child)
  let out = ''
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d
      if (out.includes('started')) resolve(child)
    })
    child.stderr!.on('data', (d) => (out += d))
    child.on('exit', (code) =>
      reject(Object.assign(new Error(`dru start --config ${config} exited ${code}: ${out}`), { exitCode: code })),
    )
  })
}

const APP_TS = `
import { readFileSync } from 'node:fs'
import { openDru, type DruConfig } from '@dru/node'

interface Order { total?: number; items?: string[] }

const config = JSON.parse(readFileSync('app.json', 'utf8')) as DruConfig
const dru = await openDru(config)
try {
  while (dru.state() !== 'active') await new Promise((r) => setTimeout(r, 50))
  for (let i = 0; i < 20; i++) {
    // acks: 3 resolves once three peers hold the change durably.
    await dru.change('order-' + i, (doc: Order) => {
      doc.total = i
      doc.items = ['tea']
    }, { acks: 3 })
  }
  const order = dru.get('order-19') as Order | undefined
  console.log(JSON.stringify({ order, state: dru.state() }))
} finally {
  await dru.close()
}
`

const READER_MJS = `
import { readFileSync } from 'node:fs'
import { openDru } from '@dru/node'

const dru = await openDru(JSON.parse(readFileSync('reader.json', 'utf8')))
let seen = 0
dru.onEvent('count', () => void seen++)
while (dru.get('order-19') === undefined) await new Promise((r) => setTimeout(r, 50))
console.log(JSON.stringify({ order: dru.get('order-19'), seen }))
await dru.close()
`

describe('the newcomer path from packed tarballs', () => {
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'dru-newcomer-'))
    const packs = join(work, 'packs')
    mkdirSync(packs)
    ok(
      'npm',
      ['pack', ...PUBLISHED.flatMap((p) => ['--workspace', `packages/${p}`]), '--pack-destination', packs],
      REPO,
    )
    project = join(work, 'project')
    mkdirSync(project)
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'my-service', private: true, type: 'module' }, null, 2),
    )
    const tarballs = readdirSync(packs).map((f) => join(packs, f))
    expect(tarballs).toHaveLength(PUBLISHED.length)
    // Installs from the tarballs plus the registry (what a user would get), preferring npm's cache.
    ok(
      'npm',
      [
        'install',
        '--prefer-offline',
        ...tarballs,
        `typescript@${versionOf('typescript')}`,
        `@types/node@${versionOf('@types/node')}`,
      ],
      project,
    )
  }, 600_000)

  afterAll(async () => {
    // SIGTERM first (a clean close), then make sure: no DRU may outlive the test.
    for (const c of children) c.kill('SIGTERM')
    const exited = Promise.all(
      children.map(
        (c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r))),
      ),
    )
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))])
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    if (work) rmSync(work, { recursive: true, force: true })
  })

  it('dru --help, dru init, dru start ×3, an embedding app (tsc --strict) and a reader (ESM) converge; dru verify says in sync', async () => {
    const help = run('npx', ['--no-install', 'dru', '--help'], project)
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/init .*scaffold a cluster/)

    // The embedding script type-checks strictly against the published types.
    writeFileSync(join(project, 'app.ts'), APP_TS)
    writeFileSync(join(project, 'reader.mjs'), READER_MJS)
    const tsc = run(
      'npx',
      [
        '--no-install',
        'tsc',
        '--strict',
        '--target',
        'es2022',
        '--module',
        'nodenext',
        '--moduleResolution',
        'nodenext',
        '--skipLibCheck',
        'false',
        'app.ts',
      ],
      project,
    )
    expect(tsc.code, tsc.stdout + tsc.stderr).toBe(0)

    const ids = ['us-east', 'eu-west', 'ap-south', 'app', 'reader']
    let started = false
    for (let attempt = 0; attempt < 3 && !started; attempt++) {
      const ports = await freePorts(ids.length * 2)
      const members = ids.map((id, i) => `${id}=127.0.0.1:${ports[i]}`)
      const init = run('npx', ['--no-install', 'dru', 'init', '--force', '--json', ...members], project)
      expect(init.code, init.stderr).toBe(0)
      // Admin ports the OS picked as well (init's default, sync port + 100, could be taken).
      for (const [i, id] of ids.entries()) {
        const file = join(project, 'cluster', `${id}.json`)
        const config = JSON.parse(readFileSync(file, 'utf8'))
        config.admin.port = ports[ids.length + i]
        writeFileSync(file, JSON.stringify(config, null, 2))
      }
      try {
        await Promise.all(['us-east', 'eu-west', 'ap-south'].map((id) => startDru(project, `cluster/${id}.json`)))
        started = true
      } catch (err) {
        for (const c of children.splice(0)) c.kill('SIGKILL')
        // The bin is run directly, so SIGKILL reaches the DRU itself.
        // Only a lost port race (exit 12, ADDRESS_IN_USE) is retried.
        if ((err as { exitCode?: number }).exitCode !== 12) throw err
      }
    }
    expect(started).toBe(true)
    const wait = run(
      'npx',
      ['--no-install', 'dru', 'wait', '--for', 'active', '--within', '60', '--config', 'cluster/us-east.json'],
      project,
    )
    expect(wait.code, wait.stderr).toBe(0)

    // The embedded app and the reader run with the cluster folder as their working directory,
    // so the config's relative file references (secret, keys) resolve as they do for dru start.
    const app = run('node', ['../app.js'], join(project, 'cluster'), 120_000)
    expect(app.code, app.stderr).toBe(0)
    expect(JSON.parse(app.stdout)).toEqual({ order: { total: 19, items: ['tea'] }, state: 'active' })
    const reader = run('node', ['../reader.mjs'], join(project, 'cluster'), 120_000)
    expect(reader.code, reader.stderr).toBe(0)
    // Every one of the app's 20 events reached the reader's handler exactly once.
    expect(JSON.parse(reader.stdout)).toEqual({ order: { total: 19, items: ['tea'] }, seen: 20 })

    for (const id of ['us-east', 'eu-west', 'ap-south']) {
      const verify = run('npx', ['--no-install', 'dru', 'verify', '--json', '--config', `cluster/${id}.json`], project)
      expect(verify.code, verify.stdout + verify.stderr).toBe(0)
      const result = JSON.parse(verify.stdout) as {
        ok: boolean
        peers: Array<{ peer: string; reachable: boolean; equal: boolean }>
      }
      expect(result.ok).toBe(true)
      // The two other regions are up and equal (app and reader have closed).
      expect(
        result.peers
          .filter((p) => p.reachable && p.equal)
          .map((p) => p.peer)
          .sort(),
      ).toEqual(['ap-south', 'eu-west', 'us-east'].filter((p) => p !== id).sort())
    }
    const status = JSON.parse(
      ok('npx', ['--no-install', 'dru', 'status', '--json', '--config', 'cluster/eu-west.json'], project),
    )
    // The app's 20 writes, under its own origin, are held by eu-west.
    const byOrigin = Object.entries(status.fingerprint.vv as Record<string, number>)
    expect(byOrigin.filter(([origin]) => origin.startsWith('app/')).map(([, seq]) => seq)).toEqual([20])
  }, 300_000)
})
