/** The dashboard's style sheet (inline in the page; no build step). @module */
export const DASHBOARD_CSS = `
:root { --bg: #f6f7f9; --fg: #1d2330; --muted: #5f6b7a; --card: #fff; --line: #dde2e8;
  --alive: #1f9d55; --dead: #d64545; --pending: #c98a00; --draining: #6b5bd6; --accent: #2f6fdf; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: var(--bg); color: var(--fg);
  overflow-wrap: anywhere; }
header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: baseline;
  padding: .75rem 1rem; background: var(--fg); color: #fff; }
header h1 { font-size: 1.1rem; margin: 0; }
header .meta { color: #c9d1dc; font-size: .85rem; }
#conn[data-live="yes"] { color: #8ee0a8; } #conn[data-live="no"] { color: #ffb3b3; }
main { display: grid; gap: 1rem; padding: 1rem;
  grid-template-columns: repeat(auto-fit, minmax(min(100%, 560px), 1fr)); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: .75rem 1rem; min-width: 0; }
section h2 { font-size: 1rem; margin: 0 0 .5rem; }
section.wide { grid-column: 1 / -1; }
#fleet { display: grid; gap: .75rem;
  grid-template-columns: repeat(auto-fill, minmax(min(100%, 260px), 1fr)); }
.replica { border: 1px solid var(--line); border-left: 6px solid var(--muted); border-radius: 6px;
  padding: .5rem .75rem; min-width: 0; }
.replica[data-state="alive"] { border-left-color: var(--alive); }
.replica[data-state="dead"] { border-left-color: var(--dead); background: #fff5f5; }
.replica[data-state="pending"] { border-left-color: var(--pending); }
.replica[data-state="draining"] { border-left-color: var(--draining); }
.replica h3 { margin: 0; font-size: 1rem; display: flex; justify-content: space-between; gap: .5rem; }
.badge { font-size: .75rem; padding: 0 .4rem; border-radius: 4px; color: #fff;
  background: var(--muted); white-space: nowrap; }
.badge.alive { background: var(--alive); } .badge.dead { background: var(--dead); }
.badge.pending { background: var(--pending); } .badge.draining { background: var(--draining); }
.reason { color: var(--muted); font-size: .8rem; margin: .2rem 0; }
dl { display: grid; grid-template-columns: auto 1fr; gap: 0 .75rem; margin: .3rem 0; font-size: .85rem; }
dt { color: var(--muted); } dd { margin: 0; }
.bar { height: 6px; background: var(--line); border-radius: 3px; overflow: hidden; }
.bar > i { display: block; height: 100%; background: var(--accent); }
.spark { display: flex; gap: .5rem; margin-top: .3rem; }
.spark figure { margin: 0; flex: 1; min-width: 0; font-size: .7rem; color: var(--muted); }
.spark svg { width: 100%; height: 28px; display: block; }
button { font: inherit; padding: .2rem .6rem; border: 1px solid var(--line); border-radius: 4px;
  background: #eef2f8; cursor: pointer; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: .8rem; width: 100%; }
th, td { border-bottom: 1px solid var(--line); padding: .2rem .4rem; text-align: left;
  vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
#map svg { width: 100%; height: auto; display: block; background: #eaf1fb; border-radius: 6px; }
#events { list-style: none; margin: 0; padding: 0; max-height: 320px; overflow-y: auto; }
#events li { padding: .2rem 0; border-bottom: 1px solid var(--line); font-size: .85rem; }
#events li .kind { display: inline-block; min-width: 4.5rem; font-weight: 600; }
#events li[data-kind="upload"] .kind { color: var(--alive); }
#events li[data-kind="purge"] .kind, #events li[data-kind="delete"] .kind { color: var(--dead); }
#events li[data-kind="action"] .kind { color: var(--draining); }
form { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: .3rem 0; }
input { font: inherit; padding: .2rem .4rem; min-width: 0; flex: 1 1 10rem; }
#result { font-size: .8rem; color: var(--muted); white-space: pre-wrap; }
.ok { color: var(--alive); } .bad { color: var(--dead); }
@media (max-width: 480px) {
  main { padding: .5rem; gap: .5rem; }
  section { padding: .5rem; }
}
`;
