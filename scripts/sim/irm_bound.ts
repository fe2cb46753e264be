/**
 * The best miss ratio any online policy can expect on the synthetic Zipf traces, and so how
 * much of the gap from a baseline to the offline optimum (Belady) an online policy can close.
 *
 * The traces of ../shared/traces are drawn under the independent reference model (IRM): every
 * request is an independent draw of object k with probability p_k ∝ k^-alpha. A policy that
 * does not see the future holds, when a request comes, a set S chosen from the past alone, so
 * that request hits with probability sum(p_k, k in S) whatever the policy, and S must fit the
 * cache. Hence, for every online policy, even one told the exact p_k:
 *
 * - expected object hit ratio ≤ max over sets that fit of sum p_k (a knapsack, bounded above by
 *   its fractional relaxation: objects by p_k / size_k, the last one cut to fit);
 * - expected byte hit ratio ≤ max over sets that fit of sum p_k × size_k / sum over all p_k ×
 *   size_k (fractional: objects by p_k, the last one cut).
 *
 * Compulsory misses (first requests) are not counted, so the bound is generous. Belady sees the
 * future and is not bound by it. This is the classic result that under IRM the best online
 * policy keeps the most probable objects (Aho, Denning and Ullman 1971, "Principles of optimal
 * page replacement"), with sizes. On a finite trace the realized miss ratio differs from its
 * expectation by sampling noise (2M requests: about 0.0003 at a miss ratio of 0.2).
 *
 * Usage: `deno run scripts/sim/irm_bound.ts` (the six Zipf traces at 1 % and 10 %, with
 * libCacheSim's best reference policy and optimum from ../shared/traces/README.md).
 *
 * @module
 */
import { OBJECTS, objectSizes, TRACES } from "../gen_traces.ts";

/** Lowest expected object and byte miss ratios of an online policy under IRM. */
export interface IrmBound {
  object: number;
  byte: number;
}

/**
 * The IRM bound for popularity weights `weights` (any positive scale), object sizes `sizes`
 * (same length) and a cache of `capacity` (same unit as sizes).
 */
export function irmBound(weights: Float64Array, sizes: Uint32Array, capacity: number): IrmBound {
  const n = weights.length;
  let total = 0;
  let totalBytes = 0;
  for (let k = 0; k < n; k++) {
    total += weights[k];
    totalBytes += weights[k] * sizes[k];
  }
  const ids = Array.from({ length: n }, (_, k) => k);
  const byDensity = [...ids].sort((a, b) => weights[b] / sizes[b] - weights[a] / sizes[a] || a - b);
  const byWeight = [...ids].sort((a, b) => weights[b] - weights[a] || a - b);
  const weightBytes = weights.map((w, k) => w * sizes[k]);
  return {
    object: 1 - fillKnapsack(byDensity, sizes, capacity, weights) / total,
    byte: 1 - fillKnapsack(byWeight, sizes, capacity, weightBytes) / totalBytes,
  };
}

/**
 * The fractional knapsack: objects taken whole in `order`, the last one cut to fit, until
 * `capacity` is full; answers the sum of their `value`. With `firstSeen`, objects first
 * requested at or after request `before` are passed over (`seen_bound.ts`).
 */
export function fillKnapsack(
  order: readonly number[],
  sizes: Uint32Array,
  capacity: number,
  value: ArrayLike<number>,
  firstSeen?: Float64Array,
  before = Infinity,
): number {
  let room = capacity;
  let got = 0;
  for (const k of order) {
    if (room <= 0) break;
    if (firstSeen !== undefined && firstSeen[k] >= before) continue;
    const take = Math.min(1, room / sizes[k]);
    got += take * value[k];
    room -= take * sizes[k];
  }
  return got;
}

/** Zipf weights k^-alpha for ids 1..OBJECTS (index k - 1), as the trace generator draws them. */
export function zipfWeights(alpha: number): Float64Array {
  const w = new Float64Array(OBJECTS);
  for (let k = 0; k < OBJECTS; k++) w[k] = Math.pow(k + 1, -alpha);
  return w;
}

if (import.meta.main) {
  const pct = (x: number) => `${Math.round(x * 100)} %`;
  console.log(
    "| trace | size | IRM bound (object / byte) | best reference | optimum | gap an online policy can close at most |",
  );
  console.log("| --- | --- | ---: | ---: | ---: | ---: |");
  for (const t of TRACES) {
    const weights = zipfWeights(t.alpha);
    const sizes = objectSizes(t.kind);
    // Cache sizes of the README: objects for eq (4096 bytes each), bytes for lognorm.
    const unit = t.kind === "eq" ? sizes[0] : 1;
    for (const i of [1, 2]) {
      const b = irmBound(weights, sizes, t.sizes[i] * unit);
      const o = t.reference.object;
      const y = t.reference.byte;
      const cells = y === undefined
        ? [b.object.toFixed(4), o.best[i].toFixed(4), o.optimal[i].toFixed(4)]
        : [
          `${b.object.toFixed(4)} / ${b.byte.toFixed(4)}`,
          `${o.best[i].toFixed(4)} / ${y.best[i].toFixed(4)}`,
          `${o.optimal[i].toFixed(4)} / ${y.optimal[i].toFixed(4)}`,
        ];
      const share = (best: number, opt: number, bound: number) =>
        pct((best - bound) / (best - opt));
      const gap = y === undefined
        ? share(o.best[i], o.optimal[i], b.object)
        : `${share(o.best[i], o.optimal[i], b.object)} / ${share(y.best[i], y.optimal[i], b.byte)}`;
      console.log(`| ${t.name} | ${["0.1%", "1%", "10%"][i]} | ${cells.join(" | ")} | ${gap} |`);
    }
  }
}
