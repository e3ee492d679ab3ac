/**
 * How often the page polls `/status`, `/gaps` and `/conflicts`. Two polls a second keep a
 * change on screen within a second (a poll starts at most 500 ms after it, and answers in a
 * few ms on a DRU); the three reads are cheap next to the DRU's own 100 ms lifecycle tick.
 */
export const DASHBOARD_POLL_MS = 500

/**
 * The dashboard's script (served as /ui/app.js). Plain browser JavaScript in a string, so
 * the package needs no bundler: it is checked by parsing it in a unit test and exercised in
 * headless Chromium by packages/node/test/admin-ui.test.ts. It writes every value with
 * `textContent` (never markup: conflict values come from applications), keeps the last
 * minute of lag per peer for the sparklines, and works out reconciliation progress from
 * the current session's counters: events received against what it still lacks.
 *
 * Written without backticks or dollar-brace so it can live in this template literal.
 */
export const DASHBOARD_SCRIPT = String.raw`(() => {
  'use strict'
  const POLL_MS = Number(document.body.dataset.pollMs) || 500
  // A DRU answers in milliseconds; a read this slow means it is stuck or gone.
  const REQUEST_TIMEOUT_MS = 4000
  // Samples kept per peer for the sparklines: a minute at two polls a second.
  const HISTORY = 120
  const TOKEN_KEY = 'dru-admin-token'
  const SVG_NS = 'http://www.w3.org/2000/svg'
  const ACTIVE_STATES = ['active', 'verifying']

  const byId = (id) => document.getElementById(id)
  const history = new Map()
  const inboundSince = new Map()
  const wasConnected = new Map()
  let reconciliation = null
  let polls = 0
  let renders = 0
  let failingSince = 0
  let lastRenderAt = 0
  let conflictsShown = ''

  // ---- token ---------------------------------------------------------------------------

  function token() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || ''
    } catch {
      return ''
    }
  }

  function showTokenState() {
    byId('token-state').textContent = token() ? 'a token is set for this tab' : 'no token set'
  }

  byId('token-form').addEventListener('submit', (e) => {
    e.preventDefault()
    const value = byId('token').value.trim()
    if (value) sessionStorage.setItem(TOKEN_KEY, value)
    byId('token').value = ''
    showTokenState()
  })
  byId('token-forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY)
    showTokenState()
  })

  // ---- requests ------------------------------------------------------------------------

  function requestHeaders(extra) {
    const headers = Object.assign({ accept: 'application/json' }, extra)
    const t = token()
    if (t) headers.authorization = 'Bearer ' + t
    return headers
  }

  async function request(method, path, body) {
    const abort = new AbortController()
    const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS)
    try {
      const init = { method, headers: requestHeaders(body === undefined ? {} : { 'content-type': 'application/json' }), cache: 'no-store', credentials: 'omit', signal: abort.signal }
      if (body !== undefined) init.body = JSON.stringify(body)
      const res = await fetch(path, init)
      const json = await res.json().catch(() => null)
      if (!res.ok) {
        const err = new Error((json && json.message) || 'HTTP ' + res.status)
        err.status = res.status
        err.code = json && json.code
        throw err
      }
      return json
    } catch (err) {
      if (err && err.name === 'AbortError') throw new Error('no answer within ' + REQUEST_TIMEOUT_MS / 1000 + ' s')
      throw err
    } finally {
      clearTimeout(timer)
    }
  }

  // ---- formatting ----------------------------------------------------------------------

  function clock(ms) {
    if (ms === null || ms === undefined || Number.isNaN(ms)) return '—'
    return new Date(ms).toLocaleTimeString([], { hour12: false })
  }

  function duration(ms) {
    const s = Math.max(0, Math.round(ms / 1000))
    if (s < 60) return s + ' s'
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s'
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min'
    return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h'
  }

  function sinceText(iso, now) {
    const ms = iso ? Date.parse(iso) : NaN
    return Number.isNaN(ms) ? 'unknown' : clock(ms) + ' (' + duration(now - ms) + ' ago)'
  }

  function seconds(s) {
    if (s === null || s === undefined) return '0'
    return s < 10 ? s.toFixed(1) : String(Math.round(s))
  }

  function valueText(v) {
    let text
    try {
      text = JSON.stringify(v)
    } catch {
      text = String(v)
    }
    if (text === undefined) text = String(v)
    return text.length > 200 ? text.slice(0, 200) + '…' : text
  }

  function writerOf(origin) {
    const slash = origin.lastIndexOf('/')
    return slash > 0 ? origin.slice(0, slash) : origin
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag)
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') node.textContent = v
      else if (k === 'class') node.className = v
      else if (k.startsWith('data-')) node.setAttribute(k, v)
      else node[k] = v
    }
    for (const c of children || []) if (c) node.append(c)
    return node
  }

  // ---- tracking between polls ----------------------------------------------------------

  function lagsOf(peer, gap) {
    return { inEvents: gap ? gap.weLack : 0, outEvents: gap ? gap.theyLack : peer.lagEvents }
  }

  function track(status, gapsByPeer, now) {
    const healed = []
    for (const p of status.peers) {
      const { inEvents, outEvents } = lagsOf(p, gapsByPeer.get(p.id))
      if (inEvents > 0 && p.connected) {
        if (!inboundSince.has(p.id)) inboundSince.set(p.id, now)
      } else if (inEvents === 0) inboundSince.delete(p.id)
      const inSeconds = inEvents > 0 && inboundSince.has(p.id) ? (now - inboundSince.get(p.id)) / 1000 : 0
      const samples = history.get(p.id) || []
      samples.push({ at: now, inEvents, outEvents, inSeconds, outSeconds: p.lagSeconds || 0 })
      if (samples.length > HISTORY) samples.splice(0, samples.length - HISTORY)
      history.set(p.id, samples)

      const before = wasConnected.get(p.id)
      wasConnected.set(p.id, p.connected)
      if (p.connected && before === false) healed.push(p)
    }
    trackReconciliation(status, gapsByPeer, healed, now)
  }

  /** New events stored from a peer's current session (its counters start with the session). */
  function newEventsIn(p) {
    return Math.max(0, (p.eventsIn || 0) - (p.duplicatesIn || 0))
  }

  /**
   * Progress of the reconciliation after a heal, for this DRU as a whole. Received: new
   * events stored from any peer since the heal (the same event from two peers counts once:
   * the second copy is a duplicate). To receive: the largest "received + still lacking"
   * seen, where still lacking is, per origin, the most any connected peer holds beyond us.
   * Sent counts per peer, since each needs its own copy of what it lacked.
   */
  function trackReconciliation(status, gapsByPeer, healed, now) {
    const connected = status.peers.filter((p) => p.connected)
    const openedMidway = reconciliation === null && renders === 0 && status.state === 'catching-up'
    const startedBy = healed.length > 0 && (reconciliation === null || reconciliation.doneAt) ? healed : openedMidway ? connected : []
    if (startedBy.length > 0) {
      // The heal is when the first of these sessions came up.
      reconciliation = { since: Math.min(now, ...startedBy.map((p) => Date.parse(p.since) || now)), peers: new Map(), toReceive: 0, doneAt: 0 }
    }
    const r = reconciliation
    if (r === null || r.doneAt) return
    if (connected.length === 0) {
      // Cut off again before it finished: the next heal starts over.
      reconciliation = null
      return
    }
    const lacking = new Map()
    for (const p of connected) {
      const gap = gapsByPeer.get(p.id)
      for (const o of gap ? gap.origins : []) lacking.set(o.origin, Math.max(lacking.get(o.origin) || 0, o.weLack))
      let peer = r.peers.get(p.id)
      if (!peer) {
        // A session older than the heal counted events before it: start from its count.
        const older = p.since && Date.parse(p.since) < r.since
        peer = { session: p.since, offset: older ? newEventsIn(p) : 0, carried: 0, toSend: 0, sent: 0, inEvents: 0, outEvents: 0 }
        r.peers.set(p.id, peer)
      }
      if (p.since !== peer.session) {
        peer.carried += peer.last - peer.offset
        peer.offset = 0
        peer.session = p.since
      }
      peer.last = newEventsIn(p)
      peer.received = peer.carried + peer.last - peer.offset
      const { inEvents, outEvents } = lagsOf(p, gap)
      peer.inEvents = inEvents
      peer.outEvents = outEvents
      peer.toSend = Math.max(peer.toSend, outEvents)
      peer.sent = peer.toSend - outEvents
    }
    const peers = [...r.peers.values()]
    r.received = peers.reduce((n, x) => n + x.received, 0)
    r.lacking = [...lacking.values()].reduce((n, x) => n + x, 0)
    r.toReceive = Math.max(r.toReceive, r.received + r.lacking)
    // A replaced session takes its counters along; what is no longer lacking has arrived.
    r.received = Math.max(r.received, r.toReceive - r.lacking)
    r.sent = peers.reduce((n, x) => n + x.sent, 0)
    r.toSend = peers.reduce((n, x) => n + x.toSend, 0)
    const outstanding = peers.reduce((n, x) => n + x.outEvents, 0)
    if (r.lacking === 0 && outstanding === 0 && ACTIVE_STATES.includes(status.state)) r.doneAt = now
  }

  // ---- rendering -----------------------------------------------------------------------

  function render(status, gaps, conflicts) {
    const now = Date.now()
    const gapsByPeer = new Map(gaps.peers.map((g) => [g.peer, g]))
    track(status, gapsByPeer, now)

    byId('self-id').textContent = status.id
    document.title = 'dru ' + status.id + ': ' + status.state
    const state = byId('self-state')
    state.textContent = status.state
    state.dataset.state = status.state
    byId('self-since').textContent = 'since ' + sinceText(status.since, now)
    byId('self-origin').textContent = status.origin || '—'
    byId('self-writable').textContent = status.writable === false ? 'no: restoring, until its own earlier events are back from peers' : 'yes'
    byId('self-events').textContent = status.log ? String(status.log.events) : '—'
    byId('self-digest').textContent = status.fingerprint ? status.fingerprint.digest : '—'
    byId('self-conflicts').textContent = String(status.conflictsOpen)

    renderPeers(status, gapsByPeer, now)
    renderReconciliation(status)
    renderConflicts(conflicts)

    renders += 1
    document.body.dataset.renders = String(renders)
    byId('freshness').textContent = 'updated ' + clock(now) + ' · every ' + POLL_MS + ' ms'
    byId('problem').hidden = true
  }

  function sparkline(samples, keys, label) {
    const svg = document.createElementNS(SVG_NS, 'svg')
    svg.setAttribute('class', 'spark')
    svg.setAttribute('viewBox', '0 0 ' + (HISTORY - 1) + ' 32')
    svg.setAttribute('preserveAspectRatio', 'none')
    svg.setAttribute('role', 'img')
    const max = Math.max(1, ...samples.map((s) => Math.max(...keys.map((k) => s[k.key]))))
    const title = document.createElementNS(SVG_NS, 'title')
    title.textContent = label + ' over the last ' + duration(samples.length * POLL_MS) + ' (top: ' + seconds(max) + ')'
    svg.setAttribute('aria-label', title.textContent)
    svg.append(title)
    for (const k of keys) {
      const line = document.createElementNS(SVG_NS, 'polyline')
      line.setAttribute('class', k.className)
      const offset = HISTORY - samples.length
      line.setAttribute('points', samples.map((s, i) => offset + i + ',' + (31 - (s[k.key] / max) * 29).toFixed(1)).join(' '))
      svg.append(line)
    }
    return svg
  }

  function renderPeers(status, gapsByPeer, now) {
    const list = byId('peers')
    if (status.peers.length === 0) {
      list.replaceChildren(el('p', { class: 'muted', text: 'No peers: this DRU runs alone.' }))
      return
    }
    list.replaceChildren(...status.peers.map((p) => renderPeer(p, gapsByPeer.get(p.id), now)))
  }

  function renderPeer(p, gap, now) {
    const { inEvents, outEvents } = lagsOf(p, gap)
    const samples = history.get(p.id) || []
    const last = samples[samples.length - 1]
    const membership = p.membership || 'member'

    const who = el('div', {}, [
      el('h3', {}, [
        el('span', { class: 'peer-id', text: p.id + ' ' }),
        el('span', { class: 'badge peer-connection', 'data-ok': String(p.connected), text: p.connected ? 'connected' : 'disconnected' }),
        membership !== 'member' ? el('span', { class: 'badge ' + membership, text: ' ' + membership }) : null,
      ]),
      el('p', { class: 'muted peer-url', text: p.url || 'dials us (no url configured)' }),
      // A DRU keeps no time for a session's end: the peer's last frame is when it went quiet.
      el('p', { class: 'peer-since', text: p.connected ? 'connected since ' + sinceText(p.since, now) : p.lastSeen ? 'disconnected since ' + sinceText(p.lastSeen, now) + ', its last frame' : 'not connected since this DRU started' }),
      el('p', { class: 'peer-last-seen', text: 'last seen ' + sinceText(p.lastSeen, now) }),
      // What the peer announced about itself in its latest heartbeat (the last heard when it is down).
      p.lifecycle
        ? el('p', { class: 'peer-lifecycle' }, [
            el('span', { text: p.connected ? 'its state ' : 'its last known state ' }),
            el('span', { class: 'state', 'data-state': p.lifecycle.state, text: p.lifecycle.state }),
            el('span', { class: 'muted', text: ' since ' + sinceText(p.lifecycle.since, now) }),
          ])
        : el('p', { class: 'peer-lifecycle muted', text: 'its state: not heard yet' }),
      el('p', { class: 'peer-membership', text: 'membership: ' + membership }),
      p.quarantine ? el('p', { class: 'peer-quarantine problem', text: 'quarantined: ' + [p.quarantine.code, p.quarantine.message].filter(Boolean).join(': ') }) : null,
      p.lastError && !p.connected ? el('p', { class: 'peer-error muted', text: 'last error: ' + p.lastError.code + ': ' + p.lastError.message }) : null,
      p.identityConflict ? el('p', { class: 'problem', text: 'runs twice: ' + p.identityConflict.origins.join(', ') }) : null,
    ])

    const stale = p.connected ? '' : ' (as last reported)'
    const lag = el('div', {}, [
      el('div', { class: 'lag' }, [
        el('span', { class: 'muted', text: 'lag' }),
        el('span', { class: 'muted', text: 'events' }),
        el('span', { class: 'muted', text: 'seconds' }),
        el('span', { class: 'legend-in', text: 'in (we lack)' }),
        el('span', { class: 'num lag-in-events', text: String(inEvents) + stale }),
        el('span', { class: 'num lag-in-seconds', text: inEvents > 0 && last && last.inSeconds > 0 ? '≥ ' + seconds(last.inSeconds) : p.connected || inEvents === 0 ? '0' : '?' }),
        el('span', { class: 'legend-out', text: 'out (they lack)' }),
        el('span', { class: 'num lag-out-events', text: String(outEvents) }),
        el('span', { class: 'num lag-out-seconds', text: seconds(p.lagSeconds) }),
      ]),
      sparkline(samples, [{ key: 'inEvents', className: 'in' }, { key: 'outEvents', className: 'out' }], 'lag in events (blue: in, amber: out)'),
      sparkline(samples, [{ key: 'inSeconds', className: 'in' }, { key: 'outSeconds', className: 'out' }], 'lag in seconds (blue: in, amber: out)'),
    ])

    const origins = gap ? gap.origins : []
    const gapView = origins.length === 0
      ? el('p', { class: 'muted gaps-none', text: p.connected ? 'nothing missing either way' : 'nothing missing, as last reported' })
      : el('table', { class: 'gaps' }, [
          el('thead', {}, [el('tr', {}, ['origin', 'we lack', 'they lack', 'we hold', 'they hold'].map((h) => el('th', { text: h })))]),
          el('tbody', {}, origins.map((o) => el('tr', { class: 'gap-row', 'data-origin': o.origin }, [
            el('td', { class: 'mono', text: o.origin }),
            el('td', { class: 'num gap-we-lack', text: String(o.weLack) }),
            el('td', { class: 'num gap-they-lack', text: String(o.theyLack) }),
            el('td', { class: 'num', text: String(o.local) }),
            el('td', { class: 'num', text: String(o.remote) }),
          ]))),
        ])

    return el('div', { class: 'peer', 'data-peer': p.id, 'data-connected': String(p.connected) }, [who, lag, el('div', {}, [el('h3', { text: 'what each side lacks, by origin' }), gapView])])
  }

  function renderReconciliation(status) {
    const section = byId('reconciliation')
    const r = reconciliation
    section.hidden = r === null
    if (r === null) return
    const total = r.toReceive + r.toSend
    const progress = r.doneAt ? 1 : total === 0 ? 0 : Math.min(1, (r.received + r.sent) / total)
    byId('reconciliation-progress').value = progress
    section.dataset.done = String(Boolean(r.doneAt))
    byId('reconciliation-summary').textContent = r.doneAt
      ? 'caught up at ' + clock(r.doneAt) + ', ' + duration(r.doneAt - r.since) + ' after the heal: received ' + r.received + ' events, sent ' + r.sent
      : status.state + ' since the heal at ' + clock(r.since) + ': received ' + r.received + ' of ' + r.toReceive + ' events, sent ' + r.sent + ' of ' + r.toSend + ' (' + Math.floor(progress * 100) + '%)'
    byId('reconciliation-peers').replaceChildren(
      ...[...r.peers.entries()].map(([id, x]) => el('li', { 'data-peer': id, text: id + ': received ' + x.received + ', it holds ' + x.inEvents + ' more we lack; sent ' + x.sent + ' of ' + x.toSend + ' it lacked' })),
    )
  }

  function renderConflicts(conflicts) {
    // Rebuilt only when the list changes, so a click on "keep" is never lost to a redraw.
    const signature = JSON.stringify(conflicts)
    if (signature === conflictsShown) return
    conflictsShown = signature
    byId('conflicts-empty').hidden = conflicts.length > 0
    byId('conflicts').hidden = conflicts.length === 0
    byId('conflicts').tBodies[0].replaceChildren(...conflicts.map((c) => el('tr', { class: 'conflict', 'data-conflict': String(c.id) }, [
      el('td', { class: 'num', text: String(c.id) }),
      el('td', { class: 'mono conflict-doc', text: c.docId }),
      el('td', { class: 'mono conflict-path', text: c.path.join('.') }),
      el('td', {}, [el('ul', { class: 'values' }, c.values.map((v, i) => el('li', { class: 'conflict-value', 'data-writer': writerOf(v.origin) }, [
        el('span', { class: 'value', text: valueText(v.value) }),
        el('span', { class: 'muted writer', text: ' by ' + writerOf(v.origin) + ' (' + v.origin + ') ' }),
        el('button', { type: 'button', class: 'resolve', text: 'keep', title: 'resolve conflict ' + c.id + ' with this value', onclick: () => resolve(c, i) }),
      ])))]),
      el('td', { text: clock(c.detectedAt) }),
    ])))
  }

  async function resolve(conflict, index) {
    const result = byId('resolve-result')
    result.textContent = 'resolving conflict ' + conflict.id + '…'
    try {
      const answer = await request('POST', '/conflicts/' + encodeURIComponent(String(conflict.id)) + '/resolve', { value: conflict.values[index].value })
      result.textContent = 'conflict ' + answer.id + ' resolved' + (answer.event ? ' by event ' + answer.event.origin + ' #' + answer.event.seq : '')
      conflictsShown = ''
    } catch (err) {
      result.textContent = err.status === 401 ? 'resolving needs the admin token: enter it below (' + err.message + ')' : 'could not resolve conflict ' + conflict.id + ': ' + err.message
    }
  }

  function showProblem(err, now) {
    const problem = byId('problem')
    problem.hidden = false
    const why = err.status === 401 ? 'this admin API needs its token for reads (off loopback): enter it under "Admin token"' : err.message
    problem.textContent = 'cannot read this DRU since ' + clock(failingSince) + ' (' + duration(now - failingSince) + '): ' + why + '. What is shown is from ' + clock(lastRenderAt || NaN) + '.'
  }

  // ---- the loop ------------------------------------------------------------------------

  async function poll() {
    const started = Date.now()
    polls += 1
    document.body.dataset.polls = String(polls)
    try {
      const [status, gaps, conflicts] = await Promise.all([request('GET', '/status'), request('GET', '/gaps'), request('GET', '/conflicts')])
      failingSince = 0
      render(status, gaps, conflicts)
      lastRenderAt = Date.now()
    } catch (err) {
      const now = Date.now()
      if (!failingSince) failingSince = now
      showProblem(err, now)
    }
    // A fixed rate, not a fixed pause: a slow answer does not stretch the interval.
    setTimeout(poll, Math.max(0, POLL_MS - (Date.now() - started)))
  }

  showTokenState()
  void poll()
})()
`
