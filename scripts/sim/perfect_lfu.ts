/**
 * Perfect LFU with a mixed cost: an idealized reference for the object/byte trade on the
 * variable-size traces, not a baseline and not something a replica could run. It counts every
 * request of every key from the start of the trace, exactly and forever (one counter per key
 * ever seen, also after eviction; popularity never ages), and values an object at
 *
 *     count × (lambda / size + (1 − lambda) / meanSize)
 *
 * (meanSize: the trace's mean request size): its expected hits per byte held, each hit worth
 * `lambda` of an object hit and `1 − lambda` of a byte hit measured in mean objects. lambda = 1
 * is frequency per byte (GDSF's priority, with exact counts and no inflation), lambda = 0 plain
 * frequency (LFU). A missed object is admitted by evicting the least valued entries while they
 * are valued below it; if it still does not fit it is refused.
 *
 * Under the independent reference model exact whole-trace counts are the best popularity
 * estimate there is, so this family shows what a frequency-based policy could reach on the
 * synthetic traces with no memory or aging limits, and whether any one lambda is at or below
 * GDSF in objects and the best baseline in bytes at once (the six object cells LFRU misses).
 *
 * Usage: `deno run scripts/sim/perfect_lfu.ts [--lambda L,L,...]` (the three variable-size
 * traces at 1 % and 10 %, and the drifting trace d20 at 1 % and 10 %, under a minute).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { byteMissRatio, emptyResult, missRatio, type Result, type Trace } from "./_common.ts";
import { IndexedHeap } from "./_heap.ts";
import { parseTrace } from "./_parse.ts";
import {
  EQUAL_SIZE,
  movingZipfIds,
  objectSizes,
  requestIds,
  REQUESTS,
  traceCsv,
  TRACES,
} from "../gen_traces.ts";
import { capacityFor } from "../sim.ts";
import { bestBaselineByteMiss, MEASURED } from "./seen_bound.ts";

/** Replays `t` through perfect LFU valued with `lambda` (see the module doc), `capacity` bytes. */
export function simulatePerfectLfu(t: Trace, capacity: number, lambda: number): Result {
  const r = emptyResult(t);
  const meanSize = r.bytes / Math.max(r.requests, 1);
  const heap = new IndexedHeap(t.objects);
  const count = new Float64Array(t.objects);
  const held = new Float64Array(t.objects);
  const worth = (o: number, size: number) =>
    count[o] * (lambda / Math.max(size, 1) + (1 - lambda) / meanSize);
  let used = 0;
  for (let i = 0; i < t.obj.length; i++) {
    const o = t.obj[i];
    const s = t.size[i];
    count[o]++;
    if (heap.has(o)) {
      heap.set(o, worth(o, held[o]), i);
      continue;
    }
    r.misses++;
    r.missBytes += s;
    if (s > capacity) continue;
    const value = worth(o, s);
    while (used + s > capacity) {
      const v = heap.top();
      if (heap.key[v] >= value) break;
      heap.remove(v);
      used -= held[v];
    }
    if (used + s > capacity) continue;
    held[o] = s;
    used += s;
    heap.set(o, value, i);
  }
  return r;
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { lambda: { type: "string" } } });
  const lambdas = (values.lambda ?? "0,0.4,0.42,0.44,0.445,0.45,0.46,0.5,1").split(",")
    .map(Number);
  if (lambdas.some((l) => !(l >= 0 && l <= 1))) {
    console.error(`--lambda takes numbers in [0, 1]: received ${values.lambda}`);
    Deno.exit(2);
  }
  const f = (x: number) => x.toFixed(4);
  const met = new Map<number, number>();
  for (const spec of TRACES.filter((s) => s.kind === "lognorm")) {
    const trace = parseTrace(traceCsv(requestIds(spec.alpha), objectSizes(spec.kind)));
    const measured = MEASURED[spec.name];
    for (const [j, fraction] of [0.01, 0.1].entries()) {
      const cap = capacityFor(trace, fraction).bytes;
      const gdsf = measured.GDSF[j][0];
      const bestByte = bestBaselineByteMiss(measured, j);
      console.log(
        `${spec.name} at ${fraction * 100}%: GDSF's objects ${f(gdsf)}, best baseline bytes ${
          f(bestByte)
        }, LFRU ${f(measured.LFRU[j][0])} / ${f(measured.LFRU[j][1])}`,
      );
      for (const lambda of lambdas) {
        const r = simulatePerfectLfu(trace, cap, lambda);
        // Compared as the table prints them, to four decimals.
        const o = Number(missRatio(r).toFixed(4));
        const b = Number(byteMissRatio(r).toFixed(4));
        const both = o <= gdsf && b <= bestByte;
        if (both) met.set(lambda, (met.get(lambda) ?? 0) + 1);
        console.log(
          `  lambda ${lambda}: ${f(o)} / ${f(b)}  objects ${
            o <= gdsf ? "met" : `+${f(o - gdsf)}`
          }, bytes ${b <= bestByte ? "met" : `+${f(b - bestByte)}`}`,
        );
      }
    }
  }
  console.log("cells with both met, per lambda (of 6):");
  for (const lambda of lambdas) console.log(`  ${lambda}: ${met.get(lambda) ?? 0}`);
  // Popularity that moves (docs/benchmarks.md, "Drifting popularity"): counts that never age.
  const drift = parseTrace(traceCsv(movingZipfIds(1.0, 20, REQUESTS), EQUAL_SIZE));
  for (const fraction of [0.01, 0.1]) {
    const r = simulatePerfectLfu(drift, capacityFor(drift, fraction).bytes, 1);
    console.log(`moving_zipf1.0_d20 at ${fraction * 100}%: ${f(missRatio(r))}`);
  }
}
