import { setFlagsFromString } from 'node:v8'

/**
 * The V8 flag that keeps TurboFan from inlining JS-to-Wasm calls. V8 before the 2024 fix
 * (Node 20 ships V8 11.3) aborts the whole process with "Fatal error ... unreachable code"
 * in `Deoptimizer::DoComputeBuiltinContinuation` when optimized code that inlined a call to
 * a Wasm export returning `externref` is deoptimized lazily while that call runs: the
 * deoptimizer knows how to rebuild an i32/i64/f32/f64 result, not a reference. Automerge's
 * wasm-bindgen exports return `externref`s (applyAndReturnPatches, getHeads, ...), so a
 * busy Automerge loop hits it by chance (benchmarks/v8-crash-repro.mjs measures it).
 */
export const V8_WORKAROUND_FLAG = '--no-turbo-inline-js-wasm-calls'

/** V8 majors that lack the deoptimizer fix (the regression test landed in V8 during 2024). */
const LAST_AFFECTED_V8_MAJOR = 12

/** Whether `v8Version` (as in `process.versions.v8`) needs {@link V8_WORKAROUND_FLAG}. */
export function needsV8Workaround(v8Version: string, env: NodeJS.ProcessEnv = {}): boolean {
  if (env.DRU_NO_V8_WORKAROUND === '1') return false
  const major = Number.parseInt(v8Version, 10)
  return Number.isInteger(major) && major <= LAST_AFFECTED_V8_MAJOR
}

/**
 * Sets the flag for this process when its V8 needs it. The flag is read when TurboFan starts
 * each optimization, so setting it while modules load, before any code is hot, covers all
 * of them. Returns whether it was set. `DRU_NO_V8_WORKAROUND=1` leaves V8 as it is (to
 * measure the crash).
 */
export function applyV8Workaround(
  v8Version: string = process.versions.v8,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  if (!needsV8Workaround(v8Version, env)) return false
  setFlagsFromString(V8_WORKAROUND_FLAG)
  return true
}

applyV8Workaround()
