/**
 * The steering engine: the one {@link SteeringPolicy}, with four modes, that answers for a
 * static config and for a live fleet alike. The live fleet only adds sources: loads from
 * heartbeats and RTT measurements ({@link LoadSource}, {@link RttSource}).
 *
 * | mode | score of a replica (lower is better) |
 * | --- | --- |
 * | `latency` (default) | measured RTT to the client's /24 or /56; replicas not measured yet rank after the measured ones, by the RTT geography suggests (1 ms per 100 km), then unknown |
 * | `geo` | great-circle distance from the client's geo location |
 * | `load` | requests/s from its heartbeats |
 * | `price` | the provider's cost per GiB (`price_term.ts`); equal costs by latency, as `latency` ranks |
 * | `balanced` | `latency weight × RTT / 100 ms + load weight × rps / overload rps + price weight × cost / 0.10 per GiB` |
 * | `balanced` with `maxExtraMs` X | the cheapest replica whose RTT is within X ms of the fastest one's; then the rest by RTT |
 *
 * Prices come from a {@link PriceSource} (the pricing service's feed). A replica without a
 * price (no provider, a provider the pricing service does not know) ranks after the priced ones
 * in `price` and `balanced`; with no price at all both fall back to latency (and load), and the
 * explanation says so. A price is never waited for: the feed holds the latest table.
 *
 * Answers of several addresses are "closest N plus spill": the N best live replicas, best first.
 * Overloaded replicas (rps above the threshold) rank after every other live one, so they lose
 * their clients to the next best (they are answered only when fewer than N others are live).
 * When the first replica of an answer is near its limit ({@link NEAR_LIMIT_FRACTION} of the
 * threshold), one more address is appended: the best replica after the N that is neither near
 * its limit nor over it, so resolvers that rotate the addresses spread new clients over it
 * before the first overloads. TTLs follow state (`ttl.ts`). Equal scores keep config/registration order when the client's
 * location or RTT is known, and rotate otherwise (so unknown clients spread over the fleet).
 * In `latency` and `balanced` modes a decision that is not based on a fresh measurement for
 * every live measurable replica asks for one in the background (`onMeasure`) and, when the
 * best replica's RTT is not measured yet, carries a short TTL: the answer never waits for a
 * measurement.
 *
 * {@link SteeringEngine.select} and {@link SteeringEngine.explain} run one decision function:
 * `explain` reports the answer the next `select` for that client gives (it does not move the
 * rotation), with every replica's score.
 *
 * @module
 */
import { formatIp, maskIp } from "../common/ip.ts";
import { type GeoEntry, GeoTable, haversineKm, newGeoMatch } from "./geo.ts";
import { PRICE_SCALE_PER_GIB, type PriceSource, ReplicaCosts, round6 } from "./price_term.ts";
import type { ReplicaSet, Selection, SteeringClient, SteeringPolicy } from "./steering.ts";
import { reasonFor } from "./_reason.ts";
import { BASES, type Explanation, type ReplicaScore } from "./explanation.ts";
import {
  CHANGING,
  changingTtl,
  explainTtl,
  FULL,
  LOAD as LOADED,
  MEASURING,
  NEAR_LIMIT_FRACTION,
  type StateSource,
  TTL_BASES,
} from "./ttl.ts";

/** Policy names for `--policy`. */
export const POLICIES = ["latency", "geo", "load", "price", "balanced"] as const;
export type PolicyName = (typeof POLICIES)[number];
/** The default: the smallest measured RTT, else geography, else rotation. */
export const DEFAULT_POLICY: PolicyName = "latency";

