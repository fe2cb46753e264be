/**
 * Fleet steering: one {@link SteeringPolicy} with four modes over the live registry.
 *
 * | mode | score of a replica (lower is better) |
 * | --- | --- |
 * | `latency` | measured RTT to the client's /24 or /56; replicas not measured yet rank after the measured ones, by the RTT geography suggests (1 ms per 100 km), then unknown |
 * | `geo` | great-circle distance from the client's geo location |
 * | `load` | requests/s from its heartbeats |
 * | `balanced` | `latency weight × RTT / 100 ms + load weight × rps / overload rps` |
 *
 * Overloaded replicas (rps above the threshold) rank after every other live one, so they lose
 * their clients to the next best. Equal scores keep config/registration order when the client's
 * location or RTT is known, and rotate otherwise (so unknown clients spread over the fleet).
 * In `latency` and `balanced` modes a decision that is not based on a fresh measurement for
 * every live replica asks for one in the background (`onMeasure`) and, when the best replica's
 * RTT is not measured yet, carries a short TTL: the answer never waits for a measurement.
 * {@link FleetPolicy.explain} runs the same scoring and reports every replica's score.
 *
 * @module
 */
import { type GeoEntry, type GeoMatch, GeoTable, haversineKm, newGeoMatch } from "../dns/geo.ts";
import {
  GeoPolicy,
  type Replica,
  type ReplicaSet,
  type Selection,
  type SteeringClient,
  type SteeringPolicy,
} from "../dns/steering.ts";
import type { FleetRegistry } from "./registry.ts";
import { IPV4_SUBNET_BITS, IPV6_SUBNET_BITS, type RttCache, subnetKey } from "./rtt.ts";

/** Policy names for `--policy`. */
export const POLICIES = ["latency", "geo", "load", "balanced"] as const;
export type PolicyName = (typeof POLICIES)[number];

/** Light in fibre covers about 200 km per ms: a round trip costs ~1 ms per 100 km of distance. */
export const KM_PER_RTT_MS = 100;
/** Balanced scoring divides RTT by this: 100 ms of RTT weighs as much as a full overload. */
export const RTT_SCALE_MS = 100;
/** Balanced scoring's RTT for a replica with neither a measurement nor a location. */
export const UNKNOWN_RTT_MS = 150;
/** Default overload threshold (requests/s): above it a replica loses its clients. */
export const DEFAULT_OVERLOAD_RPS = 5_000;
/** A measurement this old is refreshed in the background on the next query (paths change). */
export const DEFAULT_REFRESH_MS = 30_000;
/** TTL (s) of answers not based on a measurement: clients come back soon for a better one. */
export const DEFAULT_SHORT_TTL = 5;

/** Options of {@link FleetPolicy}. */
export interface FleetPolicyOptions {
  mode: PolicyName;
  set: ReplicaSet;
  registry: FleetRegistry;
  geo: readonly GeoEntry[];
  rtt: RttCache;
  /** Weights of `balanced`; default 1 and 1. */
  weights?: { latency: number; load: number };
  overloadRps?: number;
  refreshMs?: number;
  shortTtl?: number;
  /** Asked to measure RTT from every live replica to `target` (the subnet `subnet`). */
  onMeasure?: (subnet: string, target: string) => void;
  now?: () => number;
}

type Basis = "measured" | "geo" | "load" | "none";

/** One replica's line in an explanation. */
export interface ReplicaScore {
  id: string;
  live: boolean;
  eligible: boolean;
  rank: number | null;
  score: number | null;
  basis: Basis;
  rttMs: number | null;
  rttSamples: number;
  rttAgeMs: number | null;
  distanceKm: number | null;
  rps: number | null;
  overloaded: boolean;
}

/** What {@link FleetPolicy.explain} returns. */
export interface Explanation {
  client: string;
  subnet: string;
  policy: PolicyName;
  location: { lat: number; lon: number } | null;
  answer: string[];
  how: Selection["how"];
  ttl: number | null;
  reason: string;
  replicas: ReplicaScore[];
}

