/**
 * The dashboard page: static HTML with its style sheet and script inline. The script opens
 * `/dashboard/events` and redraws from each `state` event (no reload, no library).
 *
 * @module
 */
import { DASHBOARD_CSS } from "./_page_css.ts";
import { DASHBOARD_JS } from "./_page_js.ts";

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Nearcast dashboard</title>
<style>${DASHBOARD_CSS}</style>
</head>
<body>
<header>
  <h1>Nearcast dashboard</h1>
  <span class="meta">zone <b id="zone">?</b> · policy <b id="policy">?</b></span>
  <span class="meta" id="conn" data-live="no">connecting…</span>
  <span class="meta"><a href="/" style="color:inherit">control API</a></span>
</header>
<main>
  <section class="wide"><h2>Fleet</h2><div id="fleet"></div></section>
  <section id="map"><h2>Map</h2><div id="mapbox"></div></section>
  <section><h2>Events <small>(uploads, purges, state changes, actions)</small></h2><ul id="events"></ul></section>
  <section><h2>Latest routing decisions</h2><div class="scroll" id="decisions"></div></section>
  <section><h2>RTT matrix <small>(ms: measured / from geography)</small></h2><div class="scroll" id="matrix"></div></section>
  <section><h2>Replication</h2><div class="scroll" id="replication"></div></section>
  <section>
    <h2>Actions <small>(need the admin token)</small></h2>
    <form id="tokenform" onsubmit="return false">
      <input id="token" type="password" placeholder="admin token" autocomplete="off">
    </form>
    <form id="purgeform">
      <input id="purge" placeholder="/path or /prefix/ (a trailing / purges a prefix)">
      <button type="submit">Purge</button>
    </form>
    <p class="reason">Drain / undrain: the button on each replica.</p>
    <div id="result"></div>
  </section>
</main>
<script>${DASHBOARD_JS}</script>
</body>
</html>
`;

/** The page's HTML (the same for every request). */
export function dashboardHtml(): string {
  return HTML;
}