/** Light in fibre covers about 200 km per ms: a round trip costs ~1 ms per 100 km of distance. */
export const KM_PER_RTT_MS = 100;
/** Balanced scoring divides RTT by this: 100 ms of RTT weighs as much as a full overload. */
export const RTT_SCALE_MS = 100;
/** Latency's order key: estimated RTTs rank after every measured one (no RTT reaches this). */
const LATENCY_TIER = 1e9;
/** Balanced scoring's RTT for a replica with neither a measurement nor a location. */
export const UNKNOWN_RTT_MS = 150;
/** Default overload threshold (requests/s): above it a replica loses its clients. */
export const DEFAULT_OVERLOAD_RPS = 5_000;
/** A measurement this old is refreshed in the background on the next query (paths change). */
export const DEFAULT_REFRESH_MS = 30_000;
/** TTL (s) of answers not based on a measurement: clients come back soon for a better one. */
export const DEFAULT_SHORT_TTL = 5;
/** IPv4 clients are grouped by /24: the smallest prefix routed on the Internet. */
export const IPV4_SUBNET_BITS = 24;
/** IPv6 clients are grouped by /56: the common end-site allocation (RFC 6177). */
export const IPV6_SUBNET_BITS = 56;

/** The RTT key of a client's subnet, e.g. `10.77.2.0/24` or `2001:db8:0:100::/56`. */
export function subnetKey(family: 4 | 6, bytes: Uint8Array): string {
  const bits = family === 4 ? IPV4_SUBNET_BITS : IPV6_SUBNET_BITS;
  return `${formatIp(maskIp({ family, bytes }, bits))}/${bits}`;
}

/** Loads and measurability of replicas (the live registry); a static config has none. */
export interface LoadSource {
  /** Changes whenever a load may have changed. */
  readonly loadVersion: number;
  /** The requests/s a replica last reported, or null. */
  rps(id: string): number | null;
  /** True when the replica can be asked to measure RTT (registered ones have a probe). */
  measurable(id: string): boolean;
}

/** A smoothed RTT from a replica to a subnet. */
export interface RttSample {
  ms: number;
  samples: number;
  /** When the latest sample arrived (clock ms). */
  at: number;
}

/** Measured RTTs by subnet ({@link subnetKey}) and replica id. */
export interface RttSource {
  /** Subnets held: nothing is looked up while it is 0. */
  readonly size: number;
  /** A sample older than this (by the engine's clock) is ignored. */
  readonly ttlMs: number;
  /** A subnet's samples by replica id (expired ones included), or undefined. */
  row(subnet: string): ReadonlyMap<string, RttSample> | undefined;
}

const NO_LOADS: LoadSource = { loadVersion: 0, rps: () => null, measurable: () => false };
const NO_RTT: RttSource = { size: 0, ttlMs: 0, row: () => undefined };

/** Weights of `balanced`'s score. */
export interface Weights {
  latency: number;
  load: number;
  price: number;
}
/** Default weights: 100 ms of RTT, a full overload and 0.10 per GiB weigh the same. */
export const DEFAULT_WEIGHTS: Readonly<Weights> = { latency: 1, load: 1, price: 1 };

/** Options of {@link SteeringEngine}. */
export interface SteeringOptions {
  mode: PolicyName;
  set: ReplicaSet;
  geo: readonly GeoEntry[];
  /** Default: no measurements. */
  rtt?: RttSource;
  /** Default: no loads, nothing measurable. */
  loads?: LoadSource;
  /** Weights of `balanced`; default {@link DEFAULT_WEIGHTS}. */
  weights?: Partial<Weights>;
  /** Prices by provider; default none (price plays no part). */
  prices?: PriceSource | null;
  /**
   * `balanced` only: answer the cheapest replica whose RTT is within this many ms of the
   * fastest one's (instead of the weighted score). Default null: the weighted score.
   */
  maxExtraMs?: number | null;
  overloadRps?: number;
  refreshMs?: number;
  shortTtl?: number;
  /** The configured TTL, for `/explain` (the handler applies it); default unknown. */
  fullTtl?: number | null;
  /** What the monitor knows of replicas' states (state-aware TTLs); default: all stable. */
  states?: StateSource;
  /** Asked to measure RTT from every live replica to `target` (the subnet `subnet`). */
  onMeasure?: (subnet: string, target: string) => void;
  now?: () => number;
}

