/**
 * End-to-end: request coalescing, its timeout, and origin failures (down, slow, cut body,
 * short Content-Length), and responses too large to cache.
 */
import { deepStrictEqual as assertEquals, equal, ok, rejects } from "node:assert/strict";
import { startCutOrigin, startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";

async function get(url: string, init?: RequestInit) {
  const res = await fetch(url, init);
  const body = await res.text();
  return { status: res.status, headers: res.headers, body, x: res.headers.get("x-cache") };
}

const big = new Uint8Array(300_000).map((_, i) => i % 251);

Deno.test("http failures: coalescing, timeouts, broken origins, large objects", async (t) => {
  const origin = await startOrigin({
    "/slow": { headers: { "cache-control": "max-age=60" }, body: "slow body", delayMs: 300 },
    "/stuck": { headers: { "cache-control": "max-age=60" }, body: "late", delayMs: 1200 },
    "/tooslow": { headers: { "cache-control": "max-age=60" }, body: "never", delayMs: 4000 },
    "/cut": {
      headers: { "cache-control": "max-age=60" },
      body: "0123456789".repeat(100),
      chunks: 10,
      cutAfter: 500,
    },
    "/big": { headers: { "cache-control": "max-age=60" }, body: big, ranges: true },
    "/bigchunked": { headers: { "cache-control": "max-age=60" }, body: big, chunks: 30 },
    "/private": { headers: { "cache-control": "private" }, body: "mine", delayMs: 200 },
    "/stall": {
      headers: { "cache-control": "no-store" },
      body: "x".repeat(3000),
      chunks: 3,
      chunkDelayMs: 5000,
    },
  });
  const cut = startCutOrigin(1000, 400);
  const replica = await startReplica([
    "-o",
    origin.url,
    "--id",
    "fail",
    "--index",
    "ts",
    "--origin-timeout",
    "2s",
    "--coalesce-timeout",
    "500ms",
    "--max-object-bytes",
    "100KB",
  ]);
  const downReplica = await startReplica(["-o", cut.url, "--id", "cut", "--origin-timeout", "2s"]);
  try {
    await t.step("concurrent misses for one key cause exactly one origin fetch", async () => {
      const all = await Promise.all(Array.from({ length: 10 }, () => get(replica.url + "/slow")));
      for (const r of all) assertEquals([r.status, r.body], [200, "slow body"]);
      equal(origin.count("/slow"), 1);
      // Waiters are answered from the shared fetch (MISS); a very late one may find it stored.
      ok(all.every((r) => r.x === "MISS" || r.x === "HIT"));
      ok(all.filter((r) => r.x === "MISS").length >= 2);
      const metrics = await (await fetch(replica.url + "/_cdn/metrics")).text();
      ok(Number(/^nearcast_http_coalesced_total (\d+)$/m.exec(metrics)![1]) >= 1, metrics);
      equal((await get(replica.url + "/slow")).x, "HIT");
    });

    await t.step("uncacheable answers are not shared: each waiter fetches its own", async () => {
      const all = await Promise.all(Array.from({ length: 3 }, () => get(replica.url + "/private")));
      for (const r of all) equal(r.body, "mine");
      equal(origin.count("/private"), 3);
    });

    await t.step("a stuck fetch does not hold waiters past the coalesce timeout", async () => {
      const all = await Promise.all(Array.from({ length: 3 }, () => get(replica.url + "/stuck")));
      for (const r of all) assertEquals([r.status, r.body], [200, "late"]);
      // The waiters gave up after 500 ms and fetched on their own.
      equal(origin.count("/stuck"), 3);
    });

    await t.step("an origin slower than --origin-timeout gives 504", async () => {
      const r = await get(replica.url + "/tooslow");
      equal(r.status, 504);
      ok(r.body.includes("2000 ms"), r.body);
    });

    await t.step("an origin cutting the body mid-way gives 502 and caches nothing", async () => {
      const r = await get(replica.url + "/cut");
      equal(r.status, 502);
      const again = await get(replica.url + "/cut");
      equal(again.status, 502);
      equal(origin.count("/cut"), 2);
    });

    await t.step(
      "a body shorter than its Content-Length gives 502 and caches nothing",
      async () => {
        const r = await get(downReplica.url + "/x");
        equal(r.status, 502);
        const again = await get(downReplica.url + "/x");
        equal(again.status, 502);
        equal(cut.count(), 2);
      },
    );

    await t.step("a response over --max-object-bytes is streamed whole, never cached", async () => {
      for (const p of ["/big", "/bigchunked"]) {
        for (let i = 0; i < 2; i++) {
          const res = await fetch(replica.url + p);
          const body = new Uint8Array(await res.arrayBuffer());
          equal(res.headers.get("x-cache"), "MISS");
          equal(body.byteLength, big.byteLength);
          ok(body.every((b, j) => b === big[j]), `${p} body intact`);
        }
        equal(origin.count(p), 2, p);
      }
    });

    await t.step("a range of an object too large to cache is asked of the origin", async () => {
      const res = await fetch(replica.url + "/big", { headers: { range: "bytes=10-19" } });
      const body = new Uint8Array(await res.arrayBuffer());
      assertEquals([res.status, res.headers.get("content-range")], [
        206,
        `bytes 10-19/${big.byteLength}`,
      ]);
      assertEquals([...body], [...big.subarray(10, 20)]);
      equal(
        origin.seen.filter((s) => s.path === "/big").at(-1)!.headers.get("range"),
        "bytes=10-19",
      );
    });

    await t.step(
      "a streamed body from an origin that stalls is cut after the timeout",
      async () => {
        const res = await fetch(replica.url + "/stall");
        equal(res.status, 200);
        await rejects(res.arrayBuffer());
      },
    );

    await t.step("the replica keeps serving after all this", async () => {
      equal((await get(replica.url + "/slow")).x, "HIT");
      const health = await (await fetch(replica.url + "/_cdn/health")).json();
      equal(health.status, "ok");
    });

    await t.step("an origin that is down gives 502", async () => {
      await cut.close();
      const r = await get(downReplica.url + "/y");
      equal(r.status, 502);
      ok(r.body.includes("origin unreachable"), r.body);
    });
  } finally {
    await downReplica.close();
    await replica.close();
    await cut.close();
    await origin.close();
  }
});
