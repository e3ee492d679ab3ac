import * as A from '@automerge/automerge'
import { DruError } from '@dru/core'

/**
 * Deepest nesting a document may reach through a change (the field's own depth plus the
 * value's). Automerge's WASM module aborts for the whole process on values about 2,000
 * levels deep and on loading documents about 10,000 deep; a cyclic value is refused here
 * long before the stack ends.
 */
export const MAX_VALUE_DEPTH = 256

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/** The list methods that store their arguments, and where those arguments start. */
const LIST_WRITERS: ReadonlyMap<PropertyKey, number> = new Map([
  ['push', 0],
  ['unshift', 0],
  ['insertAt', 1],
  ['splice', 2],
  ['fill', 0],
])

const OWN_OBJECT = Symbol('dru.guarded')

const BUILT_INS: ReadonlyArray<abstract new (...args: never[]) => object> = [
  Map,
  Set,
  WeakMap,
  WeakSet,
  RegExp,
  Error,
  Promise,
  ArrayBuffer,
  SharedArrayBuffer,
  WeakRef,
]

/**
 * Wraps the document a change function receives, so every value assigned to a field or
 * inserted into a list is checked first ({@link assertStorable}). Automerge refuses some bad
 * values itself but stores others silently changed: a function or a Map pushed into a list
 * becomes `{}`, NaN reads back as null, 2^60 comes back as a BigInt. The check throws inside
 * the change, so Automerge rolls it back and nothing is committed. `revoke` makes every
 * proxy handed out unusable: a reference kept past the change (an async continuation, a
 * closure) cannot slip writes into a later change.
 */
export function guardDocument<T extends object>(doc: T): { doc: T; revoke: () => void } {
  const revokes: Array<() => void> = []
  return {
    doc: wrap(doc, '', 0, revokes),
    revoke: () => {
      for (const r of revokes.splice(0)) r()
    },
  }
}

type Revokes = Array<() => void>

function wrap<T extends object>(target: T, path: string, depth: number, revokes: Revokes): T {
  return Array.isArray(target) ? wrapList(target, path, depth, revokes) : wrapMap(target, path, depth, revokes)
}

function wrapMap<T extends object>(target: T, path: string, depth: number, revokes: Revokes): T {
  const { proxy, revoke } = Proxy.revocable(target, {
    get(t, key) {
      if (key === OWN_OBJECT) return t
      return guardedChild(Reflect.get(t, key), `${path}/${String(key)}`, depth + 1, revokes)
    },
    set(t, key, value: unknown) {
      // Symbol keys are Automerge's own bookkeeping (never stored as fields): passed through.
      if (typeof key === 'symbol') return Reflect.set(t, key, value)
      checkKey(key, path)
      check(value, `${path}/${String(key)}`, depth + 1, [])
      return Reflect.set(t, key, unwrap(value))
    },
  })
  revokes.push(revoke)
  return proxy
}

/**
 * Lists are wrapped around a stand-in array, not Automerge's list itself: a proxy's `get`
 * trap makes the engine check invariants against its target's own properties, and asking
 * Automerge's list for the descriptor of `push` fails. Every trap reads the real list.
 */
function wrapList<T extends object>(list: T, path: string, depth: number, revokes: Revokes): T {
  const real = list as unknown as unknown[]
  const { proxy, revoke } = Proxy.revocable([] as unknown as T, {
    get(_, key) {
      if (key === OWN_OBJECT) return list
      const value: unknown = Reflect.get(real, key)
      const from = typeof value === 'function' ? LIST_WRITERS.get(key) : undefined
      if (from === undefined)
        return typeof value === 'function' ? value : guardedChild(value, `${path}/${String(key)}`, depth + 1, revokes)
      return (...args: unknown[]) => {
        for (let i = from; i < args.length; i++) check(args[i], `${path}/${String(key)}()`, depth + 1, [])
        return (value as (...a: unknown[]) => unknown).apply(real, args.map(unwrap))
      }
    },
    set(_, key, value: unknown) {
      check(value, `${path}/${String(key)}`, depth + 1, [])
      return Reflect.set(real, key, unwrap(value))
    },
    has: (_, key) => Reflect.has(real, key),
    deleteProperty: (_, key) => Reflect.deleteProperty(real, key),
    ownKeys: () => {
      const keys = Reflect.ownKeys(real)
      return keys.includes('length') ? keys : [...keys, 'length']
    },
    getOwnPropertyDescriptor(stand, key) {
      // The stand-in's own `length` is non-configurable: report it as such, with the real value.
      if (key === 'length') return { value: real.length, writable: true, enumerable: false, configurable: false }
      const d = Reflect.getOwnPropertyDescriptor(real, key)
      return d && { ...d, configurable: true }
    },
  })
  revokes.push(revoke)
  return proxy
}

