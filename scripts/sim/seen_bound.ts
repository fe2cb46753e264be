/**
 * A tighter bound than `irm_bound.ts` for the synthetic Zipf traces, computed on each trace
 * itself: besides not seeing the future, a cache cannot hold an object before anybody asked
 * for it (no prefetching of unseen keys, as in every policy of `scripts/sim.ts`).
 *
 * Under the independent reference model request t is a fresh draw, so whatever set S_t a policy
 * holds (chosen from the requests before t, and made only of objects requested before t, the
 * set `seen_t`), request t hits with probability sum(p_k, k in S_t), at most the fractional
 * knapsack of the most valuable objects of seen_t that fit. Summed over the trace, that bounds
 * the expected hits of any such policy; the realized hits differ from that sum by a martingale
 * whose standard deviation is printed (`sd`). The value of object k per request is
 * `lambda / N + (1 − lambda) × size_k / B` (N requests, B bytes requested): lambda = 1 bounds
 * the object hit ratio, 0 the byte hit ratio, and a lambda between bounds a mix of the two, which
 * is what rules a pair of miss ratios out: if `lambda × (1 − objectMiss) + (1 − lambda) × (1 −
 * byteMiss)` exceeds the bound for some lambda, no such policy can expect both at once.
 *
 * seen_t grows with t, so the trace is cut into blocks (a new one after 200 first requests or
 * 20,000 requests) and each request of a block is charged with the knapsack of the objects seen
 * before the block's last request: at least its own, so still a bound (exact with blocks of one).
 *
 * Usage: `deno run scripts/sim/seen_bound.ts` (the six Zipf traces at 1 % and 10 %, a few
 * minutes): per cell the object and byte bounds, and for the variable-size traces whether GDSF's
 * object miss ratio and the best byte miss ratio of our baselines (docs/benchmarks.md) can be
 * had at once.
 *
 * @module
 */
import { objectSizes, requestIds, REQUESTS, TRACES } from "../gen_traces.ts";
import { fillKnapsack, zipfWeights } from "./irm_bound.ts";

/** The blocks of a trace: ends (exclusive) and, per object, its first request (or Infinity). */
export interface SeenBlocks {
  ends: Uint32Array;
  firstSeen: Float64Array;
  requests: number;
  /** Bytes requested over the trace. */
  bytes: number;
}

/** Cuts `ids` (1-based object ids) into blocks of at most `maxNew` first requests and `maxLen`. */
export function seenBlocks(
  ids: Uint32Array,
  sizes: Uint32Array,
  maxNew = 200,
  maxLen = 20_000,
): SeenBlocks {
  const firstSeen = new Float64Array(sizes.length).fill(Infinity);
  const ends: number[] = [];
  let fresh = 0;
  let start = 0;
  let bytes = 0;
  for (let t = 0; t < ids.length; t++) {
    const k = ids[t] - 1;
    bytes += sizes[k];
    if (firstSeen[k] === Infinity) {
      firstSeen[k] = t;
      fresh++;
    }
    if (fresh >= maxNew || t + 1 - start >= maxLen) {
      ends.push(t + 1);
      start = t + 1;
      fresh = 0;
    }
  }
  if (start < ids.length) ends.push(ids.length);
  return { ends: Uint32Array.from(ends), firstSeen, requests: ids.length, bytes };
}

/** The bound of a weighted hit ratio, and the standard deviation of the realized one. */
export interface SeenBound {
  bound: number;
  sd: number;
}

/**
 * Upper bound of `lambda × object hit ratio + (1 − lambda) × byte hit ratio` expected of a
 * policy that holds only objects already requested, under IRM with popularity `weights`.
 */
export function seenWeightedBound(
  blocks: SeenBlocks,
  weights: Float64Array,
  sizes: Uint32Array,
  capacity: number,
  lambda: number,
): SeenBound {
  const n = weights.length;
  let total = 0;
  for (let k = 0; k < n; k++) total += weights[k];
  const value = new Float64Array(n);
  let second = 0; // sum of p_k × value_k²: bounds each request's variance
  for (let k = 0; k < n; k++) {
    const p = weights[k] / total;
    const v = lambda / blocks.requests + (1 - lambda) * sizes[k] / blocks.bytes;
    value[k] = p * v;
    second += p * v * v;
  }
  const order = Array.from({ length: n }, (_, k) => k)
    .sort((a, b) => value[b] / sizes[b] - value[a] / sizes[a] || a - b);
  let sum = 0;
  let start = 0;
  for (const end of blocks.ends) {
    // Request t holds only objects first asked before t, so before end - 1 in this block.
    const got = fillKnapsack(order, sizes, capacity, value, blocks.firstSeen, end - 1);
    sum += (end - start) * got;
    start = end;
  }
  return { bound: sum, sd: Math.sqrt(blocks.requests * second) };
}

/** Whether a pair of miss ratios can be expected at once; see the module doc. */
export interface SeenJoint {
  /** Least of bound minus the pair's weighted hit ratio over lambda (negative: out of reach). */
  slack: number;
  /** In standard deviations of the realized weighted hit ratio at that lambda. */
  slackSd: number;
  lambda: number;
}

