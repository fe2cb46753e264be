/**
 * What cooperation can win on the bench:coop replay, simulated with caches of C equal-size
 * objects (no processes, no network): three caches, request i going to cache i mod 3, each an
 * LRU or the replica's own LFRU policy (lib/cache/lfru.ts, the TypeScript twin of the WASM
 * index). Origin requests and node-to-node requests of:
 *
 * - `independent`: each cache asks only the origin;
 * - `peer`: a miss asks the two other caches (membership peering), fills from one holding the
 *   object and keeps a copy;
 * - `home`: each object has one home cache (by hash); a miss of an object whose home is
 *   another cache asks the home, which fills it from the origin if it lacks it; no copies;
 * - `home + hot copies` (what `--coop` does): the same, keeping a copy of an object filled
 *   from its home when it missed here before, among the last max(1024, C) misses;
 * - `one shared cache of 3C`: the best a cooperation without duplicates can do (with LRU);
 * - the floor: the distinct objects requested, each of which must come from the origin once.
 *
 * `deno run -A bench/coop/bound.ts [--requests 60000] [--alphas 0.8,1.0,1.2]
 * [--caps 100,350,1000,3000] [--policies lru,lfru]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { requestIds } from "../../scripts/gen_traces.ts";
import { MODES, type Policy, replay, shared } from "./_sim.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    requests: { type: "string" },
    alphas: { type: "string" },
    caps: { type: "string" },
    policies: { type: "string" },
  },
});
const REQUESTS = Number(values.requests ?? 60_000);
const ALPHAS = (values.alphas ?? "0.8,1.0,1.2").split(",").map(Number);
const CAPS = (values.caps ?? "100,350,1000,3000").split(",").map(Number);
const POLICIES = (values.policies ?? "lru,lfru").split(",") as Policy[];

for (const alpha of ALPHAS) {
  const ids = requestIds(alpha).subarray(0, REQUESTS);
  const distinct = new Set(ids).size;
  for (const p of POLICIES) {
    console.log(
      `\nzipf${
        alpha.toFixed(1)
      }_eq, first ${ids.length} requests (${distinct} distinct objects), ` +
        `${p.toUpperCase()}: origin requests (vs independent), node-to-node requests`,
    );
    console.log(
      `| C | ${MODES.join(" | ")} | one shared cache of 3C | floor (distinct objects) |`,
    );
    console.log(`| ---: |${" ---: |".repeat(MODES.length + 2)}`);
    for (const cap of CAPS) {
      const rows = MODES.map((m) => replay(ids, p, cap, m));
      const ind = rows[0].origin;
      const pct = (n: number) => `${(100 * (n / ind - 1)).toFixed(1)} %`;
      const cells = rows.map((x, i) =>
        i === 0 ? `${x.origin}` : `${x.origin} (${pct(x.origin)}); ${x.n2n}`
      );
      const s = shared(ids, p, cap);
      console.log(
        `| ${cap} | ${cells.join(" | ")} | ${s} (${pct(s)}) | ${distinct} (${pct(distinct)}) |`,
      );
    }
  }
}
