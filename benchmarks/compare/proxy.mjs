// A byte- and message-counting TCP proxy for one link (dialer → listener), used for every
// system alike so "bytes on the wire" and "messages" mean the same thing for each.
//
// - Bytes: every TCP payload byte forwarded in either direction (HTTP upgrade, WebSocket
//   frame headers, masks, payloads, control frames).
// - Messages: complete WebSocket data messages (text/binary, after continuation frames),
//   parsed from the byte stream; control frames (ping/pong/close) are counted apart.
// - Turns: consecutive data messages in the same direction form one turn; a round trip
//   is two turns (request, response), so round trips = ceil(turns / 2).
// - cut(): drops every established connection (FIN, as a dead region's sockets would) and
//   holds new connections unanswered; heal(): connects the held ones to their target. So
//   every system's reconnect starts at the heal instant and no reconnect back-off policy
//   enters the measured time.
import net from 'node:net'

/** Incremental WebSocket frame parser for one direction of one TCP connection. */
class WsCounter {
  constructor(onData, onControl) {
    this.onData = onData
    this.onControl = onControl
    this.http = true
    this.pending = Buffer.alloc(0)
    this.skip = 0
    this.frame = null
    this.messageBytes = 0
  }

  push(chunk) {
    let buf = chunk
    if (this.http) {
      this.pending = Buffer.concat([this.pending, buf])
      const end = this.pending.indexOf('\r\n\r\n')
      if (end < 0) return
      buf = this.pending.subarray(end + 4)
      this.pending = Buffer.alloc(0)
      this.http = false
    }
    while (buf.length > 0) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, buf.length)
        this.skip -= n
        buf = buf.subarray(n)
        if (this.skip === 0) this.#frameDone()
        continue
      }
      this.pending = this.pending.length ? Buffer.concat([this.pending, buf]) : buf
      buf = Buffer.alloc(0)
      const h = this.#header()
      if (!h) return
      this.frame = h
      buf = this.pending.subarray(h.headerBytes)
      this.pending = Buffer.alloc(0)
      this.skip = h.length
      if (this.skip === 0) this.#frameDone()
    }
  }

  #header() {
    const p = this.pending
    if (p.length < 2) return undefined
    const fin = (p[0] & 0x80) !== 0
    const opcode = p[0] & 0x0f
    const masked = (p[1] & 0x80) !== 0
    let length = p[1] & 0x7f
    let at = 2
    if (length === 126) {
      if (p.length < 4) return undefined
      length = p.readUInt16BE(2)
      at = 4
    } else if (length === 127) {
      if (p.length < 10) return undefined
      length = Number(p.readBigUInt64BE(2))
      at = 10
    }
    if (masked) at += 4
    if (p.length < at) return undefined
    return { fin, opcode, length, headerBytes: at }
  }

  #frameDone() {
    const f = this.frame
    this.frame = null
    if (!f) return
    if (f.opcode >= 8) return this.onControl(f.opcode, f.length)
    this.messageBytes += f.length
    if (f.fin) {
      const n = this.messageBytes
      this.messageBytes = 0
      this.onData(n)
    }
  }
}

