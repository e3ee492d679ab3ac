// Byte counting for reconnect tests: what a link carries, heartbeats left out.

/**
 * Counts one direction of a link: the HTTP upgrade and every WebSocket frame, except dru's
 * heartbeat frames (`ping`/`pong`). Those run on their own clock (an owner's tick, at most
 * 2.5 s) whatever the reconnect does, so under load one could land inside the measured window
 * or not: counting them made the bound depend on timing.
 */
export function countWithoutHeartbeats(count: (n: number) => void): (chunk: Buffer) => void {
  let pending = Buffer.alloc(0)
  let upgraded = false
  return (chunk) => {
    pending = Buffer.concat([pending, chunk])
    if (!upgraded) {
      const end = pending.indexOf('\r\n\r\n')
      if (end < 0) return
      count(end + 4)
      pending = pending.subarray(end + 4)
      upgraded = true
    }
    for (;;) {
      if (pending.length < 2) return
      const masked = (pending[1]! & 0x80) !== 0
      let length = pending[1]! & 0x7f
      let at = 2
      if (length === 126) {
        if (pending.length < 4) return
        length = pending.readUInt16BE(2)
        at = 4
      } else if (length === 127) {
        if (pending.length < 10) return
        length = Number(pending.readBigUInt64BE(2))
        at = 10
      }
      const mask = masked ? pending.subarray(at, at + 4) : undefined
      if (masked) at += 4
      if (pending.length < at + length) return
      const head = Buffer.from(pending.subarray(at, at + Math.min(6, length)))
      if (mask) for (let i = 0; i < head.length; i++) head[i] = head[i]! ^ mask[i % 4]!
      // A msgpack array whose first element is the 4-character string "ping" or "pong".
      const heartbeat =
        (head[0]! & 0xf0) === 0x90 && head[1] === 0xa4 && /^p[io]ng$/.test(head.subarray(2, 6).toString())
      if (!heartbeat) count(at + length)
      pending = pending.subarray(at + length)
    }
  }
}
