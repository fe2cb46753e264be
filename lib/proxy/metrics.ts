/**
 * `GET /_proxy/metrics`: the proxy's figures in Prometheus text format. Per server (label
 * `server`): the latency estimate, requests in flight, requests and failures so far, whether it
 * is ejected; for the proxy: requests by how they were routed, server connections opened and
 * reused, and the client listener's counters (`listenerMetrics`).
 *
 * @module
 */

import type { ServerState } from "./server_state.ts";

/** Counters of the handler, by outcome. */
export interface ProxyCounters {
  /** Requests for the CDN's name answered by a server. */
  cdn: number;
  /** Of those, answered after a retry on the next server. */
  retried: number;
  /** Requests for the CDN's name that no server answered (502/503). */
  failed: number;
  /** Requests for other hosts forwarded, and refused. */
  direct: number;
  refused: number;
}

/** New zeroed {@link ProxyCounters}. */
export function newCounters(): ProxyCounters {
  return { cdn: 0, retried: 0, failed: 0, direct: 0, refused: 0 };
}

const label = (v: string) => v.replace(/["\\\n]/g, (c) => c === "\n" ? "\\n" : `\\${c}`);

/** The metrics text; `more` is appended (the listener's lines). */
export function renderMetrics(
  servers: readonly ServerState[],
  counters: ProxyCounters,
  upstream: { connects: number; reused: number },
  now: number,
  more = "",
): string {
  const out: string[] = [];
  const family = (name: string, type: string, help: string, rows: [string, number][]) => {
    out.push(`# HELP nearcast_proxy_${name} ${help}`, `# TYPE nearcast_proxy_${name} ${type}`);
    for (const [labels, v] of rows) out.push(`nearcast_proxy_${name}${labels} ${v}`);
  };
  const per = (f: (s: ServerState) => number) =>
    servers.map((s) => [`{server="${label(s.id)}"}`, f(s)] as [string, number]);
  family(
    "server_latency_ms",
    "gauge",
    "Peak-EWMA latency estimate (time to response head), ms; NaN before a sample.",
    per((s) => s.latency.value ?? NaN),
  );
  family(
    "server_in_flight",
    "gauge",
    "Requests in flight to the server.",
    per((s) => s.outstanding),
  );
  family(
    "server_ejected",
    "gauge",
    "1 while the server is ejected.",
    per((s) => s.ejected(now) ? 1 : 0),
  );
  family(
    "server_requests_total",
    "counter",
    "Requests sent to the server.",
    per((s) => s.requests),
  );
  family(
    "server_failures_total",
    "counter",
    "Failures charged to the server.",
    per((s) => s.failures),
  );
  family("requests_total", "counter", "Requests by how they were handled.", [
    ['{outcome="cdn"}', counters.cdn],
    ['{outcome="cdn_retried"}', counters.retried],
    ['{outcome="cdn_failed"}', counters.failed],
    ['{outcome="direct"}', counters.direct],
    ['{outcome="refused"}', counters.refused],
  ]);
  family("upstream_connects_total", "counter", "Server connections opened (probes included).", [[
    "",
    upstream.connects,
  ]]);
  family("upstream_reused_total", "counter", "Requests sent on a kept-alive server connection.", [[
    "",
    upstream.reused,
  ]]);
  return out.join("\n") + "\n" + more;
}
