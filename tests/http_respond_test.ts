/**
 * Response building (lib/http/respond.ts) and forwarding with invalidation
 * (lib/http/forward.ts), in-process against a real origin on loopback.
 */
import { deepStrictEqual, equal, notEqual } from "node:assert/strict";
import { HttpCache } from "../lib/http/cache.ts";
import { createForwarder, sameOriginPath } from "../lib/http/forward.ts";
import { httpParts } from "./_http_parts.ts";
import { startOrigin } from "./_http_origin.ts";

const parts = () => httpParts();

async function store(cache: HttpCache, url: string, body: string) {
  const t = Date.now();
  const entry = await cache.put(url, new Headers(), {
    status: 200,
    headers: [["cache-control", "max-age=60"], ["etag", '"e"'], ["via", "1.0 up"]],
    body: new TextEncoder().encode(body),
    requestTime: t,
    responseTime: t,
  });
  return entry!;
}

Deno.test("respond: own answers, entries, relayed responses", async () => {
  const { cache, metrics, respond } = parts();
  const t = respond.text(503, "busy", [["retry-after", "1"]]);
  deepStrictEqual(
    [t.status, await t.text(), t.headers.get("cache-control"), t.headers.get("via")],
    [503, "503: busy\n", "no-store", "1.1 t"],
  );
  equal(t.headers.get("retry-after"), "1");

  const entry = await store(cache, "/e", "entry body");
  const hit = await respond.entry(new Request("http://r/e"), entry, "HIT", 3);
  deepStrictEqual(
    [hit.status, await hit.text(), hit.headers.get("age"), hit.headers.get("x-cache")],
    [200, "entry body", "3", "HIT"],
  );
  equal(hit.headers.get("via"), "1.0 up, 1.1 t");
  const again = await respond.entry(new Request("http://r/e"), entry, "HIT", 3);
  equal(await again.text(), "entry body", "the HIT template serves its body again");
  const nm = await respond.entry(
    new Request("http://r/e", { headers: { "if-none-match": '"e"' } }),
    entry,
    "HIT",
    3,
  );
  equal(nm.status, 304);
  const range = await respond.entry(
    new Request("http://r/e", { headers: { range: "bytes=0-4" } }),
    entry,
    "HIT",
    3,
  );
  deepStrictEqual([range.status, await range.text()], [206, "entry"]);

  const b = respond.buffered(200, [["content-length", "3"], ["via", "1.0 up"]], new Uint8Array(3));
  deepStrictEqual(
    [b.headers.get("x-cache"), b.headers.get("via"), (await b.arrayBuffer()).byteLength],
    ["MISS", "1.0 up, 1.1 t", 3],
  );
  const p = respond.passThrough(204, [], new Blob(["x"]).stream());
  deepStrictEqual([p.status, p.body, p.headers.get("x-cache")], [204, null, "MISS"]);
  notEqual(metrics.bytesSent, 0);
});

Deno.test("forward: same-origin Location paths", () => {
  const base = "http://127.0.0.1:9";
  equal(sameOriginPath("/a?b", "http://r:1/x", base), "/a?b");
  equal(sameOriginPath("http://r:1/c", "http://r:1/x", base), "/c");
  equal(sameOriginPath(`${base}/d`, "http://r:1/x", base), "/d");
  equal(sameOriginPath("http://elsewhere/e", "http://r:1/x", base), null);
  equal(sameOriginPath(null, "http://r:1/x", base), null);
  equal(sameOriginPath("http://[", "http://r:1/x", base), null);
});

Deno.test("forward: a successful unsafe request invalidates its URL and Location", async () => {
  const origin = await startOrigin({
    "/item": {
      methods: {
        POST: { status: 201, headers: { location: "/item/2" } },
        DELETE: { status: 404 },
      },
    },
  });
  try {
    const { cache, metrics, respond } = parts();
    const forward = createForwarder({
      cache,
      metrics,
      respond,
      originBase: origin.url,
      originTimeoutMs: 5000,
      now: Date.now,
    });
    await store(cache, "/item", "list");
    await store(cache, "/item/2", "two");
    const failed = await forward(new Request("http://r/item", { method: "DELETE" }), "/item");
    await failed.body?.cancel();
    equal(failed.status, 404);
    notEqual(cache.get("/item"), null, "an error answer invalidates nothing");
    const res = await forward(
      new Request("http://r/item", { method: "POST", body: "x" }),
      "/item",
    );
    await res.body?.cancel();
    deepStrictEqual([res.status, res.headers.get("x-cache")], [201, "MISS"]);
    deepStrictEqual([cache.get("/item"), cache.get("/item/2")], [null, null]);
    equal(metrics.purged, 2);
    deepStrictEqual(origin.seen.map((s) => s.method), ["DELETE", "POST"]);
  } finally {
    await origin.close();
  }
});
