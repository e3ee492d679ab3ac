import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { EventStore, unsignedOrigins } from '@dru/store-sqlite'
import { generateKeys, parsePublicKey, verifyEventSignature } from '@dru/sync'
import { openDru } from '@dru/node'
import { afterAll, describe, expect, it } from 'vitest'

// A commit is stored unsigned and its tip signed soon after (deferred-signing.ts). A process
// killed between the two loses nothing: the next open sees the tail as this DRU's own unsigned
// history, signs its head with the DRU's key, and the log verifies throughout.

const CHILD = fileURLToPath(new URL('./fixtures/sign-crash-child.mjs', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'dru-sign-crash-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function runChild(
  env: Record<string, string>,
): Promise<{ line: string; signal: NodeJS.Signals | null; stderr: string }> {
  const child = spawn(process.execPath, [CHILD], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let stderr = ''
  child.stdout!.on('data', (d) => (out += d))
  child.stderr!.on('data', (d) => (stderr += d))
  return new Promise((resolve) => child.on('exit', (_code, signal) => resolve({ line: out.trim(), signal, stderr })))
}

describe('deferred signing across a crash', () => {
  it('a SIGKILL right after the commits loses nothing, and the next open signs the tail', async () => {
    const keys = generateKeys()
    const path = join(dir, 'a.db')
    const { line, signal, stderr } = await runChild({
      DB_PATH: path,
      PRIVATE_KEY: keys.privateKey,
      PUBLIC_KEY: keys.publicKey,
      COMMITS: '5',
    })
    expect(signal, stderr).toBe('SIGKILL')
    const [origin, seq, unsigned] = line.split(' ')
    // The child died with its tip still unsigned: the case under test.
    expect(unsigned).toBe('true')

    const peek = EventStore.open({ path, druId: 'a' })
    expect(peek.vv()[origin!]).toBe(Number(seq))
    expect(unsignedOrigins(peek)).toEqual([{ origin, druId: 'a', head: Number(seq) }])
    // Not yet signed is not corruption.
    expect(peek.verifyLog().events).toBe(peek.count())
    peek.close()

    const dru = await openDru({
      id: 'a',
      path,
      keys: { privateKey: keys.privateKey, publicKeys: { a: keys.publicKey } },
    })
    const head = dru.store.getEvent(origin!, Number(seq))!
    expect(head.sig).toBeDefined()
    expect(verifyEventSignature(head.hash, head.sig!, parsePublicKey(keys.publicKey))).toBe(true)
    expect(unsignedOrigins(dru.store)).toEqual([])
    expect(dru.get('doc-1')).toEqual({ n: 4 })
    await dru.close()
  })
})
