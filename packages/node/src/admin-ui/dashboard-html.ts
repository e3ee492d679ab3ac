import { DASHBOARD_POLL_MS } from './dashboard-script.js'

/**
 * The dashboard's page: a skeleton the script fills. No inline script or style (the
 * Content-Security-Policy forbids both); every dynamic value is set as text by the script,
 * never as markup, since conflict values and document ids are written by applications.
 */
export const DASHBOARD_HTML: string = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dru dashboard</title>
<link rel="icon" href="/ui/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/ui/style.css">
<script src="/ui/app.js" defer></script>
</head>
<body data-poll-ms="${DASHBOARD_POLL_MS}" data-polls="0" data-renders="0">
<header>
  <h1>dru <span id="self-id">…</span></h1>
  <p id="freshness" class="muted">connecting…</p>
</header>
<main>
  <p id="problem" class="problem" hidden></p>
  <section id="self" aria-labelledby="self-title">
    <h2 id="self-title">This DRU</h2>
    <dl class="facts">
      <dt>state</dt><dd><span id="self-state" class="state">…</span> <span id="self-since" class="muted"></span></dd>
      <dt>writer origin</dt><dd id="self-origin"></dd>
      <dt>writable</dt><dd id="self-writable"></dd>
      <dt>events in log</dt><dd id="self-events"></dd>
      <dt>fingerprint</dt><dd id="self-digest" class="mono"></dd>
      <dt>open conflicts</dt><dd id="self-conflicts"></dd>
    </dl>
  </section>
  <section id="reconciliation" aria-labelledby="reconciliation-title" hidden>
    <h2 id="reconciliation-title">Reconciliation after a heal</h2>
    <p id="reconciliation-summary"></p>
    <progress id="reconciliation-progress" max="1" value="0"></progress>
    <ul id="reconciliation-peers"></ul>
  </section>
  <section aria-labelledby="peers-title">
    <h2 id="peers-title">Peers</h2>
    <p class="muted">What this DRU knows of each peer. In: events the peer holds that we lack; out: ours it lacks. Seconds out: age of our oldest event it has not acknowledged; seconds in: how long this page has seen us lacking its events (a lower bound: the peer's own dashboard shows the exact age).</p>
    <div id="peers"></div>
  </section>
  <section aria-labelledby="conflicts-title">
    <h2 id="conflicts-title">Open conflicts</h2>
    <p id="conflicts-empty" class="muted">none</p>
    <table id="conflicts" hidden>
      <thead><tr><th>id</th><th>document</th><th>field</th><th>values (writer)</th><th>detected</th></tr></thead>
      <tbody></tbody>
    </table>
    <p id="resolve-result" class="muted" role="status"></p>
  </section>
  <section id="token-section" aria-labelledby="token-title">
    <h2 id="token-title">Admin token</h2>
    <p class="muted">Resolving a conflict needs the DRU's admin token when it has one, and off loopback every read does. It is kept in this tab only (sessionStorage) and sent as <code>authorization: Bearer</code> to this DRU alone.</p>
    <form id="token-form" autocomplete="off">
      <input id="token" type="password" autocomplete="off" placeholder="admin token" aria-label="admin token" spellcheck="false">
      <button id="token-save" type="submit">use for this tab</button>
      <button id="token-forget" type="button">forget</button>
      <span id="token-state" class="muted"></span>
    </form>
  </section>
</main>
</body>
</html>
`
