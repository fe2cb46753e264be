/**
 * `GET /metrics` on the DNS server's control API (Prometheus text format, prefix
 * `nearcast_dns`): questions by type, responses by RCODE, truncated answers, answers by
 * steering basis, per-replica state and heartbeat age, heartbeats, RTT measurement requests
 * and the RTT histogram, the transports' and the control listener's counters, memory.
 *
 * @module
 */
import { Rcode, Type } from "../../dnswire/types.ts";
import { BASES, type SteeringEngine } from "../../dns/policy.ts";
import type { DnsServer } from "../../dns/server.ts";
import { Exposition, metricsResponse } from "../../common/prometheus.ts";
import { type LimitedServer, writeListenerMetrics } from "../../common/http_server.ts";
import { writeMemoryGauges } from "../../common/process_metrics.ts";
import type { FleetMonitor } from "./monitor.ts";
import type { FleetRegistry, FleetState } from "./registry.ts";

const STATES: readonly FleetState[] = ["alive", "pending", "dead", "draining"];
const TYPE_NAMES = new Map<number, string>(Object.entries(Type).map(([k, v]) => [v, k]));

/** What {@link writeDnsMetrics} reads. */
export interface DnsMetricsSources {
  dns: DnsServer;
  registry: FleetRegistry;
  policy: SteeringEngine;
  monitor: FleetMonitor;
  now?: () => number;
}

/** Writes the DNS server's figures into `e` (prefix `nearcast_dns`). */
export function writeDnsMetrics(e: Exposition, s: DnsMetricsSources): void {
  const c = s.dns.handler.counters;
  const types: [Record<string, string>, number][] = [];
  let other = 0;
  c.qtypes.forEach((n, t) => {
    if (n === 0) return;
    const name = TYPE_NAMES.get(t);
    if (name === undefined) other += n;
    else types.push([{ type: name }, n]);
  });
  if (other > 0) types.push([{ type: "other" }, other]);
  e.counter("queries_total", "Messages handed to the handler.", c.queries);
  e.counter("questions_total", "Parsed questions by QTYPE (other: types we do not name).", types);
  e.counter(
    "responses_total",
    "Responses by RCODE.",
    Object.entries(Rcode).map(([name, code]) => [{ rcode: name }, c.rcodes[code]] as const),
  );
  e.counter(
    "truncated_total",
    "Responses with TC set (trimmed to the client's size).",
    c.truncated,
  );
  e.counter("dropped_total", "Messages answered with nothing.", c.dropped);
  e.counter("errors_total", "Exceptions caught while answering.", c.errors);
  e.counter(
    "answers_total",
    "Steered answers by what ranked their first replica (measured RTT, geography, load, none).",
    BASES.map((b, i) => [{ basis: b }, s.policy.answersByBasis[i]] as const),
  );
  const now = (s.now ?? Date.now)();
  const entries = s.registry.entries();
  e.gauge(
    "replica_state",
    "1 for each replica's current state (alive, pending, dead, draining), 0 for the others.",
    entries.flatMap((r) =>
      STATES.map((st) => [{ replica: r.id, state: st }, r.state === st ? 1 : 0] as const)
    ),
  );
  e.gauge(
    "replica_heartbeat_age_seconds",
    "Time since each registered replica's last heartbeat.",
    entries.filter((r) => r.source === "registered" && r.lastHeartbeat !== null).map((r) =>
      [{ replica: r.id }, (now - r.lastHeartbeat!) / 1000] as const
    ),
  );
  const m = s.monitor.stats;
  e.counter("health_checks_total", "Health checks of replicas.", m.checks);
  e.counter("health_check_failures_total", "Failed health checks.", m.checkFailures);
  e.counter(
    "measurements_total",
    "RTT measurements requested (per client subnet).",
    m.measurements,
  );
  e.counter(
    "measurements_skipped_total",
    "Measurement requests skipped (one for that subnet is recent or in flight).",
    m.measurementsSkipped,
  );
  e.counter("probes_total", "Probe requests sent to replicas.", m.probes);
  e.counter("probe_failures_total", "Probe requests that failed.", m.probeFailures);
  e.histogram(
    "rtt_seconds",
    "Median RTTs replicas measured to client subnets.",
    s.monitor.rttSeconds,
  );
  const t = s.dns.stats();
  const events: [Record<string, string>, number][] = [];
  for (const [k, v] of Object.entries(t)) {
    const m = /^(udp|tcp)_(.+)$/.exec(k);
    if (m !== null && k !== "tcp_open") events.push([{ transport: m[1], event: m[2] }, v]);
  }
  e.counter("transport_events_total", "DNS socket counters by transport and event.", events);
  e.gauge("tcp_connections_open", "DNS over TCP connections open.", t.tcp_open ?? 0);
  e.counter(
    "oversized_datagrams_total",
    "UDP datagrams over 4096 bytes (answered FORMERR).",
    t.oversized ?? 0,
  );
  e.counter("rrl_responses_total", "UDP responses over the rate limit, by what was done.", [
    [{ action: "limited" }, t.rrl_limited ?? 0],
    [{ action: "slipped" }, t.rrl_slipped ?? 0],
    [{ action: "dropped" }, t.rrl_dropped ?? 0],
  ]);
}

/**
 * The control API's `GET /metrics`: the DNS server's figures (`o.metrics`), the heartbeat
 * socket's and the control listener's counters, and the process's memory.
 */
export function controlMetrics(
  o: { metrics?: (e: Exposition) => void },
  stats: { heartbeats: number; rejectedHeartbeats: number; badDatagrams: number },
  http: LimitedServer | null,
): Response {
  const e = new Exposition("nearcast_dns");
  o.metrics?.(e);
  e.counter("heartbeats_total", "Heartbeats accepted.", stats.heartbeats);
  e.counter("heartbeats_rejected_total", "Heartbeats rejected.", stats.rejectedHeartbeats);
  e.counter("heartbeat_bad_datagrams_total", "Unreadable heartbeat datagrams.", stats.badDatagrams);
  if (http !== null) writeListenerMetrics(e, http.stats, http.limits);
  writeMemoryGauges(e);
  return metricsResponse(e.text());
}
