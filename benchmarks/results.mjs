// Shared by every benchmark script: replaces one named section of benchmarks/RESULTS.md,
// so each `npm run bench:*` rewrites its own table and leaves the others alone.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'

const FILE = new URL('./RESULTS.md', import.meta.url)

/** One line describing the machine, for the top of a section. */
export function machineLine() {
  const cpu = cpus()[0]?.model ?? 'unknown cpu'
  return `${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`
}

/**
 * Writes `markdown` between `<!-- name -->` and `<!-- /name -->`, appending the section if
 * new, in benchmarks/RESULTS.md or in `file` (a path or file URL) when given.
 */
export function writeSection(name, markdown, file = FILE) {
  const start = `<!-- ${name} -->`
  const end = `<!-- /${name} -->`
  const block = `${start}\n${markdown.trim()}\n${end}`
  let text = existsSync(file)
    ? readFileSync(file, 'utf8')
    : '# Benchmark results\n\nEach section is rewritten by the command named in it. Ratios compare dru with a raw ceiling measured in the same run on the same machine.\n'
  const i = text.indexOf(start)
  const j = text.indexOf(end)
  text = i >= 0 && j > i ? text.slice(0, i) + block + text.slice(j + end.length) : `${text.trimEnd()}\n\n${block}\n`
  writeFileSync(file, text)
}

/** Median and range of a list of numbers. */
export function summarize(values) {
  const s = [...values].sort((a, b) => a - b)
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1] }
}

/** Percentile (0-100) of a list of numbers. */
export function percentile(values, p) {
  const s = [...values].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}
