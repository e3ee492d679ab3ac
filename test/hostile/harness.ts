import { readFileSync } from 'node:fs'
import { expect } from 'vitest'
import { Cluster, scanForForks, sleep } from '../procedures/cluster.js'

/**
 * What every hostile case must leave true, checked around it: tokens written on every DRU
 * before and after the case are readable on every DRU (nothing lost, honest replication
 * continued), and at the end no (origin, seq) has two contents in any database file.
 */
export class Ledger {
  readonly #c: Cluster
  readonly #tokens: Array<{ doc: string; token: string }> = []
  #n = 0

  constructor(c: Cluster) {
    this.#c = c
  }

  get count(): number {
    return this.#tokens.length
  }

  /** Writes one token on `unit` (a unit name of the cluster); retries while it refuses writes for now (503). */
  async write(unit: string, tag: string): Promise<{ origin: string; seq: number }> {
    const doc = `tok-${unit}-${tag}-${this.#n++}`.replace(/[^\w.-]/g, '_')
    const token = `${doc}:${Math.random().toString(36).slice(2)}`
    const end = Date.now() + 15_000
    for (;;) {
      const w = await this.#c.write(unit, doc, { token })
      if (w.status === 200) {
        this.#tokens.push({ doc, token })
        return w.body.event as { origin: string; seq: number }
      }
      // Restoring (NOT_WRITABLE) is the one refusal a case may leave behind for a while.
      if (w.status !== 503 || Date.now() > end)
        throw new Error(`token write on ${unit} answered ${w.status} ${JSON.stringify(w.body)}`)
      await sleep(50)
    }
  }

  /** A token on each of `units`. */
  async writeAll(units: string[], tag: string): Promise<void> {
    for (const u of units) await this.write(u, tag)
  }

  /** Every token written so far is readable on every one of `units` (waits for replication). */
  async everywhere(units: string[], ms = 20_000): Promise<void> {
    let missing: string[] = []
    await this.#c
      .waitFor(
        `${this.#tokens.length} tokens on ${units.join(', ')}`,
        async () => {
          missing = []
          for (const u of units) {
            for (const t of this.#tokens) {
              const got = (await this.#c.read(u, t.doc)) as { token?: string } | null
              if (got?.token !== t.token) missing.push(`${t.doc}@${u}`)
            }
            if (missing.length > 0) return false
          }
          return true
        },
        ms,
        100,
      )
      .catch((err: Error) => {
        throw new Error(`${err.message}; missing: ${missing.slice(0, 10).join(', ')}`)
      })
  }

  /**
   * Runs one hostile case between two rounds of tokens: written on every unit before and
   * after, all of them everywhere once it is over.
   */
  async around(units: string[], name: string, run: () => Promise<void>): Promise<void> {
    await this.writeAll(units, `${name}-before`)
    try {
      await run()
    } catch (err) {
      throw new Error(`case "${name}": ${(err as Error).message}`, { cause: err })
    }
    await this.writeAll(units, `${name}-after`)
    await this.everywhere(units)
  }
}

/**
 * Stops every unit cleanly and scans every database file in `paths`: no (origin, seq) with
 * two contents anywhere, and the files in `converged` (default: all) hold one set of events.
 */
export async function assertNoFork(c: Cluster, paths: string[], converged: string[] = paths): Promise<void> {
  for (const id of c.units.keys()) await c.kill(id, 'SIGTERM')
  const { forks, events } = scanForForks(paths)
  expect(forks).toEqual([])
  expect(new Set(converged.map((p) => [...(events.get(p)?.keys() ?? [])].sort().join(','))).size).toBe(1)
}

/** Resident memory of a process (Linux /proc), in bytes. */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!m) throw new Error(`no VmRSS for ${pid}`)
  return Number(m[1]) * 1024
}

/** A counter from a DRU's /metrics (summed over label sets matching `labels`). */
export async function metric(c: Cluster, unit: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${c.unit(unit).adminUrl}/metrics`)).text()
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const m = /^(\w+)(\{[^}]*\})? (\S+)$/.exec(line)
    if (m && m[1] === name && (m[2] ?? '').includes(labels)) sum += Number(m[3])
  }
  return sum
}
