/**
 * The one-line reason `/explain` gives for a decision of the steering engine (`policy.ts`):
 * what the answer was chosen by, with the price and latency terms that decided, and what was
 * left out (overloaded, not live, unpriced replicas, an unreachable pricing service).
 *
 * @module
 */
import type { PolicyName, ReplicaScore } from "./policy.ts";

/** What the reason says about price: the latency bound in use, whether any price is known. */
export interface PriceContext {
  bound: number | null;
  priced: boolean;
  /** From `ReplicaCosts.note` (price_term.ts): unpriced replicas, an unreachable pricing service. */
  note: string;
}

/** The RTT a replica was ranked with, and where it came from. */
function rttText(l: ReplicaScore): string {
  return l.basis === "measured"
    ? `RTT ${l.latencyMs} ms`
    : l.basis === "geo"
    ? `RTT ~${l.latencyMs} ms from distance`
    : "RTT not measured yet";
}

function priceText(l: ReplicaScore): string {
  return l.costPerGiB === null
    ? `no price: ${l.price}`
    : `${l.costPerGiB} ${l.currency}/GiB from ${l.provider}`;
}

export function reasonFor(
  mode: PolicyName,
  lines: ReplicaScore[],
  eligible: number,
  measuring: boolean,
  p: PriceContext,
): string {
  if (eligible === 0) return "no live replica has an address of this family: NODATA";
  const top = lines.find((l) => l.rank === 0)!;
  const shed = lines.filter((l) => l.overloaded && l.eligible).map((l) => l.id);
  const over = shed.length ? `; overloaded (ranked last): ${shed.join(", ")}` : "";
  const dead = lines.filter((l) => !l.live).map((l) => l.id);
  const skipped = dead.length ? `; not live (never answered): ${dead.join(", ")}` : "";
  const best = top.basis;
  let why: string;
  if (best === "measured") why = `lowest measured RTT (${top.rttMs} ms)`;
  else if (best === "geo" && mode === "geo") why = `nearest (${top.distanceKm} km)`;
  else if (best === "geo") {
    why = `no measurement: RTT estimated from distance (${top.distanceKm} km)`;
  } else if (best === "load") why = `least loaded (${top.rps ?? 0} requests/s)`;
  else why = "nothing known about the client: rotation";
  if (mode === "price") {
    why = p.priced ? `cheapest (${priceText(top)}; ${rttText(top)})` : `by latency: ${why}`;
  } else if (mode === "balanced" && p.bound !== null) {
    const fastest = Math.min(...lines.filter((l) => l.eligible).map((l) => l.latencyMs!));
    why = p.priced
      ? `cheapest within ${p.bound} ms of the fastest (${priceText(top)}; ${rttText(top)}, ` +
        `fastest ${fastest} ms)`
      : `within ${p.bound} ms of the fastest, no price known: by latency: ${why}`;
  } else if (mode === "balanced") {
    const term = top.priceTerm === null ? "" : `, price term ${top.priceTerm} (${priceText(top)})`;
    why = `lowest weighted score ${top.score} (${why}${term})`;
  }
  const measure = measuring ? "; measuring in the background" : "";
  return `${top.id}: ${why}${over}${skipped}${p.note}${measure}`;
}
