/**
 * The choice of a server for one request, by mode (pure: servers, prices and clock in, an
 * order of preference out; the first is used, the next one for a retry).
 *
 * - `latency`: lowest expected latency, i.e. the Peak-EWMA cost `latency × (in flight + 1)`.
 *   With `pick: "p2c"`, power of two choices: two eligible servers drawn at random, the
 *   cheaper cost wins (Finagle's and Linkerd's balancer); the default `best` scans every
 *   server (a proxy knows a handful, and its in-flight counts are exact).
 * - `price`: lowest cost per GiB (`costPerGiB`); exact ties by the latency cost.
 * - `balanced`: the cheapest per GiB among the servers whose latency is within `maxExtraMs` of
 *   the fastest one's; ties by the latency cost. The latency window uses the Peak-EWMA
 *   estimate without the in-flight factor, so concurrency alone does not push the cheapest
 *   server out of it (its answers slowing down does).
 *
 * Eligible servers: not ejected, and listed alive by the node or answering this proxy's last
 * probe. When none is, every server is
 * tried in the same order ("panic", as Envoy does) rather than failing outright. A server with
 * no latency sample yet ranks after measured ones in latency terms; one whose provider has no
 * price ranks after priced ones in price terms.
 *
 * @module
 */

import type { ServerState } from "./server_state.ts";

/** Routing modes. */
export const MODES = ["latency", "price", "balanced"] as const;
/** A routing mode. */
export type Mode = typeof MODES[number];

/** A provider's price as the proxy compares it. */
export interface PriceQuote {
  /** `egressPerGiB + serverPerHour / capacityGiBPerHour`. */
  perGiB: number;
  currency: string;
}

/** Price of a provider, if known. */
export type PriceLookup = (provider: string) => PriceQuote | undefined;

/** Inputs of {@link rank}. */
export interface RankOptions {
  mode: Mode;
  /** Balanced mode's latency window, ms. */
  maxExtraMs: number;
  pick: "best" | "p2c";
  prices: PriceLookup;
  now: number;
  /** Random source in [0, 1) (p2c). */
  random: () => number;
}

/** An order of preference and why the first was chosen. */
export interface Ranking {
  order: ServerState[];
  /** True when no server was eligible and all are tried anyway. */
  panic: boolean;
  /** The `X-Nearcast-Reason` text for a server of {@link order}. */
  reason(s: ServerState): string;
}

/** A server's price per GiB, or null when its provider has none. */
export function priceOf(s: ServerState, prices: PriceLookup): PriceQuote | null {
  return s.info.provider === null ? null : prices(s.info.provider) ?? null;
}

const INF = Number.POSITIVE_INFINITY;
const costKey = (s: ServerState) => s.cost() ?? INF;
const latencyKey = (s: ServerState) => s.latency.value ?? INF;

/** `a` before `b` by keys in order; ids break exact ties so the order is stable. */
function byKeys(...keys: ((s: ServerState) => number)[]) {
  return (a: ServerState, b: ServerState): number => {
    for (const k of keys) {
      const d = k(a) - k(b);
      if (d !== 0 && !Number.isNaN(d)) return d;
    }
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  };
}

/** `0.0500 USD/GiB` or `price unknown`. */
export function formatPrice(q: PriceQuote | null): string {
  return q === null ? "price unknown" : `price ${q.perGiB.toFixed(4)} ${q.currency}/GiB`;
}

/** `12.1 ms` or `unmeasured`. */
export function formatMs(ms: number | null): string {
  return ms === null ? "unmeasured" : `${ms.toFixed(1)} ms`;
}

/** The latency order (built once: it runs for every request in latency mode). */
const BY_COST = byKeys(costKey);

/** Orders `servers` for one request; see the module doc. */
export function rank(servers: readonly ServerState[], o: RankOptions): Ranking {
  let pool = servers.filter((s) => s.eligible(o.now));
  const panic = pool.length === 0;
  if (panic) pool = [...servers];
  const price = (s: ServerState) => priceOf(s, o.prices)?.perGiB ?? INF;
  let order: ServerState[];
  let why: string;
  if (o.mode === "latency") {
    order = pool.sort(BY_COST);
    why = "lowest expected latency";
    if (o.pick === "p2c" && order.length > 2) {
      const i = Math.floor(o.random() * order.length);
      let j = Math.floor(o.random() * (order.length - 1));
      if (j >= i) j++;
      const [a, b] = i < j ? [order[i], order[j]] : [order[j], order[i]];
      order = [a, ...order.filter((s) => s !== a)];
      if (b !== undefined) why = `lower expected latency of two drawn (${a.id}, ${b.id})`;
    }
  } else if (o.mode === "price") {
    order = pool.sort(byKeys(price, costKey));
    why = "cheapest";
  } else {
    const fastest = Math.min(...pool.map(latencyKey));
    const bound = fastest + o.maxExtraMs;
    const inWindow = (s: ServerState) => s.latency.value !== null && s.latency.value <= bound;
    const near = pool.filter(inWindow).sort(byKeys(price, costKey));
    const far = pool.filter((s) => !inWindow(s)).sort(byKeys(price, costKey));
    order = [...near, ...far];
    why = fastest === INF
      ? "cheapest (no latency measured yet)"
      : `cheapest within ${o.maxExtraMs} ms of fastest ${formatMs(fastest)}`;
  }
  const panicNote = panic ? "; every server ejected, trying anyway" : "";
  return {
    order,
    panic,
    reason: (s) =>
      `${formatPrice(priceOf(s, o.prices))}, rtt ${
        formatMs(s.latency.value)
      }, ${s.outstanding} in flight, mode ${o.mode}: ${
        s === order[0] ? why : "next best"
      }${panicNote}`,
  };
}
