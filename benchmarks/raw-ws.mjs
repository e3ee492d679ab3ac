// Shared by the sync benchmarks: raw ws moving the same bytes as a catch-up, the ceiling its
// ratio is taken against.
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import WebSocket, { WebSocketServer } from 'ws'

const SINK = fileURLToPath(new URL('../packages/sync/test/fixtures/raw-ws-sink.mjs', import.meta.url))
const WINDOW = 8 << 20

/** `promise`, or a failure if the sink exits first (a sink that cannot dial would hang the run). */
function untilSinkDies(sink, promise) {
  return new Promise((resolve, reject) => {
    const died = (code, signal) => reject(new Error(`the raw ws sink exited (${signal ?? code})`))
    sink.once('exit', died)
    promise.then((v) => {
      sink.off('exit', died)
      resolve(v)
    })
  })
}

/**
 * Moves `bytes` in frames of `frameBytes` through one loopback WebSocket to a sink process that
 * acks each frame, at most 8 MiB unacked; returns ms. `from` is the side this process sends
 * from: 'server' (the sink dials, as a DRU catching up does, so the frames go unmasked) or
 * 'client' (masked byte by byte, as a client's frames must be).
 */
export async function rawWs(bytes, frameBytes, from) {
  let server
  let sink
  let ws
  try {
    if (from === 'server') {
      server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
      await new Promise((r) => server.once('listening', r))
      sink = fork(SINK, [String(server.address().port)])
      ws = await untilSinkDies(sink, new Promise((r) => server.once('connection', r)))
    } else {
      sink = fork(SINK, [])
      const port = await untilSinkDies(sink, new Promise((r) => sink.once('message', (m) => r(m.port))))
      ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false })
      await new Promise((r) => ws.once('open', r))
    }
    sink.send({ expect: bytes })
    const payload = Buffer.alloc(frameBytes, 7)
    const t0 = performance.now()
    const done = new Promise((r) => sink.on('message', (m) => m.done && r()))
    let sent = 0
    let inflight = 0
    const pump = () => {
      while (sent < bytes && inflight < WINDOW) {
        ws.send(payload)
        sent += payload.length
        inflight += payload.length
      }
    }
    ws.on('message', () => {
      inflight -= payload.length
      pump()
    })
    pump()
    await untilSinkDies(sink, done)
    return performance.now() - t0
  } finally {
    ws?.close()
    server?.close()
    sink?.kill('SIGKILL')
  }
}
