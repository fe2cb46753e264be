/**
 * End-to-end: a replica subprocess in front of a test origin. Storage rules, Vary, Age, Via,
 * hop-by-hop headers, HEAD, heuristic freshness and Authorization.
 */
import { deepStrictEqual as assertEquals, equal, match, ok } from "node:assert/strict";
import { startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";

const DAY = 86_400_000;
const httpDate = (ms: number) => new Date(ms).toUTCString();

async function get(url: string, init?: RequestInit) {
  const res = await fetch(url, init);
  const body = await res.text();
  return { status: res.status, headers: res.headers, body, x: res.headers.get("x-cache") };
}

Deno.test("http basic: replica caches by RFC 9111", async (t) => {
  const origin = await startOrigin({
    "/fresh": {
      headers: { "cache-control": "max-age=60", "content-type": "text/plain" },
      body: "fresh body",
    },
    "/nostore": { headers: { "cache-control": "no-store" }, body: "x" },
    "/private": { headers: { "cache-control": "private, max-age=60" }, body: "x" },
    "/nocache": {
      headers: (_r, n) => ({ "cache-control": "no-cache", etag: '"nc"', "x-n": String(n) }),
      body: "nc",
      conditional: true,
    },
    "/vary": {
      headers: { "cache-control": "max-age=60", vary: "Accept-Language" },
      body: (req) => `lang=${req.headers.get("accept-language")}`,
    },
    "/varystar": { headers: { "cache-control": "max-age=60", vary: "*" }, body: "star" },
    "/auth": { headers: { "cache-control": "max-age=60" }, body: "secret" },
    "/authpublic": { headers: { "cache-control": "public, max-age=60" }, body: "public" },
    "/404": {
      status: 404,
      headers: { "last-modified": httpDate(Date.now() - 10 * DAY) },
      body: "gone",
    },
    "/500": { status: 500, body: "boom" },
    "/302": { status: 302, headers: { location: "/fresh" }, body: "" },
    "/301": {
      status: 301,
      headers: { location: "/fresh", "last-modified": httpDate(Date.now() - DAY) },
    },
    "/aged": { headers: { "cache-control": "max-age=1000", age: "100" }, body: "aged" },
    "/agedout": { headers: { "cache-control": "max-age=50", age: "100" }, body: "aged out" },
    "/smaxage": { headers: { "cache-control": "max-age=0, s-maxage=60" }, body: "shared" },
    "/expires": { headers: { expires: httpDate(Date.now() + 60_000) }, body: "exp" },
    "/expired": { headers: { expires: httpDate(Date.now() - 60_000) }, body: "expired" },
    "/expires0": { headers: { expires: "0" }, body: "zero" },
    "/heuristic": { headers: { "last-modified": httpDate(Date.now() - 10 * DAY) }, body: "h" },
    "/nothing": { body: "no freshness, no validators" },
    "/hop": {
      headers: {
        connection: "x-hop",
        "x-hop": "1",
        "keep-alive": "timeout=5",
        "x-end": "1",
        "cache-control": "max-age=60",
      },
      body: "hop",
    },
    "/head": { headers: { "cache-control": "max-age=60" }, body: "head body" },
  });
  const replica = await startReplica(["-o", origin.url, "--id", "basic", "--index", "ts"]);
  try {
    await t.step("miss then hit, one origin request, Via and Age", async () => {
      const a = await get(replica.url + "/fresh");
      const b = await get(replica.url + "/fresh");
      assertEquals([a.status, a.x, a.body], [200, "MISS", "fresh body"]);
      assertEquals([b.status, b.x, b.body], [200, "HIT", "fresh body"]);
      equal(b.headers.get("via"), "1.1 nearcast-basic");
      match(b.headers.get("age")!, /^\d+$/);
      equal(b.headers.get("content-type"), "text/plain");
      equal(origin.count("/fresh"), 1);
      // The origin saw our Via too.
      equal(origin.seen.find((s) => s.path === "/fresh")!.headers.get("via"), "1.1 nearcast-basic");
    });

    await t.step("query strings are part of the key", async () => {
      equal((await get(replica.url + "/fresh?a=1")).x, "MISS");
      equal((await get(replica.url + "/fresh?a=1")).x, "HIT");
      equal(origin.count("/fresh?a=1"), 1);
    });

    await t.step("no-store and private are never stored", async () => {
      for (const p of ["/nostore", "/private"]) {
        equal((await get(replica.url + p)).x, "MISS");
        equal((await get(replica.url + p)).x, "MISS");
        equal(origin.count(p), 2, p);
      }
    });

    await t.step("no-cache is stored but revalidated every time", async () => {
      equal((await get(replica.url + "/nocache")).x, "MISS");
      const b = await get(replica.url + "/nocache");
      assertEquals([b.x, b.body, b.headers.get("x-n")], ["REVALIDATED", "nc", "2"]);
      equal(origin.count("/nocache"), 2);
      equal(
        origin.seen.filter((s) => s.path === "/nocache")[1].headers.get("if-none-match"),
        '"nc"',
      );
    });

    await t.step(
      "Vary keeps one entry per varying request header; Vary: * never matches",
      async () => {
        const en = { headers: { "accept-language": "en" } };
        const fr = { headers: { "accept-language": "fr" } };
        assertEquals([
          (await get(replica.url + "/vary", en)).x,
          (await get(replica.url + "/vary", fr)).x,
        ], [
          "MISS",
          "MISS",
        ]);
        const en2 = await get(replica.url + "/vary", en);
        const fr2 = await get(replica.url + "/vary", fr);
        assertEquals([en2.x, en2.body, fr2.x, fr2.body], ["HIT", "lang=en", "HIT", "lang=fr"]);
        equal(origin.count("/vary"), 2);
        equal((await get(replica.url + "/varystar")).x, "MISS");
        equal((await get(replica.url + "/varystar")).x, "MISS");
        equal(origin.count("/varystar"), 2);
      },
    );

    await t.step(
      "Authorization: stored only with public, s-maxage or must-revalidate",
      async () => {
        const auth = { headers: { authorization: "Bearer u1" } };
        equal((await get(replica.url + "/auth", auth)).x, "MISS");
        equal((await get(replica.url + "/auth", auth)).x, "MISS");
        equal(origin.count("/auth"), 2);
        equal(
          origin.seen.find((s) => s.path === "/auth")!.headers.get("authorization"),
          "Bearer u1",
        );
        equal((await get(replica.url + "/authpublic", auth)).x, "MISS");
        equal((await get(replica.url + "/authpublic", auth)).x, "HIT");
      },
    );

    await t.step("status codes: heuristically cacheable ones are stored, others not", async () => {
      const a = await get(replica.url + "/404");
      const b = await get(replica.url + "/404");
      assertEquals([a.status, b.status, b.x, b.body], [404, 404, "HIT", "gone"]);
      await get(replica.url + "/500");
      equal((await get(replica.url + "/500")).x, "MISS");
      equal(origin.count("/500"), 2);
      const r302 = await fetch(replica.url + "/302", { redirect: "manual" });
      await r302.body?.cancel();
      equal(r302.status, 302);
      equal(
        (await fetch(replica.url + "/302", { redirect: "manual" }).then((
          r,
        ) => (r.body?.cancel(), r))).headers.get("x-cache"),
        "MISS",
      );
      equal(origin.count("/302"), 2);
      await fetch(replica.url + "/301", { redirect: "manual" }).then((r) => r.body?.cancel());
      const r301 = await fetch(replica.url + "/301", { redirect: "manual" });
      await r301.body?.cancel();
      assertEquals([r301.status, r301.headers.get("x-cache"), r301.headers.get("location")], [
        301,
        "HIT",
        "/fresh",
      ]);
    });

    await t.step("Age counts the origin's Age header; s-maxage wins over max-age", async () => {
      await get(replica.url + "/aged");
      const b = await get(replica.url + "/aged");
      equal(b.x, "HIT");
      ok(Number(b.headers.get("age")) >= 100, `age ${b.headers.get("age")}`);
      // Age 100 > max-age 50: stale on arrival, so never a hit.
      await get(replica.url + "/agedout");
      equal((await get(replica.url + "/agedout")).x, "MISS");
      await get(replica.url + "/smaxage");
      equal((await get(replica.url + "/smaxage")).x, "HIT");
    });

    await t.step("Expires: future is fresh, past and invalid are stale", async () => {
      await get(replica.url + "/expires");
      equal((await get(replica.url + "/expires")).x, "HIT");
      for (const p of ["/expired", "/expires0"]) {
        await get(replica.url + p);
        equal((await get(replica.url + p)).x, "MISS", p);
      }
    });

    await t.step(
      "heuristic freshness from Last-Modified; nothing to go on is not a hit",
      async () => {
        await get(replica.url + "/heuristic");
        equal((await get(replica.url + "/heuristic")).x, "HIT");
        await get(replica.url + "/nothing");
        equal((await get(replica.url + "/nothing")).x, "MISS");
        equal(origin.count("/nothing"), 2);
      },
    );

    await t.step("hop-by-hop headers are stripped both ways (curl)", async () => {
      const out = await new Deno.Command("curl", {
        args: [
          "-s",
          "-D",
          "-",
          "-o",
          "/dev/null",
          "-H",
          "Connection: x-secret",
          "-H",
          "X-Secret: 1",
          "-H",
          "Proxy-Authorization: Basic eA==",
          "-H",
          "TE: trailers",
          "-H",
          "Accept: text/kept",
          replica.url + "/hop",
        ],
      }).output();
      const head = new TextDecoder().decode(out.stdout).toLowerCase();
      ok(head.includes("x-end: 1"), head);
      ok(!head.includes("x-hop:"), head);
      ok(!head.includes("keep-alive: timeout=5"), head);
      const seen = origin.seen.find((s) => s.path === "/hop")!.headers;
      equal(seen.get("x-secret"), null);
      equal(seen.get("proxy-authorization"), null);
      equal(seen.get("te"), null);
      equal(seen.get("accept"), "text/kept"); // end-to-end and on the fill allow-list
    });

    await t.step("HEAD: a miss fills the cache, a hit has headers and no body", async () => {
      const h1 = await fetch(replica.url + "/head", { method: "HEAD" });
      await h1.body?.cancel();
      equal(h1.headers.get("x-cache"), "MISS");
      const h2 = await fetch(replica.url + "/head", { method: "HEAD" });
      const body = await h2.text();
      assertEquals([h2.status, h2.headers.get("x-cache"), h2.headers.get("content-length"), body], [
        200,
        "HIT",
        "9",
        "",
      ]);
      equal((await get(replica.url + "/head")).body, "head body");
      equal(origin.count("/head"), 1);
      equal(origin.seen.find((s) => s.path === "/head")!.method, "GET");
    });
  } finally {
    await replica.close();
    await origin.close();
  }
});
