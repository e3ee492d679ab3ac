/**
 * The chaos checker: pure, over the client history (JSONL records) and one final dump per
 * DRU taken after the final heal and quiescence. Each violation names its invariant
 * (RELIABILITY.md §3) so a report can be grepped: I2 LOST / I2 PHANTOM / I3 ONCE /
 * I4 CONVERGE / I5 FORK / I5 INCARNATION / I9 VV / I9 REGRESS / I1 ORPHAN / I6 RSS / I8 LIVE / I10 OBSERVABLE /
 * VERIFY.
 */

/** The DRU id of an origin `id/incarnation`. */
export const druOf = (origin) => origin.slice(0, origin.lastIndexOf('/'))

/** JSON with sorted keys: key order follows delivery order, so it is never compared raw. */
export function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(',')}}`
  }
  return JSON.stringify(v)
}

/**
 * @param history  records {process, type: invoke|ok|fail|info, f, value, time}; nemesis
 *                 records have process 'nemesis' (restore records carry value {dru, copyAt, before, after})
 * @param dumps    the fixture's GET /dump of every DRU
 * @param opts     {rssBoundKiB}
 * @returns {violations: Array<{invariant, message}>, stats}
 */
export function check(history, dumps, opts = {}) {
  const violations = []
  const v = (invariant, message) => violations.push({ invariant, message })
  const rssBoundKiB = opts.rssBoundKiB ?? 512 * 1024

  // ---- writes: the client's view -------------------------------------------------------
  const writes = new Map() // token -> {value, type, invokeAt, doneAt}
  for (const r of history) {
    if (r.f !== 'write') continue
    const tok = r.value.token
    if (r.type === 'invoke') writes.set(tok, { value: r.value, type: 'invoke', invokeAt: r.time })
    else {
      const w = writes.get(tok)
      if (!w) v('HISTORY', `completion without invoke for ${tok}`)
      else Object.assign(w, { type: r.type, doneAt: r.time, result: r.result })
    }
  }
  // A DRU restored from a stale copy may lose acks:0 writes it took after the copy: allowed.
  const restores = history.filter(
    (r) => r.process === 'nemesis' && (r.f === 'restore' || r.f === 'lost-disk') && r.type === 'info',
  )
  const diskLostAfter = (w) =>
    restores.some((r) => r.value.dru === w.value.dru && w.invokeAt >= r.value.copyAt && w.invokeAt <= r.time)
  const atRisk = (w) => w.value.acks === 0 && diskLostAfter(w)

  const present = (d, w) => Object.prototype.hasOwnProperty.call(d.docs[w.value.doc] ?? {}, w.value.token)
  let ok = 0
  let okAcks1 = 0
  let info = 0
  let fail = 0
  let lostAllowed = 0
  let acks1AcrossDiskLoss = 0
  let committedUnacked = 0
  for (const w of writes.values()) {
    if (w.type === 'ok') {
      ok++
      if (w.value.acks > 0) okAcks1++
      if (w.value.acks > 0 && diskLostAfter(w)) acks1AcrossDiskLoss++
      const missing = dumps.filter((d) => !present(d, w)).map((d) => d.id)
      if (missing.length === 0) continue
      if (atRisk(w) && missing.length === dumps.length) lostAllowed++
      else
        v(
          'I2 LOST',
          `ok write ${w.value.token} (acks:${w.value.acks} on ${w.value.dru}, doc ${w.value.doc}) missing on ${missing.join(',')}`,
        )
    } else if (w.type === 'fail') {
      fail++
      const on = dumps.filter((d) => present(d, w)).map((d) => d.id)
      if (on.length > 0)
        v('I2 PHANTOM', `failed write ${w.value.token} (${w.result?.code ?? ''}) present on ${on.join(',')}`)
    } else {
      info++
      // ACK_TIMEOUT means "committed locally, not acknowledged": it must be there like an
      // acks:0 ok write (so lost only with the writer's disk).
      if (w.type === 'info' && w.result?.code === 'ACK_TIMEOUT') {
        committedUnacked++
        const missing = dumps.filter((d) => !present(d, w)).map((d) => d.id)
        if (missing.length > 0 && !(diskLostAfter(w) && missing.length === dumps.length)) {
          v(
            'I2 LOST',
            `write ${w.value.token} answered ACK_TIMEOUT (committed on ${w.value.dru}) missing on ${missing.join(',')}`,
          )
        }
      }
    }
  }
  for (const d of dumps) {
    for (const [doc, json] of Object.entries(d.docs)) {
      for (const tok of Object.keys(json ?? {}))
        if (!writes.has(tok)) v('I2 PHANTOM', `${d.id} holds ${doc}.${tok}, which no client wrote`)
    }
  }

  // ---- convergence -----------------------------------------------------------------------
  const first = dumps[0]
  for (const d of dumps.slice(1)) {
    if (d.fingerprint && first.fingerprint && canonical(d.fingerprint) !== canonical(first.fingerprint))
      v('I4 CONVERGE', `fingerprint of ${d.id} differs from ${first.id}`)
    if (d.digest !== first.digest)
      v(
        'I4 CONVERGE',
        `state digest of ${d.id} (${d.digest.slice(0, 12)}) differs from ${first.id} (${first.digest.slice(0, 12)})`,
      )
    const docs = new Set([...Object.keys(d.docs), ...Object.keys(first.docs)])
    for (const doc of docs)
      if (canonical(d.docs[doc]) !== canonical(first.docs[doc]))
        v('I4 CONVERGE', `document ${doc} differs between ${d.id} and ${first.id}`)
  }
  for (const d of dumps)
    if (d.state !== 'active') v('I8 LIVE', `${d.id} is ${d.state}, not active, after the final heal`)

  // ---- exactly-once effects, forks, contiguity, log verification, memory ---------------
  const hashes = new Map()
  let remoteEvents = 0
  let remoteApplied = 0
  for (const d of dumps) {
    const effects = new Map(d.effects.map(([o, s, n]) => [`${o}#${s}`, n]))
    // Handler runs for other DRUs' events, compacted ones included (the effects table keeps them).
    for (const [o, , n] of d.effects) if (druOf(o) !== d.id) remoteApplied += n
    // Events at or below an origin's base were folded into snapshots (compaction) or arrived
    // as snapshot state (bootstrap): they are not in the log and their effects are not checked.
    const base = d.base ?? {}
    const below = (key) => {
      const i = key.lastIndexOf('#')
      return Number(key.slice(i + 1)) <= (base[key.slice(0, i)] ?? 0)
    }
    const inLog = new Set()
    const perOrigin = new Map()
    for (const [origin, seq, hash] of d.events) {
      const key = `${origin}#${seq}`
      inLog.add(key)
      const n = effects.get(key) ?? 0
      if (druOf(origin) !== d.id) {
        remoteEvents++
        if (n !== 1) v('I3 ONCE', `${d.id} ran the handler ${n}× for remote event ${key}`)
      } else if (origin === d.origin && n !== 0) v('I3 ONCE', `${d.id} ran the handler ${n}× for its own event ${key}`)
      else if (n > 1) v('I3 ONCE', `${d.id} ran the handler ${n}× for its earlier incarnation's event ${key}`)
      const seen = hashes.get(key)
      if (seen && seen.hash !== hash)
        v('I5 FORK', `${key} has hash ${seen.hash.slice(0, 12)} on ${seen.dru} and ${hash.slice(0, 12)} on ${d.id}`)
      else if (!seen) hashes.set(key, { hash, dru: d.id })
      // events come ordered by (origin, seq): each origin must run 1, 2, 3, … with no hole
      const prev = perOrigin.get(origin) ?? base[origin] ?? 0
      if (seq !== prev + 1) v('I9 VV', `${d.id}: ${origin} seq ${seq} follows ${prev} (a hole or a duplicate)`)
      perOrigin.set(origin, seq)
    }
    for (const key of effects.keys())
      if (!inLog.has(key) && !below(key)) v('I1 ORPHAN', `${d.id} has an effect for ${key}, which is not in its log`)
    const vv = d.fingerprint?.vv ?? {}
    for (const [origin, max] of perOrigin)
      if (vv[origin] !== max) v('I9 VV', `${d.id}: vv[${origin}] = ${vv[origin]} but the log holds up to ${max}`)
    for (const [origin, seq] of Object.entries(vv)) {
      if (!perOrigin.has(origin) && (base[origin] ?? 0) !== seq)
        v('I9 VV', `${d.id}: vv[${origin}] = ${seq} but the log holds none of it above its base ${base[origin] ?? 0}`)
    }
    if (!d.verify.ok) v('VERIFY', `${d.id}: verifyLog failed: ${d.verify.code} ${d.verify.message}`)
    if (d.maxRssKiB > rssBoundKiB)
      v(
        'I6 RSS',
        `${d.id}: peak RSS ${Math.round(d.maxRssKiB / 1024)} MiB over the bound ${Math.round(rssBoundKiB / 1024)} MiB`,
      )
  }

  // ---- observability: an isolated DRU reported no connected peer ----------------------
  for (const r of history.filter((x) => x.process === 'nemesis' && x.f === 'observe-isolated')) {
    if (r.value.connected.length > 0)
      v(
        'I10 OBSERVABLE',
        `${r.value.dru} cut off for ${r.value.heldMs} ms still reports ${r.value.connected.join(',')} connected (state ${r.value.state})`,
      )
  }

  // ---- VVs and acked VVs sampled during the run never go back within one process ---------
  // (a restore or a lost disk starts a new process, whose VV may legitimately be lower)
  const lastSample = new Map()
  const samples = history.filter((x) => x.process === 'monitor' && x.f === 'vv')
  for (const r of samples) {
    const { dru, pid, vv, acked } = r.value
    const key = `${dru}#${pid}`
    const prev = lastSample.get(key)
    if (prev) {
      for (const [o, n] of Object.entries(prev.vv))
        if ((vv[o] ?? 0) < n) v('I9 REGRESS', `${dru} (pid ${pid}): vv[${o}] went from ${n} to ${vv[o] ?? 0}`)
      for (const [peer, avv] of Object.entries(prev.acked ?? {})) {
        for (const [o, n] of Object.entries(avv)) {
          const now = acked?.[peer]?.[o] ?? 0
          if (now < n) v('I9 REGRESS', `${dru} (pid ${pid}): acked vv of ${peer} for ${o} went from ${n} to ${now}`)
        }
      }
    }
    lastSample.set(key, { vv, acked })
  }

  // ---- incarnations ----------------------------------------------------------------------
  // Every start writes under a fresh origin: a restored (or re-created) DRU must come up under
  // an origin no vector named before it came up, so it can never continue one another copy
  // may also continue.
  for (const r of restores) {
    const { dru, before, after } = r.value
    const seenBefore = after === before || samples.some((s) => s.time < r.time && (s.value?.vv?.[after] ?? 0) > 0)
    if (seenBefore)
      v(
        'I5 INCARNATION',
        `${dru} came up under ${after}, an origin that existed before (was ${before}): a copy could continue it`,
      )
  }

  return {
    violations,
    stats: {
      writes: writes.size,
      ok,
      okAcks1,
      info,
      fail,
      lostAllowed,
      acks1AcrossDiskLoss,
      committedUnacked,
      vvSamples: samples.length,
      events: hashes.size,
      remoteEventsApplied: remoteApplied,
      remoteEventsStored: remoteEvents,
      peakRssMiB: Math.max(...dumps.map((d) => d.maxRssKiB)) / 1024,
    },
  }
}
