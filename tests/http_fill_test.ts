/**
 * Filling (lib/http/fill.ts) in-process against a real origin on loopback: concurrent misses
 * share one origin fetch, only forwarded headers go upstream, an unreachable origin is a 502.
 */
import { deepStrictEqual, equal, match } from "node:assert/strict";
import { EMPTY_CACHE_CONTROL } from "../lib/http/cache_control.ts";
import { createFiller } from "../lib/http/fill.ts";
import { httpParts } from "./_http_parts.ts";
import { startOrigin } from "./_http_origin.ts";

function filler(originBase: string) {
  const { cache, metrics, respond } = httpParts({ idleTimeoutMs: 5000 });
  const f = createFiller({
    cache,
    store: null,
    metrics,
    respond,
    originBase,
    originTimeoutMs: 5000,
    coalesceTimeoutMs: 6000,
    peers: [],
    peerTimeoutMs: 1000,
    via: "1.1 t",
    now: Date.now,
    log: () => {},
  });
  return { cache, metrics, f };
}

Deno.test("fill: concurrent misses share one origin fetch; the result is cached", async () => {
  const origin = await startOrigin({
    "/slow": { headers: { "cache-control": "max-age=60" }, body: "slow body", delayMs: 200 },
  });
  try {
    const { cache, metrics, f } = filler(origin.url);
    const req = () =>
      new Request("http://r/slow", { headers: { "x-private": "1", accept: "text/plain" } });
    const answers = await Promise.all(
      [1, 2, 3].map(() => f.serve(req(), "/slow", "/slow", EMPTY_CACHE_CONTROL, null)),
    );
    deepStrictEqual(await Promise.all(answers.map((r) => r.text())), [
      "slow body",
      "slow body",
      "slow body",
    ]);
    equal(origin.count("/slow"), 1);
    equal(metrics.coalesced, 2);
    equal(cache.get("/slow")?.status, 200);
    const seen = origin.seen[0].headers;
    deepStrictEqual([seen.get("x-private"), seen.get("accept")], [null, "text/plain"]);
    await f.settled();
  } finally {
    await origin.close();
  }
});

Deno.test("fill: an unreachable origin is a 502 naming it", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close(); // nobody listens there now
  const { f } = filler(`http://127.0.0.1:${port}`);
  const res = await f.serve(new Request("http://r/x"), "/x", "/x", EMPTY_CACHE_CONTROL, null);
  equal(res.status, 502);
  match(await res.text(), /origin unreachable/);
});
