// Loaded into each partition-heal replica by heal-profile.mjs (BENCH_EXEC_ARGV=--import …):
// starts the CPU profiler on the harness's `mark` (right before the heal) and writes the
// profile on `stats` (right after the materialised content was read), so the profile holds
// the heal and nothing of the setup or the write phase. Registered before replica.mjs's
// own listener, and synchronous, so the file is written before the harness kills us.
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'
import { join } from 'node:path'

const dir = process.env.HEAL_PROFILE_DIR
const id = JSON.parse(process.env.BENCH_REPLICA ?? '{}').id ?? process.pid
const session = new Session()
session.connect()
let running = false
let n = 0
process.on('message', (msg) => {
  if (msg?.cmd === 'mark' && !running) {
    running = true
    session.post('Profiler.enable')
    session.post('Profiler.setSamplingInterval', { interval: 500 })
    session.post('Profiler.start')
  } else if (msg?.cmd === 'stats' && running) {
    running = false
    session.post('Profiler.stop', (err, res) => {
      if (!err && dir) writeFileSync(join(dir, `heal-${id}-${n++}.cpuprofile`), JSON.stringify(res.profile))
    })
  }
})