/** Least slack over lambda (convex in lambda: a ternary search). */
export function seenJoint(
  blocks: SeenBlocks,
  weights: Float64Array,
  sizes: Uint32Array,
  capacity: number,
  objectMiss: number,
  byteMiss: number,
): SeenJoint {
  const at = (l: number) => {
    const b = seenWeightedBound(blocks, weights, sizes, capacity, l);
    const slack = b.bound - (l * (1 - objectMiss) + (1 - l) * (1 - byteMiss));
    return { slack, slackSd: slack / b.sd, lambda: l };
  };
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 20; i++) {
    const a = lo + (hi - lo) / 3;
    const b = hi - (hi - lo) / 3;
    if (at(a).slack <= at(b).slack) hi = b;
    else lo = a;
  }
  return [at(0), at(1), at((lo + hi) / 2)].reduce((x, y) => y.slack < x.slack ? y : x);
}

/**
 * Our simulator's miss ratios on the variable-size traces (docs/benchmarks.md, `deno task sim
 * zipf0.8_eq ... orm-night`), object / byte, at 1 % and 10 %: the online baselines and LFRU.
 */
export const MEASURED: Record<string, Record<string, [number, number][]>> = {
  "zipf0.8_lognorm": {
    LRU: [[0.7949, 0.8222], [0.5318, 0.5547]],
    ARC: [[0.6902, 0.7189], [0.4614, 0.4820]],
    SIEVE: [[0.6970, 0.7247], [0.4488, 0.4676]],
    "S3-FIFO": [[0.6858, 0.7145], [0.4514, 0.4721]],
    "W-TinyLFU": [[0.6941, 0.7213], [0.4564, 0.4773]],
    GDSF: [[0.5989, 0.8111], [0.2863, 0.5631]],
    LFRU: [[0.6561, 0.7030], [0.4208, 0.4537]],
  },
  "zipf1.0_lognorm": {
    LRU: [[0.4981, 0.5606], [0.2698, 0.3057]],
    ARC: [[0.4094, 0.4632], [0.2267, 0.2577]],
    SIEVE: [[0.4045, 0.4595], [0.2207, 0.2519]],
    "S3-FIFO": [[0.4062, 0.4608], [0.2227, 0.2530]],
    "W-TinyLFU": [[0.4236, 0.4786], [0.2240, 0.2548]],
    GDSF: [[0.3385, 0.5480], [0.1484, 0.3165]],
    LFRU: [[0.3803, 0.4498], [0.1996, 0.2429]],
  },
  "zipf1.2_lognorm": {
    LRU: [[0.2334, 0.3090], [0.1032, 0.1374]],
    ARC: [[0.1848, 0.2464], [0.0848, 0.1133]],
    SIEVE: [[0.1819, 0.2447], [0.0835, 0.1121]],
    "S3-FIFO": [[0.1831, 0.2446], [0.0844, 0.1125]],
    "W-TinyLFU": [[0.1874, 0.2509], [0.0861, 0.1151]],
    GDSF: [[0.1460, 0.3067], [0.0614, 0.1448]],
    LFRU: [[0.1658, 0.2356], [0.0717, 0.1110]],
  },
};

/** The lowest byte miss ratio of the online baselines (not LFRU) in `MEASURED` cell `j`. */
export function bestBaselineByteMiss(
  measured: Record<string, [number, number][]>,
  j: number,
): number {
  return Math.min(
    ...Object.entries(measured).filter(([n]) => n !== "LFRU").map(([, v]) => v[j][1]),
  );
}

if (import.meta.main) {
  const f = (x: number) => x.toFixed(4);
  for (const t of TRACES) {
    const weights = zipfWeights(t.alpha);
    const sizes = objectSizes(t.kind);
    const ids = requestIds(t.alpha);
    if (ids.length !== REQUESTS) throw new Error("unexpected trace length");
    const blocks = seenBlocks(ids, sizes);
    const unit = t.kind === "eq" ? sizes[0] : 1;
    for (const i of [1, 2]) {
      const cap = t.sizes[i] * unit;
      const o = seenWeightedBound(blocks, weights, sizes, cap, 1);
      const y = seenWeightedBound(blocks, weights, sizes, cap, 0);
      const cell = `${t.name} at ${["0.1%", "1%", "10%"][i]}`;
      const measured = MEASURED[t.name];
      if (measured === undefined) {
        console.log(`${cell}: object miss >= ${f(1 - o.bound)} (sd ${f(o.sd)})`);
        continue;
      }
      console.log(
        `${cell}: object miss >= ${f(1 - o.bound)} (sd ${f(o.sd)}), byte miss >= ${
          f(1 - y.bound)
        } (sd ${f(y.sd)})`,
      );
      const j = i - 1;
      const bestByte = bestBaselineByteMiss(measured, j);
      const target = seenJoint(blocks, weights, sizes, cap, measured.GDSF[j][0], bestByte);
      console.log(
        `  GDSF's objects ${f(measured.GDSF[j][0])} with the best bytes ${f(bestByte)}: ${
          target.slack < 0 ? "OUT OF REACH" : "not ruled out"
        } (slack ${target.slack.toFixed(5)} = ${target.slackSd.toFixed(1)} sd at lambda ${
          target.lambda.toFixed(3)
        })`,
      );
      for (const [name, v] of Object.entries(measured)) {
        const s = seenJoint(blocks, weights, sizes, cap, v[j][0], v[j][1]);
        console.log(
          `  ${name.padEnd(9)} ${f(v[j][0])} / ${f(v[j][1])}: slack ${s.slack.toFixed(5)} (${
            s.slackSd.toFixed(1)
          } sd)`,
        );
      }
    }
  }
}
