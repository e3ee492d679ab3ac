// One replica of one system in its own process, driven by the harness over IPC
// (fork with serialization 'advanced', so Uint8Arrays cross as they are).
// Config arrives as JSON in BENCH_REPLICA: { system, id, index, dir, peers, ... }.
// Replies: { id, ok, value } or { id, ok: false, error }.
const cfg = JSON.parse(process.env.BENCH_REPLICA)

// Peak RSS since the last `mark`, sampled every 20 ms (process.resourceUsage().maxRSS is
// the peak since the process started, which would include the write phase).
let peakRss = process.memoryUsage().rss
let cpuMark = process.cpuUsage()
const sampler = setInterval(() => {
  const rss = process.memoryUsage().rss
  if (rss > peakRss) peakRss = rss
}, 20)
sampler.unref()

const fail = (err) => {
  try {
    process.send({ fatal: String(err?.stack ?? err) })
  } catch {}
  setTimeout(() => process.exit(70), 50)
}
// A system may declare some process-level errors harmless (see systems/automerge-repo.mjs);
// they are counted and reported in `stats`, everything else ends the replica.
let mod
let ignoredErrors = 0
const onError = (err) => {
  if (mod?.ignorable?.(err)) {
    ignoredErrors++
    return
  }
  fail(err)
}
process.on('uncaughtException', onError)
process.on('unhandledRejection', onError)
process.on('disconnect', () => process.exit(0))

mod = await import(`./systems/${cfg.system}.mjs`)
const replica = await mod.open(cfg)

const builtins = {
  mark: () => {
    peakRss = process.memoryUsage().rss
    cpuMark = process.cpuUsage()
    // The system's own mark too (dru: counters from here on are the heal's).
    replica.mark?.()
    return true
  },
  stats: () => {
    const rss = process.memoryUsage().rss
    if (rss > peakRss) peakRss = rss
    const cpu = process.cpuUsage(cpuMark)
    return {
      peakRss,
      rss,
      maxRss: process.resourceUsage().maxRSS * 1024,
      cpuSec: (cpu.user + cpu.system) / 1e6,
      ignoredErrors,
    }
  },
  exit: async () => {
    await replica.close?.()
    setImmediate(() => process.exit(0))
    return true
  },
}

process.on('message', async (msg) => {
  if (msg?.id === undefined) return
  try {
    const fn = builtins[msg.cmd] ?? replica[msg.cmd]
    if (typeof fn !== 'function') throw new Error(`unknown command ${msg.cmd}`)
    const value = await fn.call(replica, msg.args ?? {})
    process.send({ id: msg.id, ok: true, value })
  } catch (err) {
    process.send({
      id: msg.id,
      ok: false,
      error: String(err?.message ?? err),
      stack: process.env.BENCH_DEBUG ? String(err?.stack) : undefined,
    })
  }
})
process.send({ ready: true, port: replica.port ?? 0 })
