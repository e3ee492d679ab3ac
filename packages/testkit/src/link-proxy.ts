import net from 'node:net'

/**
 * What a {@link LinkProxy} does with its link. `up` is the dialer → listener direction,
 * `down` the way back.
 *
 * - `pass`: pipe both ways (with backpressure), delivering anything held before.
 * - `cut`: reset live connections (RST) and refuse new ones: a failure both ends see at once.
 * - `blackhole`: keep every socket open and hold the bytes both ways, as a silent partition
 *   (a firewall DROP) does: TCP neither delivers nor errors, only heartbeats notice. A close
 *   on one side is held too. When the link passes again the held bytes are delivered (TCP
 *   retransmission), and a connection one side closed meanwhile is reset.
 * - `hold-up` / `hold-down`: hold one direction only (an asymmetric partition).
 * - `drop`: keep sockets open and lose the bytes for good (a corrupted stream, which TCP
 *   itself never produces: it checks a peer's defences).
 * - `park`: close live connections (FIN, as a dead region's sockets would) and accept new
 *   ones without answering; they are connected when the mode leaves `park`, so a
 *   reconnect starts at the heal instant whatever the dialer's back-off.
 * - `slow:N`: deliver each chunk N ms late, order kept.
 */
export type LinkMode = 'pass' | 'cut' | 'blackhole' | 'hold-up' | 'hold-down' | 'drop' | 'park' | `slow:${number}`

/** A direction on a link: `up` is dialer → listener. */
export type LinkDirection = 'up' | 'down'

/** Sees the bytes of one connection as they are delivered (e.g. to count protocol messages). */
export interface LinkTap {
  up?(chunk: Buffer): void
  down?(chunk: Buffer): void
}

/** How a {@link LinkProxy} starts. */
export interface LinkProxyOptions {
  /** The listener's port on 127.0.0.1; 0 until it is known ({@link LinkProxy.target}). */
  target?: number
  /** The mode at start (default `pass`). */
  mode?: LinkMode
  /** Called for each connection once it is connected to the target. */
  tap?: () => LinkTap
}

interface Pair {
  client: net.Socket
  upstream: net.Socket
  held: Record<LinkDirection, Buffer[]>
  tap: LinkTap | undefined
  /** One side closed while the link was blackholed: reset the other once it is not. */
  closedInBlackhole: boolean
}

interface Parked {
  client: net.Socket
  early: Buffer[]
}

const forwards = (mode: LinkMode, direction: LinkDirection): boolean =>
  mode === 'pass' || mode.startsWith('slow:') || mode === (direction === 'up' ? 'hold-down' : 'hold-up')

/**
 * One directed network link between two processes on 127.0.0.1: a TCP proxy whose
 * {@link LinkMode} a test, the demo or a benchmark switches at run time to stage
 * partitions, and which counts the bytes it delivers each way.
 *
 * @remarks Loopback only. The target may change at any time ({@link LinkProxy.retarget}):
 * a restarted process listens on a new OS-chosen port.
 */
export class LinkProxy {
  /** Bytes delivered so far, per direction. */
  readonly bytes: Record<LinkDirection, number> = { up: 0, down: 0 }
  #mode: LinkMode
  #delayMs = 0
  #target: number
  readonly #tap: (() => LinkTap) | undefined
  readonly #server: net.Server
  readonly #pairs = new Set<Pair>()
  readonly #parked = new Set<Parked>()

  private constructor(server: net.Server, options: LinkProxyOptions) {
    this.#server = server
    this.#target = options.target ?? 0
    this.#tap = options.tap
    this.#mode = 'pass'
    this.set(options.mode ?? 'pass')
  }

