/**
 * End-to-end: a miss-heavy load on a small cache with `--data`. An entry evicted while its
 * own store write is in flight is still answered from the body its fill read: never
 * "missing or corrupt; refetching" (which also cost a second origin fetch).
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";

const OBJECTS = 80;
// Above the store's file threshold (64 KiB): its write awaits file I/O, so others run meanwhile.
const SIZE = 100_000;
const CONCURRENCY = 24;
const PASSES = 4;

function bodyOf(i: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(SIZE).map((_, j) => (i * 31 + j * 7) & 0xff);
}

Deno.test("http store: entries evicted during their store write are served, not refetched", async () => {
  const routes: Record<string, { headers: Record<string, string>; body: Uint8Array<ArrayBuffer> }> =
    {};
  for (let i = 0; i < OBJECTS; i++) {
    routes[`/o${i}`] = { headers: { "cache-control": "max-age=600" }, body: bodyOf(i) };
  }
  const origin = await startOrigin(routes);
  const dir = await Deno.makeTempDir({ prefix: "nearcast_http_evict_" });
  // Room for about five objects: most misses evict an entry whose write is still in flight.
  const replica = await startReplica([
    "-o",
    origin.url,
    "--id",
    "e",
    "--data",
    dir,
    "--cache-bytes",
    "600KiB",
  ]);
  try {
    // Each object is asked for several times in a shuffled order, so the index admits
    // (its admission policy favours objects seen before) and evicts all along.
    const order: number[] = [];
    let x = 12345;
    for (let pass = 0; pass < PASSES; pass++) for (let i = 0; i < OBJECTS; i++) order.push(i);
    for (let k = order.length - 1; k > 0; k--) {
      x = (x * 1103515245 + 12345) >>> 0;
      const j = x % (k + 1);
      [order[k], order[j]] = [order[j], order[k]];
    }
    let next = 0;
    const worker = async () => {
      while (next < order.length) {
        const i = order[next++];
        const res = await fetch(`${replica.url}/o${i}`);
        const got = new Uint8Array(await res.arrayBuffer());
        equal(res.status, 200, `/o${i}`);
        deepStrictEqual(got, bodyOf(i), `/o${i} body`);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const refetched = replica.lines.filter((l) => l.includes("missing or corrupt"));
    deepStrictEqual(refetched, [], "no stored body reported missing");
    const metrics = await (await fetch(`${replica.url}/_cdn/metrics`)).text();
    const evictions = Number(/^nearcast_http_cache_evictions_total (\d+)$/m.exec(metrics)?.[1]);
    ok(evictions > OBJECTS, `the load evicted all along: ${evictions} evictions`);
  } finally {
    await replica.close();
    await origin.close();
    await Deno.remove(dir, { recursive: true });
  }
});
