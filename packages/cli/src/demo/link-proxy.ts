import net from 'node:net'

/**
 * One directed network link of the demo: a loopback TCP proxy the orchestrator can cut
 * (reset live connections, refuse new ones) and heal, to stage a regional partition.
 */
export class LinkProxy {
  #target: number
  #open = true
  readonly #server: net.Server
  readonly #sockets = new Set<net.Socket>()

  private constructor(server: net.Server, target: number) {
    this.#server = server
    this.#target = target
  }

  static async start(target: number): Promise<LinkProxy> {
    const server = net.createServer()
    const proxy = new LinkProxy(server, target)
    server.on('connection', (client) => proxy.#accept(client))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return proxy
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port
  }

  /** Points the link at a restarted process's new port. */
  retarget(port: number): void {
    this.#target = port
  }

  cut(): void {
    this.#open = false
    for (const s of this.#sockets) s.resetAndDestroy()
    this.#sockets.clear()
  }

  heal(): void {
    this.#open = true
  }

  #accept(client: net.Socket): void {
    if (!this.#open || this.#target === 0) return void client.resetAndDestroy()
    const upstream = net.connect(this.#target, '127.0.0.1')
    for (const s of [client, upstream]) {
      this.#sockets.add(s)
      s.on('error', () => undefined)
      s.on('close', () => {
        this.#sockets.delete(s)
        client.destroy()
        upstream.destroy()
      })
    }
    client.pipe(upstream)
    upstream.pipe(client)
  }

  async close(): Promise<void> {
    this.cut()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}