const MEASURED = 0, GEO = 1, LOAD = 2, NONE = 3;
export { BASES };
export type { Explanation, ReplicaScore };

/** See the module doc. */
export class SteeringEngine implements SteeringPolicy {
  readonly name: string;
  readonly mode: PolicyName;
  readonly #set: ReplicaSet;
  readonly #geo: GeoTable;
  readonly #rtt: RttSource;
  readonly #loads: LoadSource;
  readonly #wLat: number;
  readonly #wLoad: number;
  readonly #wPrice: number;
  readonly #maxExtra: number;
  readonly #costs: ReplicaCosts;
  readonly #overload: number;
  readonly #refresh: number;
  readonly #shortTtl: number;
  readonly #fullTtl: number | null;
  readonly #states: StateSource | null;
  readonly #onMeasure: (subnet: string, target: string) => void;
  readonly #now: () => number;
  readonly #match = newGeoMatch();
  /** The rotation counter: moves once per `select` that rotates, never in `explain`. */
  #next = 0;
  /** Geo entry index → distinct location index. */
  readonly #locationOf: Int32Array;
  readonly #locations: { lat: number; lon: number }[] = [];
  /** Distinct location → km to every replica (NaN: replica not located); lazy per location. */
  #km: (Float64Array | undefined)[] = [];
  #kmFor = -1;
  /** Per replica, from the load source; refreshed when the set or a load changes. */
  #rps = new Float64Array(0);
  #over = new Uint8Array(0);
  /** Near the overload threshold (not over it): answers spill and get the short TTL. */
  #hot = new Uint8Array(0);
  #measurable = new Uint8Array(0);
  #anyMeasurable = false;
  #loadsFor = [-1, -1];
  // Per decision scratch, grown to the fleet size.
  #val = new Float64Array(0);
  #basis = new Uint8Array(0);
  /** Answers (not explanations) by the basis of their first replica, indexed as {@link BASES}. */
  readonly answersByBasis = [0, 0, 0, 0];
  /** Latency mode: 0 measured, 1 estimated from geography, 2 unknown (knowledge before score). */
  #tier = new Uint8Array(0);
  /** The second key, after the score: the RTT rank where price decides first. */
  #sub = new Float64Array(0);
  /** The RTT each replica is ranked with (measured, estimated, or unknown). */
  #lat = new Float64Array(0);
  #tie = new Int32Array(0);
  #eligible = new Uint8Array(0);
  #rank = new Int32Array(0);
  /** The latest client subnet key and the address bits it was made from (a one-entry memo). */
  #keyText = "";
  #keyFamily = 0;
  readonly #keyBytes = new Uint8Array(7);
  /** What the latest decision found, for `explain`. */
  #subnet = "";
  #wanted = false;
  #location = -1;
  #spill = -1;
  /** The latest decision's TTL basis (index of TTL_BASES), replica and next change. */
  #ttlBasis = FULL;
  #ttlReplica = -1;
  #ttlNext = Infinity;

