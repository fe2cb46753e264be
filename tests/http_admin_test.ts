/**
 * End-to-end: the `/_cdn/` API (health, metrics, purge), invalidation by unsafe methods,
 * bad requests over raw TCP, and the command line.
 */
import { deepStrictEqual as assertEquals, equal, match, ok } from "node:assert/strict";
import { startOrigin } from "./_http_origin.ts";
import { runReplicaCli, startReplica } from "./_http_replica.ts";

const TOKEN = "s3cret-token";

async function get(url: string, init?: RequestInit) {
  const res = await fetch(url, init);
  const body = await res.text();
  return { status: res.status, headers: res.headers, body, x: res.headers.get("x-cache") };
}

/** Sends raw bytes and returns the status line of the answer. */
async function rawStatus(port: number, request: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(request));
    const buf = new Uint8Array(8192);
    let out = "";
    while (!out.includes("\r\n")) {
      const n = await conn.read(buf);
      if (n === null) break;
      out += new TextDecoder().decode(buf.subarray(0, n));
    }
    return out.split("\r\n")[0];
  } finally {
    conn.close();
  }
}

const cached = { headers: { "cache-control": "max-age=60" }, body: "cached" };

Deno.test("http admin: health, metrics, purge, invalidation, bad requests", async (t) => {
  const origin = await startOrigin({
    "/a": cached,
    "/b": cached,
    "/img/1": cached,
    "/img/2": cached,
    "/css/1": cached,
    "/inv": { ...cached, headers: { "cache-control": "max-age=60" } },
    "/loc": cached,
    "/cloc": cached,
    "/form": {
      methods: {
        POST: {
          status: 201,
          headers: { location: "/loc", "content-location": "/cloc" },
          body: "created",
        },
      },
    },
    "/fail": { methods: { DELETE: { status: 500, body: "no" } } },
  });
  const replica = await startReplica(["-o", origin.url, "--id", "adm", "--admin-token", TOKEN]);
  const noToken = await startReplica(["-o", origin.url, "--id", "open"]);
  try {
    await t.step("health answers JSON", async () => {
      const r = await fetch(replica.url + "/_cdn/health");
      const j = await r.json();
      assertEquals([r.status, j.status, j.id, j.budgetBytes], [200, "ok", "adm", 64 * 1024 * 1024]);
    });

    await t.step(
      "metrics in Prometheus text format count requests, hits, misses, bytes",
      async () => {
        await get(replica.url + "/a");
        await get(replica.url + "/a");
        const r = await fetch(replica.url + "/_cdn/metrics");
        const text = await r.text();
        match(r.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
        const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
        ok(value("nearcast_http_requests_total") >= 2);
        equal(value("nearcast_http_cache_hits_total"), 1);
        equal(value("nearcast_http_cache_misses_total"), 1);
        equal(value("nearcast_http_response_bytes_total"), 12);
        equal(value("nearcast_http_cache_entries"), 1);
        ok(value("nearcast_http_cache_evictions_total") === 0);
        equal(value('nearcast_http_origin_latency_seconds_bucket\\{le="\\+Inf"\\}'), 1);
        equal(value("nearcast_http_origin_latency_seconds_count"), 1);
        match(text, /# TYPE nearcast_http_origin_latency_seconds histogram/);
      },
    );

    await t.step("purge is disabled without a token, needs a bearer token otherwise", async () => {
      equal((await get(noToken.url + "/_cdn/purge?url=/a", { method: "POST" })).status, 403);
      const none = await get(replica.url + "/_cdn/purge?url=/a", { method: "POST" });
      equal(none.status, 401);
      match(none.headers.get("www-authenticate")!, /^Bearer/);
      const wrong = await get(replica.url + "/_cdn/purge?url=/a", {
        method: "POST",
        headers: { authorization: "Bearer nope" },
      });
      equal(wrong.status, 401);
      match(wrong.headers.get("www-authenticate")!, /^Bearer/);
      const basic = await get(replica.url + "/_cdn/purge?url=/a", {
        method: "POST",
        headers: { authorization: `Basic ${TOKEN}` },
      });
      equal(basic.status, 401);
      equal((await get(replica.url + "/a")).x, "HIT");
      // The scheme is case-insensitive (RFC 9110 §11.1).
      const lower = await get(replica.url + "/_cdn/purge?url=/nothing", {
        method: "POST",
        headers: { authorization: `bearer ${TOKEN}` },
      });
      equal(lower.status, 200);
    });

    await t.step("purge by URL and by prefix", async () => {
      const auth = { authorization: `Bearer ${TOKEN}` };
      const one = await fetch(replica.url + "/_cdn/purge", {
        method: "POST",
        headers: auth,
        body: JSON.stringify({ url: "/a" }),
      });
      assertEquals([one.status, await one.json()], [200, { purged: 1, replicas: { adm: 1 } }]);
      equal((await get(replica.url + "/a")).x, "MISS");
      for (const p of ["/img/1", "/img/2", "/css/1"]) await get(replica.url + p);
      const pre = await fetch(replica.url + "/_cdn/purge?prefix=/img/", {
        method: "POST",
        headers: auth,
      });
      assertEquals(await pre.json(), { purged: 2, replicas: { adm: 2 } });
      equal((await get(replica.url + "/img/1")).x, "MISS");
      equal((await get(replica.url + "/css/1")).x, "HIT");
      const bad = await get(replica.url + "/_cdn/purge", {
        method: "POST",
        headers: auth,
        body: "{not json",
      });
      equal(bad.status, 400);
      const empty = await get(replica.url + "/_cdn/purge", {
        method: "POST",
        headers: auth,
        body: "{}",
      });
      equal(empty.status, 400);
      const getPurge = await get(replica.url + "/_cdn/purge?url=/a", { headers: auth });
      equal(getPurge.status, 405);
    });

    await t.step(
      "unsafe methods are forwarded and invalidate the URL, Location, Content-Location",
      async () => {
        for (const p of ["/inv", "/loc", "/cloc", "/b"]) await get(replica.url + p);
        // A 4xx does not invalidate.
        origin.routes.set("/inv", {
          ...cached,
          methods: { POST: { status: 409, body: "conflict" } },
        });
        const post = await get(replica.url + "/inv", { method: "POST", body: "payload" });
        equal(post.status, 409);
        equal((await get(replica.url + "/inv")).x, "HIT");
        // A 2xx does.
        origin.routes.set("/inv", { ...cached, methods: { PUT: { status: 204 } } });
        const put = await get(replica.url + "/inv", { method: "PUT", body: "x" });
        equal(put.status, 204);
        equal((await get(replica.url + "/inv")).x, "MISS");
        ok(origin.seen.some((s) => s.method === "PUT" && s.path === "/inv"));
        const form = await get(replica.url + "/form", { method: "POST", body: "a=1" });
        assertEquals([form.status, form.body], [201, "created"]);
        equal((await get(replica.url + "/loc")).x, "MISS");
        equal((await get(replica.url + "/cloc")).x, "MISS");
        equal((await get(replica.url + "/b")).x, "HIT");
        const del = await get(replica.url + "/fail", { method: "DELETE" });
        equal(del.status, 500);
      },
    );

    await t.step("bad requests: unknown API, long URL, huge headers, garbage", async () => {
      equal((await get(replica.url + "/_cdn/nope")).status, 404);
      equal((await get(replica.url + "/_cdn/health", { method: "POST" })).status, 405);
      equal((await get(replica.url + "/" + "a".repeat(9000))).status, 414);
      equal(
        await rawStatus(
          replica.port,
          `GET /never HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(10_000)}\r\n\r\n`,
        ),
        "HTTP/1.1 431 Request Header Fields Too Large",
      );
      let many = "GET /never HTTP/1.1\r\nHost: x\r\n";
      for (let i = 0; i < 9; i++) many += `X-H${i}: ${"b".repeat(4000)}\r\n`;
      equal(
        await rawStatus(replica.port, many + "\r\n"),
        "HTTP/1.1 431 Request Header Fields Too Large",
      );
      // Far larger sections and too many fields are refused by Deno.serve itself.
      equal(
        await rawStatus(
          replica.port,
          `GET /a HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(300_000)}\r\n\r\n`,
        ),
        "HTTP/1.1 400 Bad Request",
      );
      equal(await rawStatus(replica.port, "GARBAGE\r\n\r\n"), "HTTP/1.1 400 Bad Request");
      equal(
        await rawStatus(replica.port, "GET /a HTTP/1.1\r\nHost: x\r\nNo Colon\r\n\r\n"),
        "HTTP/1.1 400 Bad Request",
      );
      // Still serving.
      equal((await get(replica.url + "/_cdn/health")).status, 200);
    });
  } finally {
    await noToken.close();
    await replica.close();
    await origin.close();
  }
});

Deno.test("http cli: --help documents every flag; bad flags fail clearly", async () => {
  const help = await runReplicaCli(["--help"]);
  equal(help.code, 0);
  for (
    const flag of [
      "--port",
      "--origin",
      "--host",
      "--id",
      "--cache-bytes",
      "--max-object-bytes",
      "--origin-timeout",
      "--coalesce-timeout",
      "--peers",
      "--peer-timeout",
      "--preload",
      "--preload-concurrency",
      "--data",
      "--admin-token",
      "--index",
      "--help",
    ]
  ) ok(help.out.includes(flag), flag);
  const cases: [string[], RegExp][] = [
    [["-p", "0"], /--origin is required/],
    [["-o", "ftp://x"], /origin must be http/],
    [["-o", "http://127.0.0.1:1", "--cache-bytes", "lots"], /--cache-bytes: not a size/],
    [["-o", "http://127.0.0.1:1", "--origin-timeout", "soon"], /--origin-timeout: not a duration/],
    [["-o", "http://127.0.0.1:1", "--index", "btree"], /--index must be wasm or ts/],
    [["-o", "http://127.0.0.1:1", "-p", "70000"], /--port must be/],
    [["-o", "http://127.0.0.1:1", "--peers", "nope"], /--peers: not an http/],
    [["-o", "http://127.0.0.1:1", "--preload", "/nonexistent/file"], /--preload: cannot read/],
    [["-o", "http://127.0.0.1:1", "--bogus"], /Unknown option '--bogus'/],
  ];
  for (const [args, re] of cases) {
    const r = await runReplicaCli(args);
    equal(r.code, 2, args.join(" "));
    match(r.out, re);
  }
});