/** See the module doc. */
export class FleetPolicy implements SteeringPolicy {
  readonly name: string;
  readonly mode: PolicyName;
  readonly #set: ReplicaSet;
  readonly #registry: FleetRegistry;
  readonly #geo: GeoTable;
  readonly #rtt: RttCache;
  readonly #wLat: number;
  readonly #wLoad: number;
  readonly #overload: number;
  readonly #refresh: number;
  readonly #shortTtl: number;
  readonly #onMeasure: (subnet: string, target: string) => void;
  readonly #now: () => number;
  readonly #match: GeoMatch = newGeoMatch();
  #next = 0;
  // Per-decision scratch, grown to the fleet size.
  #val = new Float64Array(16);
  #basis: Basis[] = [];
  #over = new Uint8Array(16);
  /** Latency mode: 0 measured, 1 estimated from geography, 2 unknown (knowledge before score). */
  #tier = new Uint8Array(16);
  #tie = new Int32Array(16);
  #order: number[] = [];
  /**
   * `geo` mode without overloaded or unlocated replicas is exactly {@link GeoPolicy}, whose
   * cached rankings keep the static-config hot path allocation-free; checked when the set or a
   * load changes.
   */
  readonly #plainGeo: GeoPolicy;
  #plainFor = [-1, -1];
  #plain = false;

