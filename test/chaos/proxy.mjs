import net from 'node:net'

/**
 * One directed link of the chaos cluster: a loopback TCP proxy whose mode the nemesis
 * switches at run time (tc netem is not available on this machine, so faults live here).
 *   pass       pipe both ways
 *   blackhole  keep every socket open and hold the bytes both ways, as a silent partition
 *              does (TCP neither delivers nor errors; only heartbeats notice). A close on
 *              one side is not passed on either. On heal the held bytes are delivered (TCP
 *              retransmission) or, if one side closed meanwhile, the other is reset.
 *   reset      reset live connections (RST) and refuse new ones
 *   hold-up    hold only the dialer→listener bytes (an asymmetric partition), deliver on heal
 *   hold-down  hold only the listener→dialer bytes
 *   slow:N     deliver each chunk N ms late (order kept: same delay, timers fire in order)
 */
export class ChaosProxy {
  #mode = 'pass'
  #delay = 0
  #server
  #target
  #conns = new Set()
  bytes = 0

  constructor(server, target) {
    this.#server = server
    this.#target = target
  }

  /** Where the link leads: a restarted DRU listens on a new port. */
  set target(port) {
    this.#target = port
  }

  static async start(target = 0) {
    const server = net.createServer()
    const p = new ChaosProxy(server, target)
    server.on('connection', (c) => p.#accept(c))
    await new Promise((r) => server.listen(0, '127.0.0.1', r))
    return p
  }

  get port() {
    return this.#server.address().port
  }

  get mode() {
    return this.#mode
  }

  set(mode) {
    const [m, n] = mode.split(':')
    this.#mode = m
    this.#delay = Number(n ?? 0)
    if (m === 'pass' || m === 'slow' || m === 'reset') {
      for (const c of [...this.#conns]) {
        if (c.dead) {
          c.client.resetAndDestroy()
          c.upstream.resetAndDestroy()
          this.#conns.delete(c)
          continue
        }
        for (const [to, q] of [[c.upstream, c.toUp], [c.client, c.toClient]]) for (const chunk of q.splice(0)) to.destroyed || to.write(chunk)
      }
    }
    if (m === 'reset') {
      for (const c of this.#conns) {
        c.client.resetAndDestroy()
        c.upstream.resetAndDestroy()
      }
      this.#conns.clear()
    }
  }

  #accept(client) {
    if (this.#mode === 'reset') return void client.resetAndDestroy()
    const upstream = net.connect(this.#target, '127.0.0.1')
    const conn = { client, upstream, toUp: [], toClient: [], dead: false }
    this.#conns.add(conn)
    const forward = (to, held, dir) => (chunk) => {
      if (this.#mode === 'blackhole' || this.#mode === `hold-${dir}`) return void held.push(chunk)
      this.bytes += chunk.length
      if (this.#mode === 'slow') setTimeout(() => to.destroyed || to.write(chunk), this.#delay)
      else to.write(chunk)
    }
    client.on('data', forward(upstream, conn.toUp, 'up'))
    upstream.on('data', forward(client, conn.toClient, 'down'))
    for (const s of [client, upstream]) {
      s.on('error', () => undefined)
      s.on('close', () => {
        if (this.#mode === 'blackhole') return void (conn.dead = true)
        this.#conns.delete(conn)
        client.destroy()
        upstream.destroy()
      })
    }
  }

  async close() {
    this.set('reset')
    await new Promise((r) => this.#server.close(() => r()))
  }
}

