import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { LinkProxy, type LinkTap } from '../src/link-proxy.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

/** A listener that records what each accepted connection received and can answer on it. */
async function listener() {
  const accepted: Array<{ socket: net.Socket; received: string }> = []
  const server = net.createServer((socket) => {
    const conn = { socket, received: '' }
    accepted.push(conn)
    socket.on('data', (d) => (conn.received += d.toString()))
    socket.on('error', () => undefined)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  cleanups.push(() => {
    for (const c of accepted) c.socket.destroy()
    return new Promise((r) => server.close(r))
  })
  return { port: (server.address() as net.AddressInfo).port, accepted }
}

/** A dialer that records what it received and how its connection ended. */
function dial(port: number) {
  const socket = net.connect(port, '127.0.0.1')
  const conn = { socket, received: '', ended: '' }
  socket.on('data', (d) => (conn.received += d.toString()))
  socket.on('end', () => (conn.ended ||= 'fin'))
  socket.on('error', (err: NodeJS.ErrnoException) => (conn.ended ||= err.code ?? 'error'))
  socket.on('close', () => (conn.ended ||= 'closed'))
  cleanups.push(() => socket.destroy())
  return conn
}

async function until(what: string, check: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

async function proxyTo(port: number, options: Parameters<typeof LinkProxy.start>[0] = {}) {
  const proxy = await LinkProxy.start({ target: port, ...options })
  cleanups.push(() => proxy.close())
  return proxy
}

describe('LinkProxy', () => {
  it('passes bytes both ways and counts exactly what it delivered per direction', async () => {
    const l = await listener()
    const proxy = await proxyTo(l.port)
    expect(proxy.url).toBe(`ws://127.0.0.1:${proxy.port}`)
    const c = dial(proxy.port)
    c.socket.write('x'.repeat(1000))
    await until('the listener got 1000 bytes', () => l.accepted[0]?.received.length === 1000)
    l.accepted[0]!.socket.write('y'.repeat(300))
    await until('the dialer got 300 bytes', () => c.received.length === 300)
    expect(proxy.bytes).toEqual({ up: 1000, down: 300 })
    proxy.resetCounters()
    expect(proxy.bytes).toEqual({ up: 0, down: 0 })
  })

  it('cut resets live connections and refuses new ones; heal lets new ones through', async () => {
    const l = await listener()
    const proxy = await proxyTo(l.port)
    const live = dial(proxy.port)
    live.socket.write('a')
    await until('connected', () => l.accepted[0]?.received === 'a')
    proxy.cut()
    expect(proxy.mode).toBe('cut')
    await until('the live dialer reset', () => live.ended !== '')
    expect(live.ended).toBe('ECONNRESET')
    const refused = dial(proxy.port)
    await until('the new dialer refused', () => refused.ended !== '')
    expect(refused.ended).toBe('ECONNRESET')
    expect(l.accepted).toHaveLength(1)

    proxy.heal()
    const after = dial(proxy.port)
    after.socket.write('b')
    await until('a new connection passes', () => l.accepted[1]?.received === 'b')
  })

  it('retarget sends new connections to a restarted process on its new port', async () => {
    const first = await listener()
    const second = await listener()
    const proxy = await proxyTo(0)
    const early = dial(proxy.port)
    await until('refused while no target is known', () => early.ended !== '')
    proxy.retarget(first.port)
    dial(proxy.port).socket.write('1')
    await until('first listener', () => first.accepted[0]?.received === '1')
    proxy.target = second.port
    expect(proxy.target).toBe(second.port)
    dial(proxy.port).socket.write('2')
    await until('second listener', () => second.accepted[0]?.received === '2')
    expect(first.accepted).toHaveLength(1)
  })

  it('blackhole holds the bytes both ways on open sockets and delivers them, in order, on heal', async () => {
    const l = await listener()
    const proxy = await proxyTo(l.port)
    const c = dial(proxy.port)
    c.socket.write('a')
    await until('connected', () => l.accepted[0]?.received === 'a')
    proxy.set('blackhole')
    c.socket.write('b')
    l.accepted[0]!.socket.write('z')
    await sleep(100)
    expect(l.accepted[0]!.received).toBe('a')
    expect(c.received).toBe('')
    expect(c.ended).toBe('')
    expect(proxy.bytes).toEqual({ up: 1, down: 0 })
    proxy.heal()
    await until('held bytes delivered', () => l.accepted[0]!.received === 'ab' && c.received === 'z')
    expect(proxy.bytes).toEqual({ up: 2, down: 1 })
  })

  it('blackhole holds a close too; the other side is reset once the link passes', async () => {
    const l = await listener()
    const proxy = await proxyTo(l.port)
    const c = dial(proxy.port)
    c.socket.write('a')
    await until('connected', () => l.accepted[0]?.received === 'a')
    let listenerSide = ''
    l.accepted[0]!.socket.on('end', () => (listenerSide ||= 'fin')).on('close', () => (listenerSide ||= 'closed'))
    l.accepted[0]!.socket.on('error', (err: NodeJS.ErrnoException) => (listenerSide ||= err.code ?? 'error'))
    proxy.set('blackhole')
    c.socket.end()
    await sleep(100)
    expect(listenerSide).toBe('')
    proxy.heal()
    await until('listener side reset', () => listenerSide !== '')
    expect(listenerSide).toBe('ECONNRESET')
  })

  it('hold-up and hold-down hold one direction only', async () => {
    const l = await listener()
    const proxy = await proxyTo(l.port)
    const c = dial(proxy.port)
    c.socket.write('a')
    await until('connected', () => l.accepted[0]?.received === 'a')
    proxy.set('hold-up')
    c.socket.write('b')
    l.accepted[0]!.socket.write('x')
    await until('down still passes', () => c.received === 'x')
    expect(l.accepted[0]!.received).toBe('a')
    proxy.set('hold-down')
    await until('up delivered when no longer held', () => l.accepted[0]!.received === 'ab')
    l.accepted[0]!.socket.write('y')
    await sleep(100)
    expect(c.received).toBe('x')
    proxy.heal()
    await until('down delivered on heal', () => c.received === 'xy')
  })

  it('drop loses the bytes for good and counts none of them', async () => {
    const l = await listener()
    const proxy = await proxyTo(l.port)
    const c = dial(proxy.port)
    c.socket.write('a')
    await until('connected', () => l.accepted[0]?.received === 'a')
    proxy.set('drop')
    c.socket.write('lost')
    await sleep(100)
    proxy.heal()
    c.socket.write('b')
    await until('later bytes pass', () => l.accepted[0]!.received === 'ab')
    expect(proxy.bytes).toEqual({ up: 2, down: 0 })
  })

  it('park closes live connections with FIN and holds new ones unanswered until heal, then connects them with what they sent', async () => {
    const l = await listener()
    const proxy = await proxyTo(l.port, { mode: 'park' })
    const c = dial(proxy.port)
    c.socket.write('hello')
    await sleep(100)
    expect(l.accepted).toHaveLength(0)
    proxy.heal()
    await until('parked connection delivered', () => l.accepted[0]?.received === 'hello')
    proxy.set('park')
    await until('live connection closed', () => c.ended !== '')
    expect(c.ended).toBe('fin')
  })

  it('slow:N delivers each chunk N ms late, in order', async () => {
    const l = await listener()
    const proxy = await proxyTo(l.port, { mode: 'slow:150' })
    const c = dial(proxy.port)
    const t0 = Date.now()
    c.socket.write('a')
    await sleep(20)
    c.socket.write('b')
    await until('delivered', () => l.accepted[0]?.received === 'ab')
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140)
    expect(() => proxy.set('slow:x' as `slow:${number}`)).toThrow(RangeError)
  })

  it('a tap per connection sees every delivered chunk', async () => {
    const l = await listener()
    const seen: string[] = []
    const tap = (): LinkTap => ({ up: (d) => seen.push(`up ${d}`), down: (d) => seen.push(`down ${d}`) })
    const proxy = await proxyTo(l.port, { tap })
    const c = dial(proxy.port)
    c.socket.write('q')
    await until('connected', () => l.accepted[0]?.received === 'q')
    l.accepted[0]!.socket.write('r')
    await until('answer', () => c.received === 'r')
    expect(seen).toEqual(['up q', 'down r'])
  })
})