export class LinkProxy {
  /** @param {string} name e.g. "a→b" (dialer → listener) */
  constructor(name) {
    this.name = name
    this.mode = 'hold'
    this.target = 0
    this.piped = new Set()
    this.held = new Set()
    this.connections = 0
    this.resetCounters()
    this.server = net.createServer((s) => this.#accept(s))
  }

  listen() {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => resolve((this.port = this.server.address().port))))
  }

  get url() {
    return `ws://127.0.0.1:${this.port}`
  }

  resetCounters() {
    this.bytes = { up: 0, down: 0 }
    this.messages = { up: 0, down: 0 }
    this.messageBytes = { up: 0, down: 0 }
    this.control = { up: 0, down: 0 }
    this.turns = 0
    this.lastDir = undefined
    this.lastDataAt = 0
    this.firstDataAt = 0
  }

  snapshot() {
    return {
      link: this.name,
      bytes: this.bytes.up + this.bytes.down,
      bytesUp: this.bytes.up,
      bytesDown: this.bytes.down,
      messages: this.messages.up + this.messages.down,
      messagesUp: this.messages.up,
      messagesDown: this.messages.down,
      control: this.control.up + this.control.down,
      roundTrips: Math.ceil(this.turns / 2),
      lastDataAt: this.lastDataAt,
      firstDataAt: this.firstDataAt,
    }
  }

  /** Sets the listener's port; a held connection is connected at once if the link passes. */
  setTarget(port) {
    this.target = port
    if (this.mode === 'pass') this.heal()
  }

  cut() {
    this.mode = 'hold'
    for (const c of this.piped) {
      c.client.destroy()
      c.server.destroy()
    }
    this.piped.clear()
  }

  heal() {
    this.mode = 'pass'
    if (!this.target) return
    for (const c of [...this.held]) {
      this.held.delete(c)
      this.#pipe(c)
    }
  }

  close() {
    this.cut()
    for (const c of this.held) c.client.destroy()
    this.held.clear()
    return new Promise((r) => this.server.close(() => r()))
  }

  #accept(client) {
    this.connections++
    const c = { client, server: undefined, buffered: [] }
    client.on('error', () => undefined)
    client.on('close', () => {
      this.held.delete(c)
      if (c.server) c.server.destroy()
      this.piped.delete(c)
    })
    if (this.mode === 'pass' && this.target) return this.#pipe(c)
    // Held: keep what the dialer sends (its HTTP upgrade) until heal.
    client.on('data', (d) => c.buffered && c.buffered.push(d))
    this.held.add(c)
  }

  #count(dir, d) {
    this.bytes[dir] += d.length
  }

  #pipe(c) {
    const { client } = c
    const server = net.connect(this.target, '127.0.0.1')
    c.server = server
    this.piped.add(c)
    const now = () => performance.now()
    const onData = (dir) => (n) => {
      this.messages[dir]++
      this.messageBytes[dir] += n
      const t = now()
      if (!this.firstDataAt) this.firstDataAt = t
      this.lastDataAt = t
      if (this.lastDir !== dir) {
        this.turns++
        this.lastDir = dir
      }
    }
    const onControl = (dir) => () => this.control[dir]++
    const up = new WsCounter(onData('up'), onControl('up'))
    const down = new WsCounter(onData('down'), onControl('down'))
    client.removeAllListeners('data')
    const early = c.buffered ?? []
    c.buffered = undefined
    for (const d of early) {
      this.#count('up', d)
      up.push(d)
      server.write(d)
    }
    client.on('data', (d) => {
      this.#count('up', d)
      up.push(d)
      if (!server.write(d)) client.pause()
    })
    server.on('drain', () => client.resume())
    server.on('data', (d) => {
      this.#count('down', d)
      down.push(d)
      if (!client.write(d)) server.pause()
    })
    client.on('drain', () => server.resume())
    server.on('error', () => undefined)
    const drop = () => {
      client.destroy()
      server.destroy()
      this.piped.delete(c)
    }
    server.on('close', drop)
    client.on('close', drop)
  }
}

/** Sums snapshots of several links; round trips = the largest over links (they run in parallel). */
export function totals(snaps) {
  const t = { bytes: 0, messages: 0, control: 0, roundTrips: 0, roundTripsSum: 0, lastDataAt: 0 }
  for (const s of snaps) {
    t.bytes += s.bytes
    t.messages += s.messages
    t.control += s.control
    t.roundTrips = Math.max(t.roundTrips, s.roundTrips)
    t.roundTripsSum += s.roundTrips
    t.lastDataAt = Math.max(t.lastDataAt, s.lastDataAt)
  }
  return t
}
