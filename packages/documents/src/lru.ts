/** Limits of the document cache; either or both may be set. */
export interface CacheLimits {
  /** At most this many documents held in memory. */
  maxDocs?: number
  /** At most about this many bytes (estimated from change and snapshot sizes). */
  maxBytes?: number
}

/**
 * A least-recently-used map bounded by entry count and by an estimated byte size. Map
 * iteration order is insertion order, so re-inserting on access keeps the oldest first.
 */
export class Lru<V> {
  readonly #map = new Map<string, { value: V; bytes: number }>()
  #bytes = 0
  readonly maxDocs: number
  readonly maxBytes: number

  constructor(limits: CacheLimits = {}) {
    this.maxDocs = limits.maxDocs ?? Number.POSITIVE_INFINITY
    this.maxBytes = limits.maxBytes ?? Number.POSITIVE_INFINITY
  }

  get size(): number {
    return this.#map.size
  }

  get bytes(): number {
    return this.#bytes
  }

  has(key: string): boolean {
    return this.#map.has(key)
  }

  /** Reads and marks as most recently used. */
  get(key: string): V | undefined {
    const e = this.#map.get(key)
    if (!e) return undefined
    this.#map.delete(key)
    this.#map.set(key, e)
    return e.value
  }

  /** Reads without touching recency. */
  peek(key: string): V | undefined {
    return this.#map.get(key)?.value
  }

  /** Inserts or replaces; returns the entries pushed out to respect the limits (never `key` itself). */
  set(key: string, value: V, bytes: number): Array<[string, V]> {
    const old = this.#map.get(key)
    if (old) {
      this.#bytes -= old.bytes
      this.#map.delete(key)
    }
    this.#map.set(key, { value, bytes })
    this.#bytes += bytes
    const evicted: Array<[string, V]> = []
    for (const [k, e] of this.#map) {
      if (this.#map.size <= this.maxDocs && this.#bytes <= this.maxBytes) break
      if (k === key) continue
      this.#map.delete(k)
      this.#bytes -= e.bytes
      evicted.push([k, e.value])
    }
    return evicted
  }

  /** Updates an entry's size without changing recency. */
  resize(key: string, bytes: number): void {
    const e = this.#map.get(key)
    if (!e) return
    this.#bytes += bytes - e.bytes
    e.bytes = bytes
  }

  delete(key: string): V | undefined {
    const e = this.#map.get(key)
    if (!e) return undefined
    this.#map.delete(key)
    this.#bytes -= e.bytes
    return e.value
  }

  keys(): IterableIterator<string> {
    return this.#map.keys()
  }

  entries(): Array<[string, V]> {
    return [...this.#map].map(([k, e]) => [k, e.value])
  }

  clear(): void {
    this.#map.clear()
    this.#bytes = 0
  }
}
