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
//   enters the measured time. (The testkit LinkProxy's `park` mode; it counts the bytes.)
import { LinkProxy } from '@dru/testkit'

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

/** One link (dialer → listener) through a testkit LinkProxy, with WebSocket messages and turns counted. */
export class CountingLink {
  /** @param {string} name e.g. "a→b" (dialer → listener) */
  constructor(name) {
    this.name = name
    this.resetCounters()
  }

  /** Listens on 127.0.0.1; the link starts cut (parked) until `heal`. */
  async listen() {
    this.proxy = await LinkProxy.start({ mode: 'park', tap: () => this.#tapConnection() })
    return this.proxy.port
  }

  get url() {
    return this.proxy.url
  }

  resetCounters() {
    this.proxy?.resetCounters()
    this.messages = { up: 0, down: 0 }
    this.messageBytes = { up: 0, down: 0 }
    this.control = { up: 0, down: 0 }
    this.turns = 0
    this.lastDir = undefined
    this.lastDataAt = 0
    this.firstDataAt = 0
  }

  snapshot() {
    const bytes = this.proxy.bytes
    return {
      link: this.name,
      bytes: bytes.up + bytes.down,
      bytesUp: bytes.up,
      bytesDown: bytes.down,
      messages: this.messages.up + this.messages.down,
      messagesUp: this.messages.up,
      messagesDown: this.messages.down,
      control: this.control.up + this.control.down,
      roundTrips: Math.ceil(this.turns / 2),
      lastDataAt: this.lastDataAt,
      firstDataAt: this.firstDataAt,
    }
  }

  /** Sets the listener's port; a parked connection is connected at once if the link passes. */
  setTarget(port) {
    this.proxy.retarget(port)
  }

  cut() {
    this.proxy.set('park')
  }

  heal() {
    this.proxy.heal()
  }

  close() {
    return this.proxy.close()
  }

  /** A fresh WebSocket parser per direction of each connection. */
  #tapConnection() {
    const onData = (dir) => (n) => {
      this.messages[dir]++
      this.messageBytes[dir] += n
      const t = performance.now()
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
    return { up: (chunk) => up.push(chunk), down: (chunk) => down.push(chunk) }
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
