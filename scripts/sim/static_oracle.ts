/**
 * A static oracle for the object/byte trade-off: it knows every object's request count in the
 * whole trace and holds, from the start, the objects of highest `count / size^beta` that fit
 * (greedily, in that order). Each object's first request is a miss, every later request to a
 * held object a hit. It is not a bound (a dynamic policy can beat it), but it shows what a
 * priority of frequency per size^beta gives with perfect frequencies: beta = 0 favours bytes,
 * beta = 1 (frequency per byte, GDSF's priority) favours objects.
 *
 * Usage: `deno run --allow-read scripts/sim/static_oracle.ts TRACE.csv [FRACTION...]`
 * (default fractions 0.01 and 0.1), for beta 0, 0.25, 0.5, 0.75 and 1.
 *
 * @module
 */
import { byteMissRatio, emptyResult, missRatio, type Result, type Trace } from "./_common.ts";
import { parseTrace } from "./_parse.ts";

/** Replays `t` through the static oracle of exponent `beta` with `capacity` bytes. */
export function simulateStaticOracle(t: Trace, capacity: number, beta: number): Result {
  const count = new Float64Array(t.objects);
  for (let i = 0; i < t.obj.length; i++) count[t.obj[i]]++;
  const size = t.firstSize;
  const priority = (o: number) => count[o] / Math.pow(Math.max(size[o], 1), beta);
  const order = Array.from({ length: t.objects }, (_, o) => o);
  order.sort((a, b) => priority(b) - priority(a) || a - b);
  const held = new Uint8Array(t.objects);
  let used = 0;
  for (const o of order) {
    if (used + size[o] > capacity) continue;
    used += size[o];
    held[o] = 1;
  }
  const r = emptyResult(t);
  const seen = new Uint8Array(t.objects);
  for (let i = 0; i < t.obj.length; i++) {
    const o = t.obj[i];
    if (held[o] && seen[o]) continue;
    seen[o] = 1;
    r.misses++;
    r.missBytes += t.size[i];
  }
  return r;
}

if (import.meta.main) {
  const { capacityFor } = await import("../sim.ts");
  const [path, ...rest] = Deno.args;
  if (!path) {
    console.error("usage: static_oracle.ts TRACE.csv [FRACTION...]");
    Deno.exit(2);
  }
  const t = parseTrace(await Deno.readFile(path));
  const fractions = rest.length > 0 ? rest.map(Number) : [0.01, 0.1];
  console.log("| trace | size | beta | object | byte |\n|---|---|---:|---:|---:|");
  for (const f of fractions) {
    for (const beta of [0, 0.25, 0.5, 0.75, 1]) {
      const r = simulateStaticOracle(t, capacityFor(t, f).bytes, beta);
      const name = path.split("/").pop();
      console.log(
        `| ${name} | ${f * 100}% | ${beta} | ${missRatio(r).toFixed(4)} | ${
          byteMissRatio(r).toFixed(4)
        } |`,
      );
    }
  }
}
