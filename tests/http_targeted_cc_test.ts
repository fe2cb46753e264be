/**
 * End-to-end: targeted cache-control fields (RFC 9213): `Nearcast-Cache-Control`, then
 * `CDN-Cache-Control`, take precedence over `Cache-Control` and `Expires`; an invalid one is
 * ignored; `Nearcast-Cache-Control` is consumed (peers only), `CDN-Cache-Control` forwarded.
 * Also `must-understand` (RFC 9111 §5.2.2.3).
 */
import { deepStrictEqual as assertEquals, equal } from "node:assert/strict";
import { parseTargeted } from "../lib/http/targeted_cc.ts";
import { startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";

Deno.test("targeted field parsing: a Structured Field Dictionary or nothing", () => {
  const cc = parseTargeted("max-age=600, stale-if-error=60, must-revalidate, foo=(a b);x=1")!;
  assertEquals([cc.maxAge, cc.staleIfError, cc.mustRevalidate], [600, 60, true]);
  equal(parseTargeted("max-age=99999999999")!.maxAge, 2 ** 31);
  equal(parseTargeted('max-age="60"')!.maxAge, undefined);
  equal(parseTargeted("no-store=?0")!.noStore, false);
  equal(parseTargeted("none")!.noStore, false);
  for (const bad of ["", " ", "max-age =100", "max-age= 100", "MaX-aGe=1", "max-age=1, &&", "a,"]) {
    equal(parseTargeted(bad), null, bad);
  }
});

Deno.test("targeted cache-control through a replica", async (t) => {
  const past = new Date(Date.now() - 60_000).toUTCString();
  const routes: Record<string, Record<string, string>> = {
    "/cdn-long": { "cache-control": "max-age=0", "cdn-cache-control": "max-age=3600" },
    "/cdn-short": { "cache-control": "max-age=3600", "cdn-cache-control": "max-age=0" },
    "/cdn-over-no-store": { "cache-control": "no-store", "cdn-cache-control": "max-age=3600" },
    "/cdn-no-store": { "cache-control": "max-age=3600", "cdn-cache-control": "no-store" },
    "/cdn-private": { "cache-control": "max-age=3600", "cdn-cache-control": "private" },
    "/cdn-past-expires": { expires: past, "cdn-cache-control": "max-age=3600" },
    "/cdn-invalid": { "cache-control": "no-store", "cdn-cache-control": "max-age=3600, &&&" },
    "/nearcast": {
      "cache-control": "no-store",
      "cdn-cache-control": "no-store",
      "nearcast-cache-control": "max-age=3600",
    },
    "/nearcast-invalid": {
      "cdn-cache-control": "max-age=3600",
      "nearcast-cache-control": "max-age =5",
    },
    "/nearcast-no-store": { "cache-control": "max-age=3600", "nearcast-cache-control": "no-store" },
    "/mu-200": { "cache-control": "must-understand, no-store, max-age=3600" },
  };
  const origin = await startOrigin({
    ...Object.fromEntries(Object.entries(routes).map(([p, headers]) => [p, { headers, body: p }])),
    "/mu-299": { status: 299, headers: { "cache-control": "must-understand, max-age=3600" } },
  });
  const replica = await startReplica(["-o", origin.url, "--id", "tcc", "--index", "ts"]);
  const get = async (path: string, headers?: Record<string, string>) => {
    const res = await fetch(replica.url + path, { headers });
    await res.body?.cancel();
    return res;
  };
  /** Fetches twice; the second answer's X-Cache and the origin's request count. */
  const twice = async (path: string) => {
    await get(path);
    return [(await get(path)).headers.get("x-cache"), origin.count(path)];
  };
  try {
    await t.step("CDN-Cache-Control wins over Cache-Control and Expires", async () => {
      assertEquals(await twice("/cdn-long"), ["HIT", 1]);
      assertEquals(await twice("/cdn-short"), ["MISS", 2]);
      assertEquals(await twice("/cdn-over-no-store"), ["HIT", 1]);
      assertEquals(await twice("/cdn-no-store"), ["MISS", 2]);
      assertEquals(await twice("/cdn-private"), ["MISS", 2]);
      assertEquals(await twice("/cdn-past-expires"), ["HIT", 1]);
    });
    await t.step("an invalid CDN-Cache-Control is ignored", async () => {
      assertEquals(await twice("/cdn-invalid"), ["MISS", 2]);
    });
    await t.step("Nearcast-Cache-Control wins over both; an invalid one is ignored", async () => {
      assertEquals(await twice("/nearcast"), ["HIT", 1]);
      assertEquals(await twice("/nearcast-invalid"), ["HIT", 1]);
      assertEquals(await twice("/nearcast-no-store"), ["MISS", 2]);
    });
    await t.step("Nearcast-Cache-Control is consumed, CDN-Cache-Control forwarded", async () => {
      for (const path of ["/nearcast", "/nearcast-no-store", "/cdn-long"]) {
        const res = await get(path);
        equal(res.headers.get("nearcast-cache-control"), null, path);
      }
      equal((await get("/nearcast")).headers.get("cdn-cache-control"), "no-store");
      // A peer fills its own cache from the answer: it gets the field.
      const peer = await get("/nearcast", { "x-nearcast-peer": "1" });
      assertEquals([peer.status, peer.headers.get("nearcast-cache-control")], [
        200,
        "max-age=3600",
      ]);
    });
    await t.step(
      "must-understand: no-store ignored for a status understood, else not stored",
      async () => {
        assertEquals(await twice("/mu-200"), ["HIT", 1]);
        assertEquals(await twice("/mu-299"), ["MISS", 2]);
      },
    );
  } finally {
    await replica.close();
    await origin.close();
  }
});