  constructor(o: SteeringOptions) {
    if (!(POLICIES as readonly string[]).includes(o.mode)) {
      throw new RangeError(
        `Cannot create policy: mode must be one of ${POLICIES}: received ${o.mode}`,
      );
    }
    this.mode = o.mode;
    this.name = o.mode;
    this.#set = o.set;
    this.#geo = new GeoTable(o.geo);
    this.#rtt = o.rtt ?? NO_RTT;
    this.#loads = o.loads ?? NO_LOADS;
    this.#wLat = o.weights?.latency ?? DEFAULT_WEIGHTS.latency;
    this.#wLoad = o.weights?.load ?? DEFAULT_WEIGHTS.load;
    this.#wPrice = o.weights?.price ?? DEFAULT_WEIGHTS.price;
    this.#maxExtra = o.maxExtraMs ?? -1;
    this.#costs = new ReplicaCosts(o.prices ?? null);
    this.#overload = o.overloadRps ?? DEFAULT_OVERLOAD_RPS;
    this.#refresh = o.refreshMs ?? DEFAULT_REFRESH_MS;
    this.#shortTtl = o.shortTtl ?? DEFAULT_SHORT_TTL;
    this.#fullTtl = o.fullTtl ?? null;
    this.#states = o.states ?? null;
    this.#onMeasure = o.onMeasure ?? (() => {});
    this.#now = o.now ?? Date.now;
    for (
      const [k, v] of [
        ["weights.latency", this.#wLat],
        ["weights.load", this.#wLoad],
        ["weights.price", this.#wPrice],
      ] as const
    ) {
      if (!(v >= 0 && Number.isFinite(v))) {
        throw new RangeError(`Cannot create policy: ${k} must be a number >= 0: received ${v}`);
      }
    }
    if (o.maxExtraMs != null && !(o.maxExtraMs >= 0 && Number.isFinite(o.maxExtraMs))) {
      throw new RangeError(
        `Cannot create policy: maxExtraMs must be a number >= 0: received ${o.maxExtraMs}`,
      );
    }
    if (!(this.#overload > 0)) {
      throw new RangeError(
        `Cannot create policy: overloadRps must be positive: received ${this.#overload}`,
      );
    }
    this.#locationOf = new Int32Array(o.geo.length);
    const byKey = new Map<string, number>();
    o.geo.forEach((g, i) => {
      const key = `${g.lat},${g.lon}`;
      let loc = byKey.get(key);
      if (loc === undefined) {
        loc = this.#locations.length;
        this.#locations.push({ lat: g.lat, lon: g.lon });
        byKey.set(key, loc);
      }
      this.#locationOf[i] = loc;
    });
  }

  /** Grows the per-replica arrays to `n`. */
  #grow(n: number): void {
    if (this.#val.length >= n) return;
    const m = Math.max(16, n * 2);
    this.#val = new Float64Array(m);
    this.#basis = new Uint8Array(m);
    this.#tier = new Uint8Array(m);
    this.#sub = new Float64Array(m);
    this.#lat = new Float64Array(m);
    this.#tie = new Int32Array(m);
    this.#eligible = new Uint8Array(m);
    this.#rank = new Int32Array(m);
    this.#rps = new Float64Array(m);
    this.#over = new Uint8Array(m);
    this.#hot = new Uint8Array(m);
    this.#measurable = new Uint8Array(m);
    this.#loadsFor[0] = -1;
  }

  /** Copies loads and measurability out of the load source when the set or a load changed. */
  #refreshLoads(): void {
    const f = this.#loadsFor, set = this.#set, src = this.#loads;
    if (f[0] === set.version && f[1] === src.loadVersion) return;
    f[0] = set.version;
    f[1] = src.loadVersion;
    let any = false;
    set.replicas.forEach((r, i) => {
      const rps = src.rps(r.id) ?? 0;
      this.#rps[i] = rps;
      this.#over[i] = rps > this.#overload ? 1 : 0;
      this.#hot[i] = this.#over[i] === 0 && rps >= NEAR_LIMIT_FRACTION * this.#overload ? 1 : 0;
      this.#measurable[i] = src.measurable(r.id) ? 1 : 0;
      any ||= this.#measurable[i] === 1;
    });
    this.#anyMeasurable = any;
  }

  /** Km from a location to every replica, computed once per location and membership. */
  #distances(loc: number): Float64Array {
    if (this.#kmFor !== this.#set.membership) {
      this.#km = [];
      this.#kmFor = this.#set.membership;
    }
    let km = this.#km[loc];
    if (km === undefined) {
      const { lat, lon } = this.#locations[loc];
      km = Float64Array.from(
        this.#set.replicas,
        (r) => Number.isFinite(r.lat) ? haversineKm(lat, lon, r.lat, r.lon) : NaN,
      );
      this.#km[loc] = km;
    }
    return km;
  }

  /** {@link subnetKey} of the client, reusing the last key when the subnet is the same. */
  #key(c: SteeringClient): string {
    const n = (c.family === 4 ? IPV4_SUBNET_BITS : IPV6_SUBNET_BITS) >> 3;
    const kb = this.#keyBytes;
    let same = this.#keyFamily === c.family;
    for (let i = 0; i < n && same; i++) same = kb[i] === c.bytes[i];
    if (!same) {
      kb.set(c.bytes.subarray(0, n));
      this.#keyFamily = c.family;
      this.#keyText = subnetKey(c.family, c.bytes);
    }
    return this.#keyText;
  }

  /**
   * True when replica `i` ranks before `j`: by overload (unless `ignoreOver`), tier, score,
   * latency, then the tie order.
   */
  #before(i: number, j: number, useRtt: boolean, ignoreOver: boolean): boolean {
    const over = this.#over, tier = this.#tier, val = this.#val, sub = this.#sub;
    if (!ignoreOver && over[i] !== over[j]) return over[i] < over[j];
    if (tier[i] !== tier[j]) return tier[i] < tier[j];
    if (val[i] !== val[j]) return val[i] < val[j];
    if (useRtt && sub[i] !== sub[j]) return sub[i] < sub[j];
    return this.#tie[i] < this.#tie[j];
  }

