/**
 * `GET /_proxy/metrics`: the proxy's figures in Prometheus text format. Per server (label
 * `server`): the latency estimate, the upstream latency histogram, requests in flight, requests and failures so far, whether it
 * is ejected; for the proxy: requests by how they were routed, server connections opened and
 * reused, the client listener's counters and the process's memory.
 *
 * @module
 */

import type { Exposition } from "../common/prometheus.ts";
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

/** Writes the proxy's figures into `e` (prefix `nearcast_proxy`). */
export function writeProxyMetrics(
  e: Exposition,
  servers: readonly ServerState[],
  counters: ProxyCounters,
  upstream: { connects: number; reused: number },
  mode: string,
  now: number,
): void {
  const per = (f: (s: ServerState) => number) =>
    servers.map((s) => [{ server: s.id }, f(s)] as const);
  e.gauge(
    "server_latency_seconds",
    "Peak-EWMA latency estimate (time to response head), seconds; NaN before a sample.",
    per((s) => s.latency.value === null ? NaN : s.latency.value / 1000),
  );
  e.gauge("server_in_flight", "Requests in flight to the server.", per((s) => s.outstanding));
  e.gauge("server_ejected", "1 while the server is ejected.", per((s) => s.ejected(now) ? 1 : 0));
  e.counter(
    "server_requests_total",
    "Requests sent to the server, by the mode that chose it.",
    servers.map((s) => [{ server: s.id, mode }, s.requests] as const),
  );
  e.counter("server_failures_total", "Failures charged to the server.", per((s) => s.failures));
  e.histogram(
    "upstream_latency_seconds",
    "Time to the response head of requests forwarded to a server (probes excluded).",
    servers.map((s) => [{ server: s.id }, s.headSeconds] as const),
  );
  e.counter("requests_total", "Requests by how they were handled.", [
    [{ outcome: "cdn" }, counters.cdn],
    [{ outcome: "cdn_retried" }, counters.retried],
    [{ outcome: "cdn_failed" }, counters.failed],
    [{ outcome: "direct" }, counters.direct],
    [{ outcome: "refused" }, counters.refused],
  ]);
  e.counter(
    "upstream_connects_total",
    "Server connections opened (probes included).",
    upstream.connects,
  );
  e.counter(
    "upstream_reused_total",
    "Requests sent on a kept-alive server connection.",
    upstream.reused,
  );
}
