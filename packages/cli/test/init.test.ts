import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { isDruError } from '@dru/core'
import { openDru, resolveConfig } from '@dru/node'
import { runCli, type CliContext } from '../src/index.js'
import { loadConfig } from '../src/config.js'

/** runCli in-process with captured output and the real node runtime. */
function harness(cwd: string) {
  const out: string[] = []
  const err: string[] = []
  const ctx: CliContext = {
    stdout: (s) => out.push(s),
    stderr: (s) => err.push(s),
    env: {},
    cwd,
    now: () => 0,
    loadRuntime: async () => ({ openDru: openDru as never, validateConfig: resolveConfig }),
    waitForShutdown: () => new Promise(() => undefined),
  }
  return { ctx, out, err, run: (args: string[]) => runCli(args, ctx) }
}

const MEMBERS = ['us-east=127.0.0.1:7301', 'eu-west=127.0.0.1:7302', 'ap-south=127.0.0.1:7303']
const modeOf = (path: string) => statSync(path).mode & 0o777

describe('dru init', () => {
  const dirs: string[] = []
  const temp = () => {
    const d = mkdtempSync(join(tmpdir(), 'dru-init-'))
    dirs.push(d)
    return d
  }
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  })

  it('writes a config and a key pair per DRU, the secret and the admin token; secrets 0600; prints what to copy where and how to start', async () => {
    const cwd = temp()
    const h = harness(cwd)
    expect(await h.run(['init', ...MEMBERS])).toBe(0)
    const dir = join(cwd, 'cluster')
    expect(readdirSync(dir).sort()).toEqual([
      'admin-token',
      'ap-south.json',
      'data',
      'eu-west.json',
      'keys',
      'secret',
      'us-east.json',
    ])
    expect(readdirSync(join(dir, 'keys')).sort()).toEqual([
      'ap-south.key',
      'ap-south.pub',
      'eu-west.key',
      'eu-west.pub',
      'us-east.key',
      'us-east.pub',
    ])
    for (const f of ['secret', 'admin-token', 'keys/us-east.key', 'keys/eu-west.key', 'keys/ap-south.key'])
      expect(modeOf(join(dir, f)), f).toBe(0o600)
    for (const f of ['us-east.json', 'keys/us-east.pub']) expect(modeOf(join(dir, f)), f).toBe(0o644)
    expect(modeOf(join(dir, 'data'))).toBe(0o700)
    // Distinct keys and strong secrets.
    const keys = ['us-east', 'eu-west', 'ap-south'].map((id) => readFileSync(join(dir, `keys/${id}.key`), 'utf8'))
    expect(new Set(keys).size).toBe(3)
    expect(readFileSync(join(dir, 'secret'), 'utf8').trim().length).toBeGreaterThanOrEqual(32)
    expect(readFileSync(join(dir, 'admin-token'), 'utf8').trim()).not.toBe(
      readFileSync(join(dir, 'secret'), 'utf8').trim(),
    )
    // No secret inside a config: configs name files.
    const eu = JSON.parse(readFileSync(join(dir, 'eu-west.json'), 'utf8'))
    expect(eu).toEqual({
      id: 'eu-west',
      path: './data/eu-west.db',
      listen: { host: '127.0.0.1', port: 7302 },
      admin: { host: '127.0.0.1', port: 7402, tokenFile: './admin-token' },
      peers: [
        { id: 'us-east', url: 'ws://127.0.0.1:7301' },
        { id: 'ap-south', url: 'ws://127.0.0.1:7303' },
      ],
      secretFile: './secret',
      keys: { privateKeyFile: './keys/eu-west.key', publicKeysDir: './keys' },
    })
    const text = h.out.join('')
    expect(text).toContain('0600  keys/eu-west.key   (secret)')
    expect(text).toContain(
      'eu-west: eu-west.json secret admin-token keys/eu-west.key keys/us-east.pub keys/eu-west.pub keys/ap-south.pub',
    )
    expect(text).not.toMatch(/eu-west: .*us-east\.key/) // never another DRU's private key
    expect(text).toContain('start ap-south:  dru start --config cluster/ap-south.json')
  })

  it('each generated config passes exactly the check dru start runs, and resolves to inline keys and secret', async () => {
    const cwd = temp()
    const h = harness(cwd)
    expect(await h.run(['init', '--dir', 'c', ...MEMBERS])).toBe(0)
    for (const id of ['us-east', 'eu-west', 'ap-south']) {
      expect(await h.run(['start', '--config', `c/${id}.json`, '--check']), h.err.join('')).toBe(0)
      const resolved = resolveConfig(loadConfig(`c/${id}.json`, cwd))
      expect(Object.keys(resolved.keys!.publicKeys).sort()).toEqual(['ap-south', 'eu-west', 'us-east'])
      expect(resolved.keys!.privateKey).toContain('PRIVATE KEY')
      expect(resolved.secret).toBe(readFileSync(join(cwd, 'c/secret'), 'utf8').trim())
      expect(resolved.admin!.token).toBe(readFileSync(join(cwd, 'c/admin-token'), 'utf8').trim())
    }
    expect(h.out.join('')).toContain(`config OK: eu-west at ${join(cwd, 'c/data/eu-west.db')}`)
  })

  it('never overwrites without --force, and writes nothing when it refuses; --force replaces and restores the modes', async () => {
    const cwd = temp()
    const h = harness(cwd)
    expect(await h.run(['init', ...MEMBERS])).toBe(0)
    const secret = readFileSync(join(cwd, 'cluster/secret'), 'utf8')
    const key = readFileSync(join(cwd, 'cluster/keys/us-east.key'), 'utf8')
    // A second init naming a new member too: refused as a whole, not half-written.
    expect(await h.run(['init', ...MEMBERS, 'sa-east=127.0.0.1:7304'])).toBe(7)
    expect(h.err.join('')).toMatch(/refusing to overwrite \d+ existing file\(s\).*--force/)
    expect(readdirSync(join(cwd, 'cluster')).includes('sa-east.json')).toBe(false)
    expect(readFileSync(join(cwd, 'cluster/secret'), 'utf8')).toBe(secret)
    chmodSync(join(cwd, 'cluster/secret'), 0o644)
    expect(await h.run(['init', '--force', ...MEMBERS])).toBe(0)
    expect(readFileSync(join(cwd, 'cluster/secret'), 'utf8')).not.toBe(secret)
    expect(readFileSync(join(cwd, 'cluster/keys/us-east.key'), 'utf8')).not.toBe(key)
    expect(modeOf(join(cwd, 'cluster/secret'))).toBe(0o600)
  })

  it('refuses bad member lists with a usage error', async () => {
    const cwd = temp()
    const h = harness(cwd)
    const cases: Array<[string[], RegExp]> = [
      [['init'], /missing required argument|members/],
      [['init', 'us-east'], /expected ID=HOST:PORT/],
      [['init', 'us-east=127.0.0.1'], /expected ID=HOST:PORT/],
      [['init', 'us-east=127.0.0.1:99999'], /expected ID=HOST:PORT/],
      [['init', 'bad id=127.0.0.1:7301'], /not a DRU id/],
      [['init', 'a=127.0.0.1:7301', 'a=127.0.0.1:7302'], /given twice/],
      [['init', 'a=127.0.0.1:7301', 'b=127.0.0.1:7301'], /given to two DRUs/],
      [['init', '--admin-base-port', 'x', 'a=127.0.0.1:7301'], /--admin-base-port/],
    ]
    for (const [args, message] of cases) {
      h.err.length = 0
      expect(await h.run(args), args.join(' ')).toBe(2)
      expect(h.err.join(''), args.join(' ')).toMatch(message)
    }
    expect(readdirSync(cwd)).toEqual([])
  })

  it('IPv6 addresses and an admin base port', async () => {
    const cwd = temp()
    const h = harness(cwd)
    expect(await h.run(['init', '--json', '--admin-base-port', '9000', 'a=[::1]:7301', 'b=[::1]:7302'])).toBe(0)
    const result = JSON.parse(h.out.join(''))
    expect(result.members).toEqual([
      { id: 'a', host: '::1', port: 7301 },
      { id: 'b', host: '::1', port: 7302 },
    ])
    const b = JSON.parse(readFileSync(join(cwd, 'cluster/b.json'), 'utf8'))
    expect(b.peers).toEqual([{ id: 'a', url: 'ws://[::1]:7301' }])
    expect(b.admin.port).toBe(9001)
  })
})

