/**
 * End-to-end: `--preload` fills the cache at start-up with progress lines; `--peers` asks a
 * peer before the origin, and peer requests are answered from the cache only (no loops).
 */
import { deepStrictEqual as assertEquals, equal, match, ok } from "node:assert/strict";
import { startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";

async function get(url: string, init?: RequestInit) {
  const res = await fetch(url, init);
  const body = await res.text();
  return { status: res.status, headers: res.headers, body, x: res.headers.get("x-cache") };
}

Deno.test("http peers and preload", async (t) => {
  const routes: Record<string, { headers: Record<string, string>; body: string }> = {};
  for (let i = 0; i < 10; i++) {
    routes[`/p/${i}`] = { headers: { "cache-control": "max-age=60" }, body: `object ${i}` };
  }
  routes["/only-origin"] = { headers: { "cache-control": "max-age=60" }, body: "from origin" };
  const origin = await startOrigin(routes);
  const dir = await Deno.makeTempDir({ prefix: "nearcast_http_peers_" });
  const list = `${dir}/websites.txt`;
  await Deno.writeTextFile(
    list,
    [
      "# objects to warm",
      ...Array.from({ length: 9 }, (_, i) => `/p/${i}`),
      `${origin.url}/p/9`,
      "",
      "not a url or path",
      "/missing",
    ].join("\n"),
  );
  let a: Awaited<ReturnType<typeof startReplica>> | null = null;
  let b: Awaited<ReturnType<typeof startReplica>> | null = null;
  try {
    a = await startReplica([
      "-o",
      origin.url,
      "--id",
      "a",
      "--preload",
      list,
      "--preload-concurrency",
      "4",
    ]);
    await t.step(
      "preload fetches every listed object, with a progress line per batch",
      async () => {
        const done = await a!.waitFor(/^preload: done/);
        equal(done, "preload: done: 10 cached, 0 not cached, 1 skipped, 1 failed");
        const batches = a!.lines.filter((l) => /^preload: batch \d+\/3: /.test(l));
        equal(batches.length, 3);
        match(batches[2], /11\/11 fetched/);
        ok(a!.lines.some((l) => l.startsWith("preload: line 13: skipped: expected a path, a URL")));
        ok(a!.lines.some((l) => l === "preload: line 14: /missing: failed: HTTP 404"));
        for (let i = 0; i < 10; i++) equal(origin.count(`/p/${i}`), 1);
        const r = await get(a!.url + "/p/3");
        assertEquals([r.x, r.body], ["HIT", "object 3"]);
        equal(origin.count("/p/3"), 1);
      },
    );

    b = await startReplica(["-o", origin.url, "--id", "b", "--peers", a.url]);
    await t.step("a miss is answered by a peer that holds the object", async () => {
      const r = await get(b!.url + "/p/5");
      assertEquals([r.status, r.x, r.body], [200, "MISS", "object 5"]);
      equal(origin.count("/p/5"), 1);
      const again = await get(b!.url + "/p/5");
      equal(again.x, "HIT");
      match(again.headers.get("via")!, /nearcast-a.*nearcast-b/);
    });

    await t.step(
      "peer requests are answered from the cache only: 504 when not cached",
      async () => {
        const r = await get(a!.url + "/only-origin", { headers: { "x-nearcast-peer": "1" } });
        equal(r.status, 504);
        equal(origin.count("/only-origin"), 0);
        const hit = await get(a!.url + "/p/1", { headers: { "x-nearcast-peer": "1" } });
        assertEquals([hit.status, hit.x], [200, "HIT"]);
      },
    );

    await t.step("an object no peer holds comes from the origin once, without loops", async () => {
      const r = await get(b!.url + "/only-origin");
      assertEquals([r.status, r.body], [200, "from origin"]);
      equal(origin.count("/only-origin"), 1);
      // a was asked as a peer and did not fetch it for b.
      equal(
        (await get(a!.url + "/only-origin", { headers: { "x-nearcast-peer": "1" } })).status,
        504,
      );
    });

    await t.step("a peer whose body breaks is passed over for the origin", async () => {
      const fakePeer = await startOrigin({
        "/pc": {
          headers: { "x-cache": "HIT", "cache-control": "max-age=60" },
          body: "x".repeat(1000),
          chunks: 4,
          cutAfter: 250,
        },
      });
      origin.routes.set("/pc", { headers: { "cache-control": "max-age=60" }, body: "whole" });
      const c = await startReplica(["-o", origin.url, "--id", "c", "--peers", fakePeer.url]);
      try {
        const r = await get(c.url + "/pc");
        assertEquals([r.status, r.body], [200, "whole"]);
        equal(origin.count("/pc"), 1);
        equal(fakePeer.seen[0].headers.get("x-nearcast-peer"), "1");
        equal((await get(c.url + "/pc")).x, "HIT");
      } finally {
        await c.close();
        await fakePeer.close();
      }
    });
  } finally {
    await b?.close();
    await a?.close();
    await origin.close();
    await Deno.remove(dir, { recursive: true });
  }
});