  /**
   * The decision: scores every replica, ranks the best `depth` (>= `max` >= 1) eligible ones
   * into `out`, answers the first `max` plus a spill (appended to `out` when `depth` is `max`)
   * and says how and for how long. `advance` moves the rotation and asks for measurements
   * (`select`); without it the decision has no effect (`explain`). Allocates nothing unless
   * the client's subnet has to be looked up in the RTT source.
   */
  #decide(
    c: SteeringClient,
    family: 4 | 6,
    max: number,
    depth: number,
    out: Selection,
    advance: boolean,
  ): void {
    const reps = this.#set.replicas;
    const n = reps.length;
    this.#grow(n);
    this.#refreshLoads();
    const m = this.#match;
    this.#geo.lookup(c.family, c.bytes, c.bits, m);
    const loc = m.entry === -1 ? -1 : this.#locationOf[m.entry];
    const km = loc === -1 ? null : this.#distances(loc);
    const mode = this.mode;
    const useRtt = mode === "latency" || mode === "balanced" || mode === "price";
    const bound = mode === "balanced" && this.#maxExtra >= 0;
    const costs = this.#costs;
    const pricing = mode === "price" || mode === "balanced";
    if (pricing) costs.refresh(this.#set);
    const cost = costs.cost, priced = pricing && costs.anyPriced;
    const lat = this.#lat, sub = this.#sub, over = this.#over;
    let fastest = Infinity, fastestFree = Infinity;
    const subnet = useRtt && (this.#rtt.size > 0 || this.#anyMeasurable) ? this.#key(c) : "";
    const now = subnet === "" ? 0 : this.#now();
    const row = subnet === "" ? undefined : this.#rtt.row(subnet);
    const ttl = this.#rtt.ttlMs;
    const val = this.#val, basis = this.#basis, tier = this.#tier, rps = this.#rps;
    const eligible = this.#eligible, rank = this.#rank;
    let wanted = false, known = false, measured = false;
    for (let i = 0; i < n; i++) {
      const r = reps[i];
      const ok = r.live && (family === 4 ? r.ipv4 !== -1 : r.ipv6 !== null);
      const d = km === null ? NaN : km[i];
      let v = Infinity, b = NONE;
      if (useRtt) {
        let e = row === undefined ? undefined : row.get(r.id);
        if (e !== undefined && now - e.at > ttl) e = undefined;
        if (e !== undefined) {
          v = e.ms;
          b = MEASURED;
          if (r.live && now - e.at > this.#refresh) wanted = true;
        } else {
          if (d === d) {
            v = d / KM_PER_RTT_MS;
            b = GEO;
          }
          if (r.live && this.#measurable[i] === 1) wanted = true;
        }
        const ms = b === NONE ? UNKNOWN_RTT_MS : v;
        lat[i] = ms;
        // Latency's order: measured, then estimated from distance, then unknown; then by RTT.
        sub[i] = b === MEASURED ? v : b === GEO ? LATENCY_TIER + v : 2 * LATENCY_TIER;
        if (ok) {
          if (ms < fastest) fastest = ms;
          if (ms < fastestFree && over[i] === 0) fastestFree = ms;
        }
        if (mode === "price") v = cost[i] === cost[i] ? cost[i] : 0;
        else if (mode === "balanced") {
          const c = cost[i];
          v = this.#wLat * ms / RTT_SCALE_MS + this.#wLoad * rps[i] / this.#overload +
            (c === c ? this.#wPrice * c / PRICE_SCALE_PER_GIB : 0);
        }
      } else if (mode === "geo") {
        if (d === d) {
          v = d;
          b = GEO;
        }
      } else {
        v = rps[i];
        b = LOAD;
      }
      if (b === MEASURED || b === GEO) known = true;
      if (b === MEASURED && ok) measured = true;
      val[i] = v;
      basis[i] = b;
      tier[i] = mode === "latency"
        ? (b === MEASURED ? 0 : b === GEO ? 1 : 2)
        : priced && cost[i] !== cost[i]
        ? 1 // unpriced: after the priced replicas
        : 0;
      eligible[i] = ok ? 1 : 0;
      rank[i] = -1;
    }
    if (bound) {
      // The cheapest within maxExtra ms of the fastest (not overloaded) replica; the others
      // after them, by RTT.
      const limit = (fastestFree < Infinity ? fastestFree : fastest) + this.#maxExtra;
      for (let i = 0; i < n; i++) {
        if (lat[i] <= limit) val[i] = cost[i] === cost[i] ? cost[i] : 0;
        else {
          tier[i] = 2;
          val[i] = lat[i];
        }
      }
    }
    // Ties keep index order when something is known about the client; otherwise they rotate.
    const rotating = !known || mode === "load";
    const start = n === 0 ? 0 : this.#next % n;
    if (rotating && advance && n > 0) this.#next = (start + 1) % n;
    const tie = this.#tie;
    for (let i = 0; i < n; i++) tie[i] = rotating ? (i - start + n) % n : i;
    // The best `depth` by (overloaded, tier, score, latency, tie), one pass each: it is small.
    let count = 0, first = -1, last = -1;
    while (count < depth) {
      let best = -1;
      for (let i = 0; i < n; i++) {
        if (eligible[i] === 0 || rank[i] !== -1) continue;
        if (best === -1 || this.#before(i, best, useRtt, false)) best = i;
      }
      if (best === -1) break;
      if (count === 0) first = best;
      if (count < max) last = best;
      rank[best] = count;
      out.replicas[count++] = reps[best];
    }
    // Spill: the first is near its limit; add the best after the answer that is not.
    const hot = this.#hot;
    let spill = -1;
    if (first !== -1 && hot[first] === 1) {
      for (let i = 0; i < n; i++) {
        if (eligible[i] === 0 || (rank[i] !== -1 && rank[i] < max) || hot[i] + over[i] > 0) {
          continue;
        }
        if (spill === -1 || this.#before(i, spill, useRtt, false)) spill = i;
      }
    }
    if (spill !== -1 && depth === max) out.replicas[count++] = reps[spill];
    out.count = count;
    this.#spill = spill;
    const top = first === -1 ? NONE : basis[first];
    if (advance) this.answersByBasis[top]++;
    out.scope = m.scope;
    if (measured) {
      // The answer depends on the client's /24 (or /56): say so to ECS resolvers.
      const bits = c.family === 4 ? IPV4_SUBNET_BITS : IPV6_SUBNET_BITS;
      if (out.scope < bits) out.scope = bits;
    }
    const byLatency = top === MEASURED ? "latency" : top === GEO ? "geo" : "rotation";
    out.how = mode === "load"
      ? "load"
      : mode === "price"
      ? (priced ? "price" : byLatency)
      : mode === "balanced"
      ? (known || priced ? "balanced" : "rotation")
      : !known
      ? "rotation"
      : mode === "latency"
      ? byLatency
      : mode;
    wanted &&= count > 0;
    out.ttl = useRtt && wanted && top !== MEASURED ? this.#shortTtl : -1;
    this.#ttlBasis = out.ttl === -1 ? FULL : MEASURING;
    this.#ttlReplica = -1;
    this.#ttlNext = Infinity;
    if (last !== -1) this.#stateTtl(family, max, last, spill, useRtt, count < max, out);
    this.#subnet = subnet;
    this.#wanted = wanted;
    this.#location = m.entry;
    if (advance && wanted) this.#onMeasure(subnet, formatIp(c));
  }

  /**
   * Shortens `out.ttl` for load and state (`ttl.ts`): the answered replicas (ranks below
   * `max`, and the spill) and those that would rank before the last answered one, `last`, but
   * for their load or state (any, when the answer has `room` for more).
   */
  #stateTtl(
    family: 4 | 6,
    max: number,
    last: number,
    spill: number,
    useRtt: boolean,
    room: boolean,
    out: Selection,
  ): void {
    const reps = this.#set.replicas, n = reps.length, rank = this.#rank;
    const over = this.#over, hot = this.#hot, states = this.#states, short = this.#shortTtl;
    let ttl = out.ttl;
    for (let i = 0; i < n; i++) {
      const r = reps[i];
      const answered = (rank[i] !== -1 && rank[i] < max) || i === spill;
      const loaded = answered
        ? hot[i] + over[i] > 0
        : over[i] === 1 && this.#eligible[i] === 1 && this.#before(i, last, useRtt, true);
      if (loaded && (ttl === -1 || short < ttl)) {
        ttl = short;
        this.#ttlBasis = LOADED;
        this.#ttlReplica = i;
      }
      if (states === null) continue;
      // A replica that is not live counts when it would rank in the answer once it is.
      const candidate = answered ||
        (!r.live && (family === 4 ? r.ipv4 !== -1 : r.ipv6 !== null) &&
          (room || this.#before(i, last, useRtt, false)));
      if (!candidate) continue;
      const next = states.nextChangeMs(r.id);
      if (next === Infinity) continue;
      const t = changingTtl(next, short);
      if (ttl === -1 || t <= ttl) {
        ttl = t;
        this.#ttlBasis = CHANGING;
        this.#ttlReplica = i;
        this.#ttlNext = next;
      }
    }
    out.ttl = ttl;
  }

  /**
   * Fills `out` with up to `max` live replicas that have an address of `family`, best first,
   * plus a spill address when the first is near its limit (see the module doc). Allocates
   * nothing per call once warm unless RTTs are looked up.
   */
  select(client: SteeringClient, family: 4 | 6, max: number, out: Selection): void {
    this.#decide(client, family, max, max, out, true);
  }

  /** The decision {@link select} makes next for `client`, with every replica's score and why. */
  explain(client: SteeringClient, family: 4 | 6, max: number): Explanation {
    const reps = this.#set.replicas;
    const sel: Selection = { replicas: [], count: 0, scope: 0, how: "rotation", ttl: -1 };
    this.#decide(client, family, max, Math.max(reps.length, max, 1), sel, false);
    const mode = this.mode;
    const useRtt = mode === "latency" || mode === "balanced" || mode === "price";
    const subnet = useRtt ? subnetKey(client.family, client.bytes) : "";
    const bound = mode === "balanced" && this.#maxExtra >= 0;
    const priceCounts = mode === "price" || mode === "balanced";
    const loc = this.#location === -1 ? null : this.#geo.entries[this.#location];
    const km = loc === null ? null : this.#distances(this.#locationOf[this.#location]);
    const now = this.#now();
    const lines: ReplicaScore[] = reps.map((r, i) => {
      const got = this.#subnet === "" ? undefined : this.#rtt.row(this.#subnet)?.get(r.id);
      const e = got !== undefined && now - got.at <= this.#rtt.ttlMs ? got : undefined;
      const d = km === null ? NaN : km[i];
      const provider = r.provider ?? "";
      const price = this.#costs.describe(provider);
      const c = this.#costs.cost[i];
      const byCost = mode === "price" || (bound && this.#tier[i] !== 2);
      return {
        id: r.id,
        live: r.live,
        eligible: this.#eligible[i] === 1,
        rank: this.#rank[i] === -1 ? null : this.#rank[i],
        score: !Number.isFinite(this.#val[i]) || (byCost && c !== c)
          ? null
          : byCost
          ? round6(this.#val[i])
          : round(this.#val[i]),
        basis: BASES[this.#basis[i]],
        rttMs: e ? round(e.ms) : null,
        rttSamples: e?.samples ?? 0,
        rttAgeMs: e ? now - e.at : null,
        distanceKm: d === d ? Math.round(d) : null,
        rps: this.#loads.rps(r.id),
        overloaded: this.#over[i] === 1,
        nearLimit: this.#hot[i] === 1,
        stateChange: this.#states?.changeReason(r.id) || null,
        nextChangeMs: next(this.#states?.nextChangeMs(r.id)),
        latencyMs: useRtt ? round(this.#lat[i]) : null,
        provider,
        price: price.basis,
        costPerGiB: price.costPerGiB,
        currency: price.currency,
        priceTerm: mode === "balanced" && !bound && c === c
          ? round(this.#wPrice * c / PRICE_SCALE_PER_GIB)
          : null,
        withinBound: bound ? this.#tier[i] !== 2 : null,
      };
    });
    const unpriced = lines.filter((l) => l.eligible && l.price !== "priced");
    const note = priceCounts ? this.#costs.note(unpriced) : "";
    return {
      client: formatIp(client),
      subnet,
      policy: this.mode,
      location: loc && { lat: loc.lat, lon: loc.lon },
      answer: sel.replicas.slice(0, Math.min(sel.count, max)).map((r) => r.id)
        .concat(this.#spill === -1 ? [] : [reps[this.#spill].id]),
      how: sel.how,
      ttl: sel.ttl === -1 ? null : sel.ttl,
      ttlWhy: explainTtl(
        TTL_BASES[this.#ttlBasis],
        this.#ttlReplica === -1 ? null : lines[this.#ttlReplica],
        { ttl: sel.ttl, full: this.#fullTtl, short: this.#shortTtl, next: this.#ttlNext },
      ),
      spill: this.#spill === -1 ? null : reps[this.#spill].id,
      scope: sel.scope,
      reason: reasonFor(this.mode, lines, sel.count, this.#wanted, {
        bound: bound ? this.#maxExtra : null,
        priced: this.#costs.anyPriced,
        note,
      }),
      weights: { latency: this.#wLat, load: this.#wLoad, price: this.#wPrice },
      maxExtraMs: bound ? this.#maxExtra : null,
      prices: this.#costs.state(),
      replicas: lines,
    };
  }
}

function next(ms: number | undefined): number | null {
  return ms === undefined || ms === Infinity ? null : Math.round(ms);
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
