import { canonicalBytesFast } from '../packages/core/dist/event-bytes.js'
import { sha256Hex } from '../packages/core/dist/sha256.js'
import { encodeHlc } from '@dru/core'
import * as crypto from 'node:crypto'
const N = 1_000_000
const change = crypto.randomBytes(200)
const prev = 'ab'.repeat(32)
const hlcs = Array.from({ length: 1000 }, (_, i) => encodeHlc({ wall: 1_700_000_000_000 + i, counter: i, node: 'a/1' }))
const docs = Array.from({ length: 1000 }, (_, i) => `doc-${i}`)
function time(name, f) { for (let r = 0; r < 3; r++) { const t = performance.now(); let x = 0; for (let i = 0; i < N; i++) x += f(i); const ns = (performance.now() - t) * 1e6 / N; if (r === 2) console.log(name, ns.toFixed(0), 'ns', x > 0 ? '' : '') } }
time('canonical', (i) => canonicalBytesFast(1, 'a/1', i + 1, hlcs[i % 1000], docs[i % 1000], change, prev).byteLength)
const buf = canonicalBytesFast(1, 'a/1', 5, hlcs[0], docs[0], change, prev).slice()
time('sha256Hex', () => sha256Hex(buf).length)
time('hash-binary', () => crypto.hash('sha256', buf, 'binary').length)
time('hash-buffer', () => crypto.hash('sha256', buf, 'buffer').length)
time('both', (i) => sha256Hex(canonicalBytesFast(1, 'a/1', i + 1, hlcs[i % 1000], docs[i % 1000], change, prev)).length)
time('encodeHlc', (i) => encodeHlc({ wall: 1_700_000_000_000 + i, counter: i, node: 'a/1' }).length)
const big = new Uint8Array(4096); big.set(buf)
time('hash-subarray-of-4096', () => sha256Hex(big.subarray(0, buf.byteLength)).length)
time('hash-of-slice-copy', (i) => sha256Hex(canonicalBytesFast(1, 'a/1', i + 1, hlcs[i % 1000], docs[i % 1000], change, prev).slice()).length)
const bigB = Buffer.alloc(4096); bigB.set(buf)
time('hash-Buffer-subarray', () => sha256Hex(bigB.subarray(0, buf.byteLength)).length)
const dv = new DataView(big.buffer, 0, buf.byteLength)
time('hash-DataView', () => sha256Hex(dv).length)
time('both-again', (i) => sha256Hex(canonicalBytesFast(1, 'a/1', i + 1, hlcs[i % 1000], docs[i % 1000], change, prev)).length)