  /** Listens on an OS-chosen port of 127.0.0.1. */
  static async start(options: LinkProxyOptions = {}): Promise<LinkProxy> {
    const server = net.createServer()
    const proxy = new LinkProxy(server, options)
    server.on('connection', (client) => proxy.#accept(client))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return proxy
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port
  }

  /** The WebSocket URL a dialer uses to go through this link. */
  get url(): string {
    return `ws://127.0.0.1:${this.port}`
  }

  get mode(): LinkMode {
    return this.#mode
  }

  get target(): number {
    return this.#target
  }

  set target(port: number) {
    this.retarget(port)
  }

  /** Points the link at a (restarted) process's port; parked connections go there if the link is open. */
  retarget(port: number): void {
    this.#target = port
    if (this.#mode !== 'park' && this.#mode !== 'cut') this.#unpark()
  }

  /** Switches the mode; see {@link LinkMode} for what each does to live connections. */
  set(mode: LinkMode): void {
    const delay = mode.startsWith('slow:') ? Number(mode.slice(5)) : 0
    if (!Number.isFinite(delay) || delay < 0) throw new RangeError(`LinkProxy: bad mode ${mode}`)
    const was = this.#mode
    this.#mode = mode
    this.#delayMs = delay
    if (mode === 'cut') return this.#resetAll()
    if (mode === 'park') return this.#closeAll()
    for (const pair of [...this.#pairs]) {
      if (pair.closedInBlackhole && mode !== 'blackhole') {
        this.#reset(pair)
        continue
      }
      for (const direction of ['up', 'down'] as const) {
        if (forwards(mode, direction))
          for (const chunk of pair.held[direction].splice(0)) this.#deliver(pair, direction, chunk, true)
      }
    }
    if (was === 'park') this.#unpark()
  }

  /** Resets live connections and refuses new ones (`cut`). */
  cut(): void {
    this.set('cut')
  }

  /** Lets bytes pass again (`pass`). */
  heal(): void {
    this.set('pass')
  }

  /** Zeroes the byte counters. */
  resetCounters(): void {
    this.bytes.up = 0
    this.bytes.down = 0
  }

  /** Resets every connection and stops listening. */
  async close(): Promise<void> {
    this.set('cut')
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  #accept(client: net.Socket): void {
    client.on('error', () => undefined)
    if (this.#mode === 'park') return this.#park(client)
    if (this.#mode === 'cut' || this.#target === 0) return void client.resetAndDestroy()
    this.#connect(client, [])
  }

  #park(client: net.Socket): void {
    const early: Buffer[] = []
    const parked = { client, early }
    this.#parked.add(parked)
    // Keep what the dialer sends meanwhile (its HTTP upgrade) for when the link opens.
    client.on('data', (chunk: Buffer) => early.push(chunk))
    client.once('close', () => this.#parked.delete(parked))
  }

  #unpark(): void {
    if (this.#target === 0) return
    for (const parked of [...this.#parked]) {
      this.#parked.delete(parked)
      parked.client.removeAllListeners('data')
      this.#connect(parked.client, parked.early)
    }
  }

  #connect(client: net.Socket, early: Buffer[]): void {
    const upstream = net.connect(this.#target, '127.0.0.1')
    upstream.on('error', () => undefined)
    const pair: Pair = { client, upstream, held: { up: [], down: [] }, tap: this.#tap?.(), closedInBlackhole: false }
    this.#pairs.add(pair)
    const receive = (direction: LinkDirection) => (chunk: Buffer) => {
      if (this.#mode === 'blackhole' || this.#mode === `hold-${direction}`) return void pair.held[direction].push(chunk)
      if (this.#mode === 'drop') return
      this.#deliver(pair, direction, chunk, false)
    }
    for (const chunk of early) this.#deliver(pair, 'up', chunk, true)
    client.on('data', receive('up'))
    upstream.on('data', receive('down'))
    client.on('drain', () => upstream.resume())
    upstream.on('drain', () => client.resume())
    for (const socket of [client, upstream]) {
      socket.on('close', () => {
        if (!this.#pairs.has(pair)) return
        if (this.#mode === 'blackhole') return void (pair.closedInBlackhole = true)
        this.#pairs.delete(pair)
        client.destroy()
        upstream.destroy()
      })
    }
  }

  /** Counts and writes one chunk; `late` marks bytes held until now, which go at once. */
  #deliver(pair: Pair, direction: LinkDirection, chunk: Buffer, late: boolean): void {
    const [from, to] = direction === 'up' ? [pair.client, pair.upstream] : [pair.upstream, pair.client]
    this.bytes[direction] += chunk.length
    pair.tap?.[direction]?.(chunk)
    if (this.#delayMs > 0 && !late) return void setTimeout(() => to.destroyed || to.write(chunk), this.#delayMs)
    if (to.destroyed) return
    if (!to.write(chunk)) from.pause()
  }

  #reset(pair: Pair): void {
    this.#pairs.delete(pair)
    pair.client.resetAndDestroy()
    pair.upstream.resetAndDestroy()
  }

  #resetAll(): void {
    for (const pair of [...this.#pairs]) this.#reset(pair)
    for (const parked of this.#parked) parked.client.resetAndDestroy()
    this.#parked.clear()
  }

  #closeAll(): void {
    for (const pair of [...this.#pairs]) {
      this.#pairs.delete(pair)
      pair.client.destroy()
      pair.upstream.destroy()
    }
  }
}
