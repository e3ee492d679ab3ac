// Loaded into each partition-heal replica by heal-profile.mjs (BENCH_EXEC_ARGV=--import …):
// starts the CPU profiler on the harness's `mark` (right before the heal) and writes the
// profile on `stats` (right after the materialised content was read), so the profile holds
// the heal and nothing of the setup or the write phase. Registered before replica.mjs's
// own listener, and synchronous, so the file is written before the harness kills us.
// Beside each profile it writes the CPU the main thread and the whole process used over the
// same span: with three replicas on two cores a sampled "second" is a second the thread was
// runnable, not one it ran, and heal-profile.mjs scales the samples to the CPU measured here.
import { readFileSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'
import { join } from 'node:path'

const dir = process.env.HEAL_PROFILE_DIR
const id = JSON.parse(process.env.BENCH_REPLICA ?? '{}').id ?? process.pid
const session = new Session()
session.connect()
let running = false
let n = 0
let cpuAtMark

/** CPU µs the main thread has used (Linux /proc, in USER_HZ ticks of 10 ms), or undefined elsewhere. */
function mainThreadCpuUs() {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) * 10_000
  } catch {
    return undefined
  }
}

function cpuNow() {
  const p = process.cpuUsage()
  return { main: mainThreadCpuUs(), process: p.user + p.system }
}
process.on('message', (msg) => {
  if (msg?.cmd === 'mark' && !running) {
    running = true
    cpuAtMark = cpuNow()
    session.post('Profiler.enable')
    session.post('Profiler.setSamplingInterval', { interval: 500 })
    session.post('Profiler.start')
  } else if (msg?.cmd === 'stats' && running) {
    running = false
    const end = cpuNow()
    session.post('Profiler.stop', (err, res) => {
      if (err || !dir) return
      const name = `heal-${id}-${n++}`
      writeFileSync(join(dir, `${name}.cpuprofile`), JSON.stringify(res.profile))
      const main = end.main !== undefined && cpuAtMark.main !== undefined ? end.main - cpuAtMark.main : undefined
      writeFileSync(
        join(dir, `${name}.cpu.json`),
        JSON.stringify({ mainUs: main, processUs: end.process - cpuAtMark.process }),
      )
    })
  }
})