describe('configs that name files (checked as dru start checks them)', () => {
  const dirs: string[] = []
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  })

  it('a missing, open, empty or wrong file is CONFIG_INVALID naming the field, and start --check exits 3', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'dru-files-'))
    dirs.push(cwd)
    const h = harness(cwd)
    expect(await h.run(['init', ...MEMBERS])).toBe(0)
    const config = () => loadConfig('cluster/us-east.json', cwd)
    const fieldOf = (f: () => unknown) => {
      try {
        f()
      } catch (err) {
        if (isDruError(err, 'CONFIG_INVALID')) return `${(err.details as { field: string }).field}: ${err.message}`
        throw err
      }
      return 'passed'
    }
    const file = (p: string) => join(cwd, 'cluster', p)
    chmodSync(file('keys/us-east.key'), 0o640)
    expect(fieldOf(() => resolveConfig(config()))).toMatch(
      /^keys: .*privateKeyFile .* open to group or others \(mode 640\)/,
    )
    chmodSync(file('keys/us-east.key'), 0o600)
    rmSync(file('keys/ap-south.pub'))
    expect(fieldOf(() => resolveConfig(config()))).toMatch(/^keys: .*no key for peer ap-south/)
    writeFileSync(file('keys/ap-south.pub'), 'not a key')
    expect(fieldOf(() => resolveConfig(config()))).toMatch(
      /^keys: .*ap-south.pub.* does not hold a PEM \(SPKI\) public key/,
    )
    rmSync(file('keys/ap-south.pub'))
    writeFileSync(file('keys/bad name.pub'), 'x')
    expect(fieldOf(() => resolveConfig(config()))).toMatch(/^keys: .*not a DRU id/)
    rmSync(file('keys/bad name.pub'))
    writeFileSync(file('secret'), 'short\n', { mode: 0o600 })
    expect(
      fieldOf(() =>
        resolveConfig({
          ...config(),
          keys: { privateKeyFile: file('keys/us-east.key'), publicKeysDir: file('keys') },
          peers: [],
        }),
      ),
    ).toMatch(/^secretFile: .*fewer than 16 characters/)
    rmSync(file('secret'))
    expect(fieldOf(() => resolveConfig(config()))).toMatch(/^secretFile: .*cannot be read: ENOENT/)
    expect(fieldOf(() => resolveConfig({ ...config(), secret: 'x'.repeat(16), secretFile: 'y' }))).toMatch(
      /^secretFile: .*both set/,
    )
    expect(
      fieldOf(() =>
        resolveConfig({ ...config(), keys: { privateKeyFile: 'k', privateKey: 'PRIVATE KEY', publicKeysDir: 'd' } }),
      ),
    ).toMatch(/^keys: .*exactly one/)
    h.err.length = 0
    expect(await h.run(['start', '--config', 'cluster/us-east.json', '--check'])).toBe(3)
    expect(h.err.join('')).toMatch(/cluster\/us-east.json: config field "secretFile"/)
  })
})