  constructor(o: FleetPolicyOptions) {
    if (!(POLICIES as readonly string[]).includes(o.mode)) {
      throw new RangeError(
        `Cannot create policy: mode must be one of ${POLICIES}: received ${o.mode}`,
      );
    }
    this.mode = o.mode;
    this.name = o.mode;
    this.#set = o.set;
    this.#registry = o.registry;
    this.#geo = new GeoTable(o.geo);
    this.#rtt = o.rtt;
    this.#wLat = o.weights?.latency ?? 1;
    this.#wLoad = o.weights?.load ?? 1;
    this.#overload = o.overloadRps ?? DEFAULT_OVERLOAD_RPS;
    this.#refresh = o.refreshMs ?? DEFAULT_REFRESH_MS;
    this.#shortTtl = o.shortTtl ?? DEFAULT_SHORT_TTL;
    this.#onMeasure = o.onMeasure ?? (() => {});
    this.#now = o.now ?? Date.now;
    this.#plainGeo = new GeoPolicy(o.set, o.geo);
    for (
      const [k, v] of [["weights.latency", this.#wLat], ["weights.load", this.#wLoad]] as const
    ) {
      if (!(v >= 0 && Number.isFinite(v))) {
        throw new RangeError(`Cannot create policy: ${k} must be a number >= 0: received ${v}`);
      }
    }
    if (!(this.#overload > 0)) {
      throw new RangeError(
        `Cannot create policy: overloadRps must be positive: received ${this.#overload}`,
      );
    }
  }

  /**
   * Scores every replica for a client into the scratch arrays and returns the decision order
   * (eligible replicas only), the client's location and whether a measurement is wanted.
   */
  #rank(client: SteeringClient, family: 4 | 6, rotate: boolean) {
    const reps = this.#set.replicas;
    const n = reps.length;
    if (this.#val.length < n) {
      this.#val = new Float64Array(n * 2);
      this.#over = new Uint8Array(n * 2);
      this.#tier = new Uint8Array(n * 2);
      this.#tie = new Int32Array(n * 2);
    }
    const m = this.#match;
    this.#geo.lookup(client.family, client.bytes, client.bits, m);
    const loc = m.entry === -1 ? null : this.#geo.entries[m.entry];
    const useRtt = this.mode === "latency" || this.mode === "balanced";
    const subnet = useRtt ? subnetKey(client.family, client.bytes) : "";
    const now = this.#now();
    let stale = false;
    let known = false;
    const order = this.#order;
    order.length = 0;
    for (let i = 0; i < n; i++) {
      const r = reps[i];
      const eligible = r.live && (family === 4 ? r.ipv4 !== -1 : r.ipv6 !== null);
      const km = loc !== null && Number.isFinite(r.lat)
        ? haversineKm(loc.lat, loc.lon, r.lat, r.lon)
        : NaN;
      const entry = this.#registry.get(r.id);
      const load = entry?.load ?? null;
      const rps = load?.rps ?? 0;
      this.#over[i] = rps > this.#overload ? 1 : 0;
      let v = Infinity;
      let basis: Basis = "none";
      if (useRtt) {
        const e = this.#rtt.get(subnet, r.id);
        if (e !== undefined) {
          v = e.ms;
          basis = "measured";
          if (now - e.at > this.#refresh) stale = true;
        } else {
          if (!Number.isNaN(km)) {
            v = km / KM_PER_RTT_MS;
            basis = "geo";
          }
          // Static config entries have no probe endpoint: only registered ones are measured.
          if (r.live && entry?.source === "registered") stale = true;
        }
        if (this.mode === "balanced") {
          const lat = basis === "none" ? UNKNOWN_RTT_MS : v;
          v = this.#wLat * lat / RTT_SCALE_MS + this.#wLoad * rps / this.#overload;
        }
      } else if (this.mode === "geo") {
        if (!Number.isNaN(km)) {
          v = km;
          basis = "geo";
        }
      } else {
        v = rps;
        basis = "load";
      }
      if (basis === "measured" || basis === "geo") known = true;
      this.#val[i] = v;
      this.#basis[i] = basis;
      this.#tier[i] = this.mode !== "latency"
        ? 0
        : basis === "measured"
        ? 0
        : basis === "geo"
        ? 1
        : 2;
      if (eligible) order.push(i);
    }
    // Ties keep index order when something is known about the client; otherwise rotate.
    const rotating = !known || this.mode === "load";
    const start = n === 0 ? 0 : this.#next % n;
    if (rotating && rotate) this.#next = (start + 1) % Math.max(n, 1);
    for (let i = 0; i < n; i++) this.#tie[i] = rotating ? (i - start + n) % n : i;
    const val = this.#val, over = this.#over, tie = this.#tie, tier = this.#tier;
    order.sort((a, b) =>
      over[a] - over[b] || tier[a] - tier[b] || val[a] - val[b] || tie[a] - tie[b]
    );
    return { loc, subnet, stale, known, rotating };
  }

  /** True when plain geography decides (see `#plainGeo`). */
  #plainGeoApplies(): boolean {
    const f = this.#plainFor, set = this.#set, reg = this.#registry;
    if (f[0] !== set.version || f[1] !== reg.loadVersion) {
      f[0] = set.version;
      f[1] = reg.loadVersion;
      this.#plain = set.replicas.every((r) =>
        Number.isFinite(r.lat) && !((reg.get(r.id)?.load?.rps ?? 0) > this.#overload)
      );
    }
    return this.#plain;
  }

  select(client: SteeringClient, family: 4 | 6, max: number, out: Selection): void {
    if (this.mode === "geo" && this.#plainGeoApplies()) {
      this.#plainGeo.select(client, family, max, out);
      return;
    }
    const reps = this.#set.replicas;
    const { subnet, stale, known, rotating } = this.#rank(client, family, true);
    const order = this.#order;
    let count = 0;
    for (let i = 0; i < order.length && count < max; i++) out.replicas[count++] = reps[order[i]];
    out.count = count;
    out.scope = this.#match.scope;
    out.how = rotating && this.mode !== "load" ? "rotation" : this.mode;
    out.ttl = -1;
    if (this.mode === "latency" || this.mode === "balanced") {
      const best = count > 0 ? this.#basis[order[0]] : "none";
      if (best === "measured") {
        // The answer depends on the client's /24 (or /56): say so to ECS resolvers.
        const bits = client.family === 4 ? IPV4_SUBNET_BITS : IPV6_SUBNET_BITS;
        if (out.scope < bits) out.scope = bits;
      } else {
        out.ttl = this.#shortTtl;
        if (!known) out.how = "rotation";
      }
      if (stale && count > 0) this.#onMeasure(subnet, targetOf(client));
    }
  }

  /** Scores every replica for `client` as {@link select} would, with the reasons. */
  explain(client: SteeringClient, family: 4 | 6, max: number): Explanation {
    const reps = this.#set.replicas;
    const { loc, subnet, known, rotating } = this.#rank(client, family, false);
    const order = this.#order;
    const now = this.#now();
    const rankOf = new Map(order.map((i, k) => [i, k]));
    const useRtt = this.mode === "latency" || this.mode === "balanced";
    const lines: ReplicaScore[] = reps.map((r: Replica, i) => {
      const e = useRtt ? this.#rtt.get(subnet, r.id) : undefined;
      const rps = this.#registry.get(r.id)?.load?.rps ?? null;
      const km = loc !== null && Number.isFinite(r.lat)
        ? Math.round(haversineKm(loc.lat, loc.lon, r.lat, r.lon))
        : null;
      return {
        id: r.id,
        live: r.live,
        eligible: rankOf.has(i),
        rank: rankOf.get(i) ?? null,
        score: Number.isFinite(this.#val[i]) ? round(this.#val[i]) : null,
        basis: this.#basis[i],
        rttMs: e ? round(e.ms) : null,
        rttSamples: e?.samples ?? 0,
        rttAgeMs: e ? now - e.at : null,
        distanceKm: km,
        rps,
        overloaded: this.#over[i] === 1,
      };
    });
    const answer = order.slice(0, max).map((i) => reps[i].id);
    const best = order.length ? this.#basis[order[0]] : "none";
    let how: Selection["how"] = rotating && this.mode !== "load" ? "rotation" : this.mode;
    let ttl: number | null = null;
    if (useRtt && best !== "measured") {
      ttl = this.#shortTtl;
      if (!known) how = "rotation";
    }
    return {
      client: targetOf(client),
      subnet,
      policy: this.mode,
      location: loc && { lat: loc.lat, lon: loc.lon },
      answer,
      how,
      ttl,
      reason: reasonFor(this.mode, lines, order.length, best),
      replicas: lines,
    };
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function reasonFor(mode: PolicyName, lines: ReplicaScore[], eligible: number, best: Basis): string {
  if (eligible === 0) return "no live replica has an address of this family: NODATA";
  const top = lines.find((l) => l.rank === 0)!;
  const shed = lines.filter((l) => l.overloaded && l.eligible).map((l) => l.id);
  const over = shed.length ? `; overloaded (ranked last): ${shed.join(", ")}` : "";
  const dead = lines.filter((l) => !l.live).map((l) => l.id);
  const skipped = dead.length ? `; not live (never answered): ${dead.join(", ")}` : "";
  let why: string;
  if (best === "measured") why = `lowest measured RTT (${top.rttMs} ms)`;
  else if (best === "geo" && mode === "geo") why = `nearest (${top.distanceKm} km)`;
  else if (best === "geo") {
    why = `no measurement yet: RTT estimated from distance (${top.distanceKm} km); measuring`;
  } else if (best === "load") why = `least loaded (${top.rps ?? 0} requests/s)`;
  else why = "nothing known about the client: rotation";
  if (mode === "balanced") why = `lowest weighted score ${top.score} (${why})`;
  return `${top.id}: ${why}${over}${skipped}`;
}

/** The address to probe for a client: its source address, or the ECS subnet's address. */
function targetOf(c: SteeringClient): string {
  const b = c.bytes;
  if (c.family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((b[i] << 8) | b[i + 1]).toString(16));
  return g.join(":");
}
