/** The dashboard's style sheet (served as /ui/style.css; the CSP forbids inline styles). */
export const DASHBOARD_CSS: string = `:root {
  --fg: #1d232a; --muted: #5f6b76; --line: #d5dbe1; --bg: #f6f8fa; --card: #fff;
  --ok: #2f7d4f; --warn: #a86a00; --bad: #b3261e; --info: #2a5db0;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg);
}
body { margin: 0; }
header { display: flex; align-items: baseline; gap: 1.5em; padding: .6em 1.2em; background: var(--card); border-bottom: 1px solid var(--line); }
h1 { font-size: 1.3em; margin: 0; }
h2 { font-size: 1.05em; margin: 0 0 .5em; }
main { padding: 1em 1.2em; display: grid; gap: 1em; max-width: 1200px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .8em 1em; }
.muted { color: var(--muted); }
.mono, code { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: .92em; }
.problem { margin: 0; padding: .6em 1em; border-radius: 6px; background: #fdecea; color: var(--bad); border: 1px solid #f3c2bd; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; margin: 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; }
.state { display: inline-block; padding: 0 .55em; border-radius: 1em; font-weight: 600; color: #fff; background: var(--muted); }
.state[data-state="active"], .badge[data-ok="true"] { background: var(--ok); }
.state[data-state="isolated"], .badge[data-ok="false"] { background: var(--bad); }
.state[data-state="catching-up"], .state[data-state="verifying"] { background: var(--warn); }
.state[data-state="starting"] { background: var(--info); }
.badge { display: inline-block; padding: 0 .5em; border-radius: 1em; color: #fff; font-size: .9em; background: var(--muted); }
.badge.quarantined { background: var(--bad); }
.peer { border-top: 1px solid var(--line); padding: .7em 0; display: grid; grid-template-columns: minmax(14em, 1fr) minmax(16em, 1.2fr) minmax(14em, 1fr); gap: 1em; }
.peer:first-child { border-top: 0; }
.peer h3 { margin: 0 0 .3em; font-size: 1em; }
.peer p { margin: .15em 0; }
.lag { display: grid; grid-template-columns: max-content max-content max-content; gap: 0 .8em; }
.lag .num { font-variant-numeric: tabular-nums; text-align: right; }
.spark { display: block; width: 100%; max-width: 260px; height: 36px; margin-top: .3em; background: var(--bg); border-radius: 3px; }
.spark polyline { fill: none; stroke-width: 1.5; vector-effect: non-scaling-stroke; }
.spark .in { stroke: var(--info); }
.spark .out { stroke: var(--warn); }
.legend-in { color: var(--info); }
.legend-out { color: var(--warn); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .25em .6em .25em 0; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 500; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.values { list-style: none; margin: 0; padding: 0; }
.values li { margin: .15em 0; }
.values .value { font-family: ui-monospace, Menlo, monospace; background: var(--bg); padding: 0 .3em; border-radius: 3px; }
button { font: inherit; padding: .1em .7em; border: 1px solid var(--line); border-radius: 4px; background: var(--card); cursor: pointer; }
button:hover { border-color: var(--muted); }
input { font: inherit; padding: .15em .4em; border: 1px solid var(--line); border-radius: 4px; min-width: 18em; }
progress { width: 100%; max-width: 420px; height: .9em; }
#reconciliation-peers { margin: .4em 0 0; padding-left: 1.2em; }
`
