// Raw ws ceiling's receiving end: counts bytes and reports once it has `expect` of them.
import { WebSocketServer } from 'ws'

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 64 << 20 })
wss.on('listening', () => process.send({ port: wss.address().port }))
let expect = Infinity
let got = 0
process.on('message', (m) => {
  if (m.expect !== undefined) {
    expect = m.expect
    got = 0
    process.send({ armed: true })
  }
})
wss.on('connection', (ws) => {
  ws.on('message', (data) => {
    got += data.length
    if (got >= expect) {
      process.send({ done: got })
      expect = Infinity
    }
  })
})
process.on('disconnect', () => process.exit(0))
