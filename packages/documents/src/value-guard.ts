import * as A from '@automerge/automerge'
import { DruError } from '@dru/core'

/** Deepest value a change may assign (a cyclic value is refused long before the stack ends). */
export const MAX_VALUE_DEPTH = 512

/** The list methods that store their arguments, and where those arguments start. */
const LIST_WRITERS: ReadonlyMap<PropertyKey, number> = new Map([
  ['push', 0],
  ['unshift', 0],
  ['insertAt', 1],
  ['splice', 2],
  ['fill', 0],
])

const OWN_OBJECT = Symbol('dru.guarded')

const BUILT_INS: ReadonlyArray<abstract new (...args: never[]) => object> = [Map, Set, WeakMap, WeakSet, RegExp, Error, Promise, ArrayBuffer, SharedArrayBuffer, WeakRef]

/**
 * Wraps the document a change function receives, so every value assigned to a field or
 * inserted into a list is checked first ({@link assertStorable}). Automerge refuses some bad
 * values itself but stores others silently changed: a function or a Map pushed into a list
 * becomes `{}`, NaN reads back as null. The check throws inside the change, so Automerge
 * rolls it back and nothing is committed.
 */
export function guardDocument<T extends object>(doc: T): T {
  return wrap(doc, '')
}

function wrap<T extends object>(target: T, path: string): T {
  return Array.isArray(target) ? wrapList(target, path) : wrapMap(target, path)
}

function wrapMap<T extends object>(target: T, path: string): T {
  return new Proxy(target, {
    get(t, key) {
      if (key === OWN_OBJECT) return t
      return guardedChild(Reflect.get(t, key), `${path}/${String(key)}`)
    },
    set(t, key, value: unknown) {
      assertStorable(value, `${path}/${String(key)}`)
      return Reflect.set(t, key, unwrap(value))
    },
  })
}

/**
 * Lists are wrapped around a stand-in array, not Automerge's list itself: a proxy's `get`
 * trap makes the engine check invariants against its target's own properties, and asking
 * Automerge's list for the descriptor of `push` fails. Every trap reads the real list.
 */
function wrapList<T extends object>(list: T, path: string): T {
  const real = list as unknown as unknown[]
  return new Proxy([] as unknown as T, {
    get(_, key) {
      if (key === OWN_OBJECT) return list
      const value: unknown = Reflect.get(real, key)
      const from = typeof value === 'function' ? LIST_WRITERS.get(key) : undefined
      if (from === undefined) return typeof value === 'function' ? value : guardedChild(value, `${path}/${String(key)}`)
      return (...args: unknown[]) => {
        for (let i = from; i < args.length; i++) assertStorable(args[i], `${path}/${String(key)}()`)
        return (value as (...a: unknown[]) => unknown).apply(real, args.map(unwrap))
      }
    },
    set(_, key, value: unknown) {
      assertStorable(value, `${path}/${String(key)}`)
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
}

/** Nested maps and lists come back guarded; counters, dates, bytes and scalars as they are. */
function guardedChild(value: unknown, path: string): unknown {
  return value !== null && typeof value === 'object' && A.getObjectId(value) != null ? wrap(value, path) : value
}

/** A guarded proxy handed back to Automerge (e.g. `d.a = d.b`) must be Automerge's own object. */
function unwrap(value: unknown): unknown {
  return value !== null && typeof value === 'object' ? ((value as Record<symbol, unknown>)[OWN_OBJECT] ?? value) : value
}

/**
 * Throws INVALID_VALUE unless `value` is something a document stores and reads back as
 * written: null, booleans, strings, finite numbers, plain objects and arrays of those,
 * dates, byte arrays, counters and Automerge's own objects.
 */
export function assertStorable(value: unknown, path: string): void {
  check(value, path, 0, [])
}

function check(value: unknown, path: string, depth: number, ancestors: object[]): void {
  const refuse = (what: string): never => {
    throw new DruError('INVALID_VALUE', `${what} at ${path || '/'} cannot be stored in a document`, { details: { path: path || '/' } })
  }
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return
    case 'number':
      if (!Number.isFinite(value)) refuse(`${value} (not a JSON number)`)
      return
    case 'bigint':
      if (value < -(2n ** 63n) || value >= 2n ** 63n) refuse('a bigint outside 64 bits')
      return
    case 'undefined':
      return refuse('undefined (use null, or delete the field)')
    case 'function':
    case 'symbol':
      return refuse(`a ${typeof value}`)
  }
  if (value === null || value instanceof Date || value instanceof Uint8Array || value instanceof A.Counter || A.isImmutableString(value)) return
  const obj = value as object
  if (A.getObjectId(obj) != null || (obj as Record<symbol, unknown>)[OWN_OBJECT] !== undefined) return
  if (depth >= MAX_VALUE_DEPTH) refuse(`a value nested deeper than ${MAX_VALUE_DEPTH} levels`)
  if (ancestors.includes(obj)) refuse('a cyclic value')
  if (Array.isArray(obj)) {
    ancestors.push(obj)
    for (let i = 0; i < obj.length; i++) {
      if (!(i in obj)) refuse(`a hole in an array (index ${i})`)
      check(obj[i], `${path}/${i}`, depth + 1, ancestors)
    }
    ancestors.pop()
    return
  }
  // Their contents are not own enumerable fields: Automerge would store `{}` or refuse late.
  if (BUILT_INS.some((type) => obj instanceof type) || ArrayBuffer.isView(obj)) {
    refuse(`a ${obj.constructor?.name ?? 'built-in'} (store plain objects, arrays, dates or Uint8Array bytes)`)
  }
  ancestors.push(obj)
  for (const [k, v] of Object.entries(obj)) check(v, `${path}/${k}`, depth + 1, ancestors)
  ancestors.pop()
}
