/**
 * End-to-end: the `Vary`-selected request headers are normalised in the cache key: list
 * whitespace for every header; case, order and `q` weights for the content-negotiation ones.
 */
import { deepStrictEqual as assertEquals, equal } from "node:assert/strict";
import { normaliseVaryValue } from "../lib/http/vary_key.ts";
import { startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";

Deno.test("vary key normalisation", () => {
  equal(normaliseVaryValue("accept-language", "EN-us;q=0.80, fr"), "fr,en-us;q=0.8");
  equal(normaliseVaryValue("accept-language", "fr;q=1.0 , en-US ; q=0.8"), "fr,en-us;q=0.8");
  equal(normaliseVaryValue("accept-language", "de, en"), "de,en");
  equal(normaliseVaryValue("accept", "text/html;level=1, */*;q=0"), "text/html;level=1,*/*;q=0");
  equal(normaliseVaryValue("x-foo", ' 1,  2 , "a, b" '), '1,2,"a, b"');
  equal(normaliseVaryValue("x-foo", "B, a"), "B,a");
});

Deno.test("vary key normalisation through a replica", async (t) => {
  const origin = await startOrigin({
    "/lang": {
      headers: { "cache-control": "max-age=3600", vary: "Accept-Language" },
      body: (_r, n) => `lang ${n}`,
    },
    "/foo": {
      headers: { "cache-control": "max-age=3600", vary: "Foo" },
      body: (_r, n) => `foo ${n}`,
    },
  });
  const replica = await startReplica(["-o", origin.url, "--id", "varykey", "--index", "ts"]);
  const get = async (path: string, name: string, value: string) => {
    const res = await fetch(replica.url + path, { headers: { [name]: value } });
    return [res.headers.get("x-cache"), await res.text()];
  };
  try {
    await t.step("Accept-Language: order of equal weights, case, q spelling", async () => {
      assertEquals(await get("/lang", "accept-language", "en, de"), ["MISS", "lang 1"]);
      assertEquals(await get("/lang", "accept-language", "de, en"), ["HIT", "lang 1"]);
      assertEquals(await get("/lang", "accept-language", "DE,EN"), ["HIT", "lang 1"]);
      assertEquals(await get("/lang", "accept-language", "fr, en;q=0.8"), ["MISS", "lang 2"]);
      assertEquals(await get("/lang", "accept-language", "en; q=0.80, FR;q=1"), ["HIT", "lang 2"]);
    });
    await t.step("other weights are another variant", async () => {
      assertEquals(await get("/lang", "accept-language", "en, fr;q=0.8"), ["MISS", "lang 3"]);
    });
    await t.step("any header: list whitespace, not case", async () => {
      // The first fill does not know the Vary yet: it is fetched again with Foo forwarded.
      const [x, body] = await get("/foo", "foo", "1,2");
      equal(x, "MISS");
      assertEquals(await get("/foo", "foo", " 1,  2 "), ["HIT", body]);
      assertEquals(await get("/foo", "foo", "1, 2"), ["HIT", body]);
      equal((await get("/foo", "foo", "A"))[0], "MISS");
      equal((await get("/foo", "foo", "a"))[0], "MISS");
      equal((await get("/foo", "foo", "A"))[0], "HIT");
    });
  } finally {
    await replica.close();
    await origin.close();
  }
});
