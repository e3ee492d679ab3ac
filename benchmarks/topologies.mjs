// npm run bench:topologies [-- --ops N] [--runs R] [--systems dru,automerge-repo,yjs]
//
// Partition-heal beyond three replicas: every replica in its own process, every link through
// a byte-counting proxy (the same harness as `npm run bench`, benchmarks/compare), in a full
// mesh of 3, a full mesh of 5, and 3 regions of 3 (each region meshed, one hub per region, the
// hubs meshed: 9 processes). Every link is cut, each replica writes N ops over 1,000
// documents, the links heal; measured from the heal until every replica holds identical
// materialised state: time, bytes on the wire, peak RSS of the largest replica, and for dru
// the events received over sessions ÷ the events the replicas lacked at the heal. Median of
// R runs (range). Writes the `bench:topologies` section of benchmarks/RESULTS.md.
import { argv } from 'node:process'
import { meshTopology, regionsTopology } from './compare/cluster.mjs'
import { partitionHeal } from './compare/partition-heal.mjs'
import { killAll } from './compare/child.mjs'
import { machineLine, summarize, writeSection } from './results.mjs'

const arg = (name, fallback) => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? argv[i + 1] : fallback
}
const OPS = Number(arg('ops', 2000))
const RUNS = Number(arg('runs', 3))
const DOCS = 1000
const SYSTEMS = arg('systems', 'dru').split(',')
const TOPOLOGIES = [meshTopology(3), meshTopology(5), regionsTopology(3, 3)]

process.on('SIGINT', () => {
  killAll()
  process.exit(130)
})

const rows = []
for (const topology of TOPOLOGIES) {
  for (const system of SYSTEMS) {
    const runs = []
    for (let r = 0; r < RUNS; r++) {
      const res = await partitionHeal({ system, docs: DOCS, ops: OPS, seed: 11 + r, topology })
      // Each replica lacked what every other replica wrote.
      const needed = topology.ids.length * (topology.ids.length - 1) * OPS
      if (res.received && res.received.events < needed)
        throw new Error(
          `received ${res.received.events} < needed ${needed}: a session from before the heal was counted`,
        )
      runs.push({ ...res, needed })
      console.log(
        `${topology.name} ${system} run ${r + 1}: ${(res.ms / 1000).toFixed(2)} s, ${(res.bytes / 2 ** 20).toFixed(2)} MiB` +
          (res.received ? `, received ${res.received.events} / needed ${needed}` : ''),
      )
    }
    rows.push({ topology, system, runs })
  }
}

const f = (values, d, scale = 1) => {
  const s = summarize(values.map((v) => v / scale))
  return `${s.median.toFixed(d)} (${s.min.toFixed(d)}–${s.max.toFixed(d)})`
}
const table = [
  '| topology | replicas | system | heal → identical state, s | bytes on the wire, MiB | received ÷ needed | peak RSS, MiB |',
  '| --- | ---: | --- | ---: | ---: | ---: | ---: |',
  ...rows.map(
    ({ topology, system, runs }) =>
      `| ${topology.name} | ${topology.ids.length} | ${system} | ${f(
        runs.map((r) => r.ms),
        2,
        1000,
      )} | ${f(
        runs.map((r) => r.bytes),
        2,
        2 ** 20,
      )} | ${
        runs[0].received
          ? f(
              runs.map((r) => r.received.events / r.needed),
              3,
            )
          : '–'
      } | ${f(
        runs.map((r) => r.peakRss),
        0,
        2 ** 20,
      )} |`,
  ),
].join('\n')

writeSection(
  'bench:topologies',
  `## bench:topologies — partition-heal with 3, 5 and 9 replicas

Command: \`npm run bench:topologies -- --ops ${OPS} --runs ${RUNS} --systems ${SYSTEMS.join(',')}\` (benchmarks/topologies.mjs). Machine: ${machineLine()}.

Every replica in its own process, every link through a byte-counting proxy (the harness of
\`npm run bench\`); dru with the partition-heal settings of that bench. Every link cut; each
replica writes ${OPS.toLocaleString('en-US')} ops over ${DOCS.toLocaleString('en-US')} documents (one Automerge change each, 100 per
commit); the links heal. Time from the heal until every replica holds identical materialised
state; bytes on every link, both directions; received ÷ needed = events arriving over dru's
sessions ÷ events the replicas lacked at the heal (1.00: nothing arrived twice). Median of
${RUNS} run(s), range in brackets. 9 processes share this machine's 2 cores.

${table}`,
)
console.log('wrote bench:topologies to benchmarks/RESULTS.md')
process.exit(0)
