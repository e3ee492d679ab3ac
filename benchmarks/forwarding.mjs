// bench:forward — what a heal costs in events and bytes per topology: every DRU cut off
// writes N events, then the topology's links come up. Counts events received against
// events needed (received ÷ needed; 1.00 means nothing arrived twice) and bytes on the
// links, over the real peer protocol in process (@dru/testkit SimNetwork, exchange
// 'protocol': the same PeerProtocol sessions as on a socket, frames encoded, sealed and
// windowed, no faults). Counts, not times: the in-process run is deterministic per seed,
// so the three runs differ only by seed (the order frames cross the links).
//
//   npm run bench:forward -- --label NAME   (records this checkout's numbers as NAME, then
//                                           writes the table of every label recorded)
//
// Each label's numbers are kept in benchmarks/forwarding-results.json with the commit they
// were measured on; the RESULTS.md section shows every label recorded.
import { execSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { argv } from 'node:process'
import { SimNetwork, assertConverged, fullMesh, healAfterWrites, regions } from '@dru/testkit'
import { machineLine, summarize, writeSection } from './results.mjs'

const arg = (name, fallback) => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? argv[i + 1] : fallback
}
const LABEL = arg('label', 'p6 (compact frames, neighbours)')
const PER_DRU = Number(arg('events', 1000))
const SEEDS = [1, 2, 3]
const TOPOLOGIES = [fullMesh(3), fullMesh(5), regions(3, 3)]
const FILE = new URL('./forwarding-results.json', import.meta.url)

async function once(topology, seed) {
  const net = await SimNetwork.create({
    size: topology.size,
    seed,
    exchange: 'protocol',
    maxBatchBytes: 16 * 1024,
    faults: {},
  })
  try {
    const r = await healAfterWrites(net, topology, PER_DRU, { docs: 50 })
    assertConverged(net.drus)
    const sum = (v) => v.reduce((a, b) => a + b, 0)
    return { ratio: r.ratio, received: sum(r.received), needed: sum(r.needed), bytes: r.bytes }
  } finally {
    await net.close()
  }
}

const commit = execSync('git rev-parse --short HEAD', { encoding: 'utf8' }).trim()
const results = {}
for (const t of TOPOLOGIES) {
  const runs = []
  for (const seed of SEEDS) {
    const r = await once(t, seed)
    console.log(
      `${LABEL} ${t.name} seed ${seed}: received ${r.received} / needed ${r.needed} = ${r.ratio.toFixed(3)}, ${r.bytes} bytes`,
    )
    runs.push(r)
  }
  results[t.name] = runs
}

const all = existsSync(FILE) ? JSON.parse(readFileSync(FILE, 'utf8')) : {}
all[LABEL] = { commit, date: new Date().toISOString().slice(0, 10), perDru: PER_DRU, results }
writeFileSync(FILE, `${JSON.stringify(all, null, 2)}\n`)

const range = (values, f) => {
  const s = summarize(values)
  return `${f(s.median)} (${f(s.min)}–${f(s.max)})`
}
const ratio = (x) => x.toFixed(2)
const mib = (x) => (x / 2 ** 20).toFixed(2)
const int = (x) => Math.round(x).toLocaleString('en-US')
const rows = []
for (const [label, entry] of Object.entries(all)) {
  for (const [name, runs] of Object.entries(entry.results)) {
    rows.push(
      `| ${name} | ${label} (\`${entry.commit}\`) | ${range(
        runs.map((r) => r.received),
        int,
      )} / ${int(runs[0].needed)} | **${range(
        runs.map((r) => r.ratio),
        ratio,
      )}** | ${range(
        runs.map((r) => r.bytes),
        mib,
      )} |`,
    )
  }
}
rows.sort()
writeSection(
  'bench:forward',
  `## bench:forward — events received per event needed after a heal, by topology

Command: \`npm run bench:forward -- --label NAME\` on each commit compared (benchmarks/forwarding.mjs;
raw numbers and commits in benchmarks/forwarding-results.json). Machine: ${machineLine()}.

Every DRU cut off writes ${int(PER_DRU)} events (one Automerge change each, over 50 documents), then
exactly the topology's links come up and the network settles; every run ends converged.
The real peer protocol runs in process (\`SimNetwork\`, exchange \`protocol\`: the same
\`PeerProtocol\` sessions as on a socket, frames encoded, sealed, windowed and acknowledged;
batches of 16 KiB, no faults). Received = events arriving in \`events\` frames at all DRUs;
needed = events each DRU lacked at the heal; bytes = every frame on every link after the heal
(both directions). Median of 3 runs (seeds 1–3; range in brackets). These are counts, so the
machine does not move them; the seeds change the order frames cross the links.
Regions: 3 regions of 3 DRUs, each region meshed inside, one hub per region, the hubs meshed.
Code: "p5 without routes" is protocol 5 before routes frames; "p5 with routes" adds them;
"p6" is protocol 6 (compact, compressed events frames; routes also name the sender's
neighbours, and what one of them brought us is not forwarded to the sender).

| topology | code | events received / needed | received ÷ needed (target ≤ 1.1) | MiB on the links |
| --- | --- | ---: | ---: | ---: |
${rows.join('\n')}`,
)
console.log('wrote bench:forward to benchmarks/RESULTS.md')
process.exit(0)
