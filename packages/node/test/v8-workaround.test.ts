import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { needsV8Workaround } from '@dru/node'
import { describe, expect, it } from 'vitest'

// V8 11.3 (Node 20) aborts the process when optimized code that inlined a call to a Wasm
// export returning externref is deoptimized lazily during that call; Automerge's exports
// return externrefs. Importing @dru/node sets --no-turbo-inline-js-wasm-calls on such V8s.
// The child is the deterministic shape of the crash (it crashes every run without the flag).

const CHILD = fileURLToPath(new URL('./fixtures/wasm-lazy-deopt-child.mjs', import.meta.url))

function runChild(env: Record<string, string>): { status: number | null; signal: string | null; stdout: string } {
  const out = spawnSync(process.execPath, [CHILD], { env: { ...process.env, ...env }, encoding: 'utf8' })
  return { status: out.status, signal: out.signal, stdout: out.stdout }
}

describe('V8 workaround', () => {
  it('applies to V8 majors up to 12 and not after, unless DRU_NO_V8_WORKAROUND=1', () => {
    expect(needsV8Workaround('11.3.244.8-node.38')).toBe(true)
    expect(needsV8Workaround('12.4.254.21-node.33')).toBe(true)
    expect(needsV8Workaround('13.6.233.10-node.27')).toBe(false)
    expect(needsV8Workaround('not a version')).toBe(false)
    expect(needsV8Workaround('11.3.244.8-node.38', { DRU_NO_V8_WORKAROUND: '1' })).toBe(false)
  })

  it('a process that imported @dru/node survives a lazy deopt inside an inlined externref Wasm call', () => {
    expect(runChild({ IMPORT_DRU: '1' })).toMatchObject({ status: 0, stdout: expect.stringContaining('survived') })
  })

  // The control: without the flag this V8 really crashes, so the test above is not vacuous.
  it.runIf(process.versions.v8.startsWith('11.'))('without the workaround the same child crashes on V8 11', () => {
    expect(runChild({ IMPORT_DRU: '1', DRU_NO_V8_WORKAROUND: '1' }).signal).toBe('SIGTRAP')
  })
})
