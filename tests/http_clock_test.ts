/**
 * The replica's handler in-process with an injected clock (a real origin on loopback): ages,
 * expiry, revalidation and stale-while-revalidate without sleeping.
 */
import { deepStrictEqual as assertEquals, equal } from "node:assert/strict";
import { TsLfru } from "../lib/cache/lfru.ts";
import { hashKey } from "../lib/cache/hash.ts";
import { createReplica } from "../lib/http/replica.ts";
import { startOrigin } from "./_http_origin.ts";

Deno.test("http clock: age, expiry, revalidation and swr follow the injected clock", async () => {
  let now = Date.now();
  // The origin's Date follows the same clock, as a real origin's would.
  const date = () => new Date(now).toUTCString();
  const origin = await startOrigin({
    "/c": {
      headers: () => ({ "cache-control": "max-age=10", etag: '"c"', date: date() }),
      body: "c",
      conditional: true,
    },
    "/swr": {
      headers: (_r, n) => ({
        "cache-control": "max-age=10, stale-while-revalidate=5",
        "x-n": String(n),
        date: date(),
      }),
      body: "s",
    },
    "/h": {
      headers: () => ({ "last-modified": new Date(now - 100_000).toUTCString(), date: date() }),
      body: "h",
    },
  });
  const replica = createReplica({
    origin: origin.url,
    id: "clock",
    index: new TsLfru(1 << 20),
    hashKey,
    now: () => now,
    log: () => {},
  });
  const get = async (path: string) => {
    const res = await replica.handler(new Request(`http://replica${path}`));
    await res.arrayBuffer();
    return [res.headers.get("x-cache"), res.headers.get("age")];
  };
  try {
    assertEquals(await get("/c"), ["MISS", "0"]);
    now += 5_000;
    assertEquals(await get("/c"), ["HIT", "5"]);
    now += 4_000;
    assertEquals(await get("/c"), ["HIT", "9"]);
    now += 2_000;
    assertEquals(await get("/c"), ["REVALIDATED", "0"]);
    equal(origin.count("/c"), 2);
    now += 3_000;
    assertEquals(await get("/c"), ["HIT", "3"]);

    assertEquals(await get("/swr"), ["MISS", "0"]);
    now += 12_000;
    assertEquals(await get("/swr"), ["STALE", "12"]);
    await replica.close(); // waits for the background revalidation
    equal(origin.count("/swr"), 2);
    assertEquals(await get("/swr"), ["HIT", "0"]);
    now += 16_000; // past max-age + stale-while-revalidate: revalidated before use
    assertEquals(await get("/swr"), ["MISS", "0"]);

    // Heuristic: 10% of 100 s since Last-Modified.
    assertEquals(await get("/h"), ["MISS", "0"]);
    now += 9_000;
    equal((await get("/h"))[0], "HIT");
    now += 2_000;
    equal((await get("/h"))[0], "MISS");
    equal(origin.count("/h"), 2);
  } finally {
    await replica.close();
    await origin.close();
  }
});
