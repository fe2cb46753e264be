/**
 * The dashboard's state as one JSON object, built once per tick and sent to every stream: the
 * fleet with each replica's own figures and sparkline history, client locations, the RTT
 * matrix (measured vs estimated from geography), the latest decisions with their explanation,
 * and the recent events.
 *
 * @module
 */
import { formatIp, parseCidr } from "../../../common/ip.ts";
import {
  type Explanation,
  KM_PER_RTT_MS,
  type SteeringEngine,
  subnetKey,
} from "../../../dns/policy.ts";
import type { SteeringClient } from "../../../dns/steering.ts";
import type { FleetRegistry } from "../registry.ts";
import type { RttCache } from "../rtt.ts";
import type { Decision } from "./decisions.ts";
import type { HubStats } from "./hub.ts";
import type { NodeView } from "./poller.ts";

/** Rows of the RTT matrix (client subnets) at most. */
export const MAX_MATRIX_ROWS = 12;
/** Decisions shown at most. */
export const MAX_DECISIONS_SHOWN = 10;

/** A dashboard event (state change, upload, deletion, purge, action). */
export interface DashEvent {
  seq: number;
  at: number;
  kind: string;
  text: string;
}

/** Per-replica sparkline samples, oldest first. */
export interface History {
  rps: number[];
  hit: number[];
}

/** What {@link buildSnapshot} reads. */
export interface SnapshotSources {
  zone: string | null;
  registry: FleetRegistry;
  policy: SteeringEngine;
  rtt: RttCache | null;
  answers: number;
  decisions: readonly Decision[];
  events: readonly DashEvent[];
  node: (id: string) => NodeView;
  history: (id: string) => History;
  hub: HubStats;
  tickMs: number;
  now: number;
}

function clientText(c: SteeringClient): string {
  return `${formatIp(c)}/${c.bits}`;
}

function clientOf(subnet: string): SteeringClient {
  const c = parseCidr(subnet);
  return { family: c.family, bytes: c.bytes, bits: c.prefix };
}

function round(x: number | null, digits = 1): number | null {
  if (x === null || !Number.isFinite(x)) return null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** See the module doc. */
export function buildSnapshot(s: SnapshotSources): Record<string, unknown> {
  const { registry, policy } = s;
  const entries = registry.entries();
  const ids = entries.map((e) => e.id);
  // Prices do not depend on the client: one explanation gives every replica's cost.
  const base = policy.explain({ family: 4, bytes: new Uint8Array(16), bits: 32 }, 4, 1);
  const cost = new Map(base.replicas.map((r) => [r.id, r]));
  const replicas = entries.map((e) => {
    const c = cost.get(e.id);
    return {
      id: e.id,
      source: e.source,
      state: e.state,
      reason: e.reason,
      since: e.since,
      address: e.address,
      port: e.port || null,
      lat: e.lat,
      lon: e.lon,
      provider: e.provider,
      costPerGiB: c?.costPerGiB ?? null,
      currency: c?.currency ?? "",
      heartbeatAgeMs: e.lastHeartbeat === null || e.source === "static"
        ? null
        : s.now - e.lastHeartbeat,
      rps: e.load?.rps ?? null,
      hitRatio: e.load?.hitRatio ?? null,
      cacheBytes: e.load?.cacheBytes ?? null,
      held: e.held.length,
      node: s.node(e.id),
      history: s.history(e.id),
    };
  });
  // Client subnets: those of the latest decisions, then the latest measured.
  const subnets: { key: string; client: SteeringClient; family: 4 | 6 }[] = [];
  const seen = new Set<string>();
  const add = (client: SteeringClient, family: 4 | 6) => {
    const key = subnetKey(client.family, client.bytes);
    if (seen.has(key) || subnets.length >= MAX_MATRIX_ROWS) return;
    seen.add(key);
    subnets.push({ key, client, family });
  };
  for (const d of s.decisions) add(d.client, d.family);
  for (const key of s.rtt?.latest(MAX_MATRIX_ROWS) ?? []) {
    const c = clientOf(key);
    add(c, c.family);
  }
  const explained = new Map<string, Explanation>();
  const explain = (key: string, client: SteeringClient, family: 4 | 6) => {
    let ex = explained.get(key);
    if (ex === undefined) {
      ex = policy.explain(client, family, s.answers);
      explained.set(key, ex);
    }
    return ex;
  };
  const rows = subnets.map(({ key, client, family }) => {
    const ex = explain(`${key} ${family}`, client, family);
    const by = new Map(ex.replicas.map((r) => [r.id, r]));
    return {
      subnet: key,
      location: ex.location,
      cells: ids.map((id) => {
        const r = by.get(id);
        return {
          measuredMs: round(r?.rttMs ?? null),
          samples: r?.rttSamples ?? 0,
          geoMs: r?.distanceKm == null ? null : round(r.distanceKm / KM_PER_RTT_MS),
        };
      }),
    };
  });
  const decisions = s.decisions.slice(0, MAX_DECISIONS_SHOWN).map((d) => {
    const key = clientText(d.client);
    const ex = explain(`${key} ${d.family}`, d.client, d.family);
    return {
      at: d.at,
      client: key,
      subnet: subnetKey(d.client.family, d.client.bytes),
      type: d.family === 4 ? "A" : "AAAA",
      answer: d.answer,
      how: d.how,
      scope: d.scope,
      now: ex.answer,
      reason: ex.reason,
    };
  });
  return {
    now: s.now,
    zone: s.zone,
    policy: policy.mode,
    version: registry.version,
    tickMs: s.tickMs,
    replicas,
    matrix: { replicas: ids, rows },
    decisions,
    events: s.events,
    streams: s.hub,
  };
}
