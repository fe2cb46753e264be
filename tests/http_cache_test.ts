import { deepStrictEqual as assertEquals, equal, notEqual, ok, rejects } from "node:assert/strict";
import { cacheKey, varyNames } from "../lib/http/cache.ts";
import { Coalescer } from "../lib/http/coalesce.ts";
import { endToEnd, freshenHeaders } from "../lib/http/headers.ts";
import { parseDuration, parseSize } from "../lib/http/units.ts";
import { testCache } from "./_http_parts.ts";

const T0 = Date.UTC(2026, 0, 1);
const enc = new TextEncoder();

function parts(body: string, headers: [string, string][] = [["cache-control", "max-age=60"]]) {
  return { status: 200, headers, body: enc.encode(body), requestTime: T0, responseTime: T0 };
}

Deno.test("cache: put, get by key, full key compared", async () => {
  const c = testCache("1.1 nearcast-x");
  const e = await c.put("/a", new Headers(), parts("hello"));
  ok(e !== null);
  equal(c.get("/a"), e);
  equal(c.get("/b"), null);
  assertEquals(new TextDecoder().decode(e.body!), "hello");
  assertEquals(e.outHeaders.at(-1), ["via", "1.1 nearcast-x"]);
});

Deno.test("cache: Vary keys one entry per varying request header", async () => {
  const c = testCache("v");
  const vary: [string, string][] = [["cache-control", "max-age=60"], [
    "vary",
    "Accept-Language, accept-language",
  ]];
  const en = new Headers({ "accept-language": "en" });
  const fr = new Headers({ "accept-language": "fr" });
  await c.put("/p", en, parts("hello", vary));
  await c.put("/p", fr, parts("bonjour", vary));
  assertEquals(varyNames("Accept-Language, accept-language"), ["accept-language"]);
  equal(c.keyFor("/p", en), cacheKey("/p", ["accept-language"], en));
  notEqual(c.keyFor("/p", en), c.keyFor("/p", fr));
  assertEquals(new TextDecoder().decode(c.get(c.keyFor("/p", en))!.body!), "hello");
  assertEquals(new TextDecoder().decode(c.get(c.keyFor("/p", fr))!.body!), "bonjour");
  equal(c.invalidate("/p"), 2);
  equal(c.count, 0);
});

Deno.test("cache: the budget evicts and frees bodies; too-large objects are refused", async () => {
  // Room for two 3000-byte entries: each counts its body twice (hit template) plus bookkeeping.
  const c = testCache("v", 20 * 1024, 4096);
  equal(await c.put("/big", new Headers(), parts("x".repeat(5000))), null);
  const first = await c.put("/0", new Headers(), parts("x".repeat(3000)));
  await c.put("/1", new Headers(), parts("x".repeat(3000)));
  // The LFRU admission wants a newcomer to be more popular than its victim: ask for it first.
  for (let i = 0; i < 5; i++) c.get("/2");
  ok(await c.put("/2", new Headers(), parts("x".repeat(3000))) !== null);
  ok(c.usedBytes <= 20 * 1024);
  ok(c.evictions > 0);
  ok(first !== null && c.get("/0") === null && first.body === null, "evicted body freed");
});

Deno.test("cache: purge by prefix", async () => {
  const c = testCache("v");
  for (const p of ["/img/a", "/img/b", "/css/a"]) await c.put(p, new Headers(), parts(p));
  equal(c.purgePrefix("/img/"), 2);
  ok(c.get("/css/a") !== null);
});

Deno.test("cache: a 304 freshens headers but not the body's", async () => {
  const c = testCache("v");
  const e = (await c.put(
    "/f",
    new Headers(),
    parts("abc", [
      ["cache-control", "max-age=1"],
      ["content-type", "text/plain"],
      ["date", new Date(T0).toUTCString()],
      ["x-version", "1"],
    ]),
  ))!;
  c.freshen(
    e,
    [["cache-control", "max-age=100"], ["x-version", "2"], ["content-type", "text/html"]],
    T0 + 5000,
    T0 + 5000,
  );
  equal(e.lifetime, 100);
  equal(e.responseTime, T0 + 5000);
  // The 304 had no Date: its arrival time stands in, not the stored Date (which would age it).
  equal(e.initialAge, 0);
  assertEquals(
    freshenHeaders([["a", "1"], ["b", "1"]], [["b", "2"], ["content-length", "9"]]),
    [["a", "1"], ["b", "2"]],
  );
  ok(e.headers.some(([n, v]) => n === "content-type" && v === "text/plain"));
  ok(e.headers.some(([n, v]) => n === "x-version" && v === "2"));
});

Deno.test("headers: hop-by-hop and Connection-named headers are dropped", () => {
  const h = new Headers({
    connection: "x-secret, close",
    "x-secret": "1",
    "keep-alive": "5",
    te: "trailers",
    trailer: "x",
    upgrade: "h2c",
    "proxy-authorization": "x",
    "proxy-foo": "x",
    age: "3",
    "x-keep": "yes",
  });
  assertEquals(endToEnd(h), [["x-keep", "yes"]]);
});

Deno.test("coalescer: one flight per key; followers share it; timeout lets them go", async () => {
  const co = new Coalescer<number>(200);
  let calls = 0;
  let release!: (v: number) => void;
  const slow = () => {
    calls++;
    return new Promise<number>((r) => (release = r));
  };
  const a = co.run("k", slow);
  const b = co.run("k", slow);
  const other = co.run("other", () => Promise.resolve(7));
  release(42);
  assertEquals(await a, { role: "leader", value: 42 });
  assertEquals(await b, { role: "follower", value: 42 });
  assertEquals(await other, { role: "leader", value: 7 });
  equal(calls, 1);
  equal(co.size, 0);
  // A stuck leader: the follower gives up after the timeout.
  const stuck = co.run("s", () => new Promise<number>(() => {}));
  assertEquals(await co.run("s", slow), { role: "timeout" });
  void stuck;
});

Deno.test("coalescer: a failing leader rejects its followers, and the key is freed", async () => {
  const co = new Coalescer<number>(1000);
  const boom = () => Promise.reject(new Error("boom"));
  const a = co.run("k", boom);
  const b = co.run("k", boom);
  await rejects(a, /boom/);
  await rejects(b, /boom/);
  equal(co.size, 0);
});

Deno.test("units: sizes and durations", () => {
  equal(parseSize("64MiB"), 64 * 1024 * 1024);
  equal(parseSize("500KB"), 500_000);
  equal(parseSize("1048576"), 1048576);
  equal(parseSize("1.5k"), 1536);
  equal(parseDuration("10s"), 10_000);
  equal(parseDuration("250ms"), 250);
  equal(parseDuration("300"), 300);
  for (const bad of ["", "abc", "10 parsecs", "-1"]) {
    let threw = false;
    try {
      parseSize(bad);
    } catch (e) {
      threw = e instanceof SyntaxError;
    }
    ok(threw, bad);
  }
  let threw = false;
  try {
    parseDuration("0s");
  } catch (e) {
    threw = e instanceof RangeError;
  }
  ok(threw);
});