/** Nested maps and lists come back guarded; counters, dates, bytes and scalars as they are. */
function guardedChild(value: unknown, path: string, depth: number, revokes: Revokes): unknown {
  return value !== null && typeof value === 'object' && A.getObjectId(value) != null
    ? wrap(value, path, depth, revokes)
    : value
}

/** A guarded proxy handed back to Automerge (e.g. `d.a = d.b`) must be Automerge's own object. */
function unwrap(value: unknown): unknown {
  return value !== null && typeof value === 'object' ? ((value as Record<symbol, unknown>)[OWN_OBJECT] ?? value) : value
}

/**
 * Throws INVALID_VALUE unless `value` is something a document stores and reads back as
 * written: null, booleans, well-formed strings, finite numbers (integers within ±2^53),
 * 64-bit bigints, plain objects and arrays of those, valid dates, byte arrays, counters
 * and Automerge's own objects, nested at most {@link MAX_VALUE_DEPTH} deep.
 */
export function assertStorable(value: unknown, path: string): void {
  check(value, path, 1, [])
}

function refuse(what: string, path: string): never {
  throw new DruError('INVALID_VALUE', `${what} at ${path || '/'} cannot be stored in a document`, {
    details: { path: path || '/' },
  })
}

function checkKey(key: string, path: string): void {
  if (key === '__proto__') refuse('the key "__proto__"', path)
  if (LONE_SURROGATE.test(key)) refuse(`a key with a lone surrogate (${JSON.stringify(key.slice(0, 40))})`, path)
}

function check(value: unknown, path: string, depth: number, ancestors: object[]): void {
  switch (typeof value) {
    case 'string':
      if (LONE_SURROGATE.test(value)) refuse('a string with a lone surrogate (it would read back as U+FFFD)', path)
      return
    case 'boolean':
      return
    case 'number':
      if (!Number.isFinite(value)) refuse(`${value} (not a JSON number)`, path)
      if (Number.isInteger(value) && !Number.isSafeInteger(value))
        refuse(
          `the integer ${value} (beyond ±2^53 it would not read back as written; store a string or a bigint)`,
          path,
        )
      return
    case 'bigint':
      if (value < -(2n ** 63n) || value >= 2n ** 63n) refuse('a bigint outside 64 bits', path)
      return
    case 'undefined':
      return refuse('undefined (use null, or delete the field)', path)
    case 'function':
    case 'symbol':
      return refuse(`a ${typeof value}`, path)
  }
  if (value === null || value instanceof Uint8Array || A.isImmutableString(value)) return
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) refuse('an invalid Date', path)
    return
  }
  if (value instanceof A.Counter) {
    if (!Number.isSafeInteger(value.value)) refuse(`a counter of ${value.value} (counters hold integers)`, path)
    return
  }
  const obj = value as object
  if ((obj as Record<symbol, unknown>)[OWN_OBJECT] !== undefined || A.getObjectId(obj) != null) {
    refuse('an object already in the document (copy it: { ...value })', path)
  }
  if (depth > MAX_VALUE_DEPTH) refuse(`a value nested deeper than ${MAX_VALUE_DEPTH} levels`, path)
  if (ancestors.includes(obj)) refuse('a cyclic value', path)
  if (Array.isArray(obj)) {
    ancestors.push(obj)
    for (let i = 0; i < obj.length; i++) {
      if (!(i in obj)) refuse(`a hole in an array (index ${i})`, path)
      check(obj[i], `${path}/${i}`, depth + 1, ancestors)
    }
    ancestors.pop()
    return
  }
  // Their contents are not own enumerable fields: Automerge would store `{}` or refuse late.
  if (BUILT_INS.some((type) => obj instanceof type) || ArrayBuffer.isView(obj)) {
    refuse(`a ${obj.constructor?.name ?? 'built-in'} (store plain objects, arrays, dates or Uint8Array bytes)`, path)
  }
  if (Object.getPrototypeOf(obj) === null)
    refuse('an object without a prototype (Object.create(null); spread it into {})', path)
  if (Object.getOwnPropertySymbols(obj).length > 0) refuse('an object with symbol keys (they would be dropped)', path)
  ancestors.push(obj)
  for (const [k, v] of Object.entries(obj)) {
    checkKey(k, path)
    check(v, `${path}/${k}`, depth + 1, ancestors)
  }
  ancestors.pop()
}
