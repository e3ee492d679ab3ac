import { DruError } from '@dru/core'
import type { SimNetwork } from './sim-network.js'

/**
 * Named link layouts for a {@link SimNetwork}: which pairs of DRUs are connected. Forwarding
 * is judged on them: a full mesh (every event can arrive directly and again forwarded), a
 * line (everything must pass through the middle), and regions (a hub per region, the hubs
 * meshed, each region meshed inside).
 */
export interface Topology {
  readonly name: string
  readonly size: number
  /** Connected pairs, each once, lower index first. */
  readonly links: ReadonlyArray<readonly [number, number]>
}

/** Every pair of `size` DRUs connected. */
export function fullMesh(size: number): Topology {
  const links: Array<[number, number]> = []
  for (let a = 0; a < size; a++) for (let b = a + 1; b < size; b++) links.push([a, b])
  return { name: `full mesh of ${size}`, size, links }
}

/** DRU i connected to i + 1 only: 0 – 1 – … – size-1. */
export function line(size: number): Topology {
  return { name: `line of ${size}`, size, links: Array.from({ length: size - 1 }, (_, i) => [i, i + 1] as const) }
}

/**
 * `regions` regions of `perRegion` DRUs each: each region a full mesh, its first DRU the
 * hub, and the hubs a full mesh. DRU `r * perRegion` is region r's hub.
 */
export function regions(regionCount: number, perRegion: number): Topology {
  const links: Array<[number, number]> = []
  for (let r = 0; r < regionCount; r++) {
    for (let a = 0; a < perRegion; a++)
      for (let b = a + 1; b < perRegion; b++) links.push([r * perRegion + a, r * perRegion + b])
  }
  for (let r = 0; r < regionCount; r++)
    for (let s = r + 1; s < regionCount; s++) links.push([r * perRegion, s * perRegion])
  return {
    name: `${regionCount} regions of ${perRegion} (hub per region, hubs meshed)`,
    size: regionCount * perRegion,
    links,
  }
}

/** Brings up exactly the topology's links on `net` and cuts every other pair. */
export function applyTopology(net: SimNetwork, topology: Topology): void {
  if (net.size !== topology.size)
    throw new DruError('INVALID_ARGUMENT', `${topology.name} needs ${topology.size} DRUs, the network has ${net.size}`)
  net.partition([])
  for (const [a, b] of topology.links) net.heal(a, b)
}
