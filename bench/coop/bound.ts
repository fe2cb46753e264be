/**
 * What cooperation can win on the bench:coop replay, simulated with LRU caches of C objects
 * (no processes): origin requests of three independent caches (request i to cache i mod 3),
 * of three caches that fill a miss from another cache holding the object (`peer`), of the
 * same without keeping a copy of what another cache holds (`no duplicates`), and of one
 * shared cache of 3C (the best cooperation without duplicates can do).
 *
 * `deno run -A bench/coop/bound.ts [--requests 60000] [--alpha 1.0] [--caps 300,1000,3000]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { requestIds } from "../../scripts/gen_traces.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { requests: { type: "string" }, alpha: { type: "string" }, caps: { type: "string" } },
});
const ids = requestIds(Number(values.alpha ?? 1.0)).subarray(0, Number(values.requests ?? 60_000));
const caps = (values.caps ?? "300,1000,3000").split(",").map(Number);

/** An LRU set of object ids. */
class Lru {
  #m = new Set<number>();
  constructor(readonly cap: number) {}
  has(k: number): boolean {
    return this.#m.has(k);
  }
  /** A lookup that counts as a use. */
  get(k: number): boolean {
    if (!this.#m.delete(k)) return false;
    this.#m.add(k);
    return true;
  }
  set(k: number): void {
    this.#m.delete(k);
    this.#m.add(k);
    if (this.#m.size > this.cap) this.#m.delete(this.#m.values().next().value!);
  }
}

/** Origin requests of three caches of `cap` in `mode`. */
function replay(cap: number, mode: "independent" | "peer" | "no duplicates"): number {
  const c = [0, 1, 2].map(() => new Lru(cap));
  let origin = 0;
  for (let i = 0; i < ids.length; i++) {
    const r = i % 3, k = ids[i];
    if (c[r].get(k)) continue;
    const holder = mode === "independent" ? -1 : c.findIndex((x, j) => j !== r && x.has(k));
    if (holder < 0) {
      origin++;
      c[r].set(k);
    } else if (mode === "peer") c[r].set(k);
    else c[holder].get(k);
  }
  return origin;
}

function shared(cap: number): number {
  const one = new Lru(3 * cap);
  let origin = 0;
  for (const k of ids) {
    if (!one.get(k)) {
      origin++;
      one.set(k);
    }
  }
  return origin;
}

console.log(`${ids.length} requests, ${new Set(ids).size} distinct objects`);
console.log("| C | independent | peer | no duplicates | one shared cache of 3C |");
console.log("| ---: | ---: | ---: | ---: | ---: |");
for (const cap of caps) {
  const ind = replay(cap, "independent");
  const cell = (n: number) => `${n} (${(100 * (n / ind - 1)).toFixed(1)} %)`;
  console.log(
    `| ${cap} | ${ind} | ${cell(replay(cap, "peer"))} | ${cell(replay(cap, "no duplicates"))} | ` +
      `${cell(shared(cap))} |`,
  );
}
