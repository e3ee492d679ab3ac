import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { encodeEvent, pack } from '@dru/core'
import { afterEach, describe, expect, it } from 'vitest'
import { openDru, type Dru } from '../src/index.js'

// A first start SIGKILLed inside openDru's registration window, after its network stored
// events and before the application registered its handlers: the next start's window goes on
// from the first one, so a handler registered right after openDru is owed those events too.

const CHILD = fileURLToPath(new URL('./fixtures/window-crash-child.mjs', import.meta.url))
const cleanups: Array<() => unknown> = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

describe('the registration window across a SIGKILL', () => {
  it('a handler registered after the restart is owed what the killed first start stored', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dru-window-crash-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const src = await openDru({ id: 'src', path: ':memory:' })
    for (const [i, d] of ['x', 'y', 'x'].entries())
      await src.change(d, (doc: Record<string, unknown>) => void (doc.n = i))
    const events = [...src.store.eventsMissing({})].flat()
    await src.close()
    const eventsFile = join(dir, 'events.bin')
    writeFileSync(eventsFile, pack(events.map(encodeEvent)))
    const path = join(dir, 'b.db')

    const child = spawn(process.execPath, [CHILD], {
      env: { ...process.env, DB_PATH: path, EVENTS_FILE: eventsFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    cleanups.push(() => child.kill('SIGKILL'))
    let stderr = ''
    child.stderr!.on('data', (d) => (stderr += d))
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('FAILPOINT ')) child.kill('SIGKILL')
    })
    const signal = await new Promise((resolve) => child.on('exit', (_code, s) => resolve(s)))
    expect(signal, stderr).toBe('SIGKILL')

    let dru: Dru = await openDru({ id: 'b', path, inbox: { autoRetry: false } })
    cleanups.push(() => dru.close())
    expect(dru.store.count()).toBe(3)
    const seen: number[] = []
    dru.onEvent('reader', (e) => void seen.push(e.seq), { order: 'document' })
    dru.inbox.runDue()
    dru.inbox.runDue()
    expect(seen.sort()).toEqual([1, 2, 3])
    await new Promise((r) => setImmediate(r)) // the window is released, and forgotten
    await dru.close()
    dru = await openDru({ id: 'b', path, inbox: { autoRetry: false } })
    dru.onEvent('later', () => undefined)
    expect(dru.inbox.list({ state: 'all' })).toEqual([])
  }, 30_000)
})
