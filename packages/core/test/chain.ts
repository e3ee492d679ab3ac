import { GENESIS_HASH, encodeHlc, sealEvent, type DruEvent, type Origin } from '../src/index.js'

/** `n` sealed events of `origin`, seqs 1…n, each linked to the one before it; a few small documents, distinct changes. */
export function chain(n: number, origin = 'a/1'): DruEvent[] {
  const out: DruEvent[] = []
  let prev = GENESIS_HASH
  for (let seq = 1; seq <= n; seq++) {
    const e = sealEvent({
      origin: origin as Origin,
      seq,
      hlc: encodeHlc({ wall: 1_700_000_000_000 + seq, counter: 0, node: origin }),
      docId: `doc-${seq % 3}`,
      change: new Uint8Array(Array.from({ length: 20 + seq }, (_, i) => (i * seq) & 0xff)),
      prev,
    })
    out.push(e)
    prev = e.hash
  }
  return out
}
