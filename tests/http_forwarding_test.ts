/**
 * End-to-end (`main_http.ts` as a subprocess): what a fill forwards and how responses are
 * keyed by it (no poisoning through unkeyed headers), a 304 carrying `Vary: *`, and the
 * methods the replica answers itself (CONNECT, TRACE, `OPTIONS *`).
 */
import { deepStrictEqual, equal, match, notEqual } from "node:assert/strict";
import { startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  const body = await res.text();
  return { status: res.status, body, x: res.headers.get("x-cache"), headers: res.headers };
}

/** Sends one raw HTTP/1.1 request line and returns the status line, headers and body. */
async function raw(port: number, requestLine: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    new TextEncoder().encode(`${requestLine}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`),
  );
  let out = "";
  const buf = new Uint8Array(16 * 1024);
  for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
    out += new TextDecoder().decode(buf.subarray(0, n));
  }
  conn.close();
  return out;
}

Deno.test("http forwarding: unkeyed request headers never reach the origin on a fill", async (t) => {
  const origin = await startOrigin({
    "/reflect": {
      headers: { "cache-control": "max-age=60", "content-type": "text/plain" },
      body: (req) =>
        `host=${req.headers.get("x-forwarded-host") ?? "-"} cookie=${
          req.headers.get("cookie") ?? "-"
        } ua=${req.headers.get("user-agent")}`,
    },
    "/cookie": {
      headers: { "cache-control": "max-age=60", vary: "Cookie" },
      body: (req) => `cookie=${req.headers.get("cookie") ?? "-"}`,
    },
    "/lang": {
      headers: { "cache-control": "max-age=60", vary: "Accept-Language" },
      body: (req) => `lang=${req.headers.get("accept-language") ?? "-"}`,
    },
    "/ae": {
      headers: { "cache-control": "max-age=60", vary: "Accept-Encoding" },
      body: (req) => `ae=${req.headers.get("accept-encoding")}`,
    },
  });
  const replica = await startReplica(["-o", origin.url]);
  try {
    await t.step("a reflected X-Forwarded-Host is not served to other clients", async () => {
      const evil = await get(`${replica.url}/reflect`, {
        "x-forwarded-host": "evil.example",
        cookie: "session=attacker",
        "user-agent": "evil-agent",
        "x-anything": "1",
      });
      deepStrictEqual([evil.status, evil.x], [200, "MISS"]);
      equal(evil.body, "host=- cookie=- ua=nearcast");
      const next = await get(`${replica.url}/reflect`);
      deepStrictEqual([next.x, next.body], ["HIT", "host=- cookie=- ua=nearcast"]);
      const seen = origin.seen.find((s) => s.path === "/reflect")!;
      equal(seen.headers.get("x-anything"), null);
      equal(seen.headers.get("accept-encoding"), "identity");
      match(seen.headers.get("via") ?? "", /nearcast-/);
      const auth = await get(`${replica.url}/reflect?auth`, {
        authorization: "Bearer x",
        accept: "text/plain",
        "accept-language": "fr",
      });
      equal(auth.status, 200);
      const sent = origin.seen.find((s) => s.path === "/reflect?auth")!.headers;
      deepStrictEqual(
        [sent.get("authorization"), sent.get("accept"), sent.get("accept-language")],
        ["Bearer x", "text/plain", "fr"],
      );
    });

    await t.step(
      "a header named by Vary is forwarded and keyed by what the origin saw",
      async () => {
        const anon = await get(`${replica.url}/cookie`);
        deepStrictEqual([anon.x, anon.body], ["MISS", "cookie=-"]);
        // The first fill for a cookie could not know the origin varies on it: fetched again.
        const a = await get(`${replica.url}/cookie`, { cookie: "u=a" });
        equal(a.body, "cookie=u=a");
        const b = await get(`${replica.url}/cookie`, { cookie: "u=b" });
        deepStrictEqual([b.x, b.body], ["MISS", "cookie=u=b"]);
        const a2 = await get(`${replica.url}/cookie`, { cookie: "u=a" });
        deepStrictEqual([a2.x, a2.body], ["HIT", "cookie=u=a"]);
        const anon2 = await get(`${replica.url}/cookie`);
        deepStrictEqual([anon2.x, anon2.body], ["HIT", "cookie=-"]);
      },
    );

    await t.step("Accept-Language is forwarded; each language has its entry", async () => {
      const fr = await get(`${replica.url}/lang`, { "accept-language": "fr" });
      equal(fr.body, "lang=fr");
      const de = await get(`${replica.url}/lang`, { "accept-language": "de" });
      deepStrictEqual([de.x, de.body], ["MISS", "lang=de"]);
      const fr2 = await get(`${replica.url}/lang`, { "accept-language": "fr" });
      deepStrictEqual([fr2.x, fr2.body], ["HIT", "lang=fr"]);
    });

    await t.step(
      "Vary: Accept-Encoding keys every client alike (the origin sees identity)",
      async () => {
        const gz = await get(`${replica.url}/ae`, { "accept-encoding": "gzip" });
        deepStrictEqual([gz.x, gz.body], ["MISS", "ae=identity"]);
        const br = await get(`${replica.url}/ae`, { "accept-encoding": "br" });
        deepStrictEqual([br.x, br.body], ["HIT", "ae=identity"]);
        equal(origin.count("/ae"), 1);
      },
    );
  } finally {
    await replica.close();
    await origin.close();
  }
});

Deno.test("http forwarding: a 304 carrying Vary: * ends the stored response's reuse", async () => {
  const origin = await startOrigin({
    "/v": {
      headers: (_req, n): Record<string, string> =>
        n === 1
          ? { "cache-control": "max-age=0", etag: '"v1"' }
          : { "cache-control": "max-age=60", etag: '"v1"', vary: "*" },
      body: "the body",
      conditional: true,
    },
  });
  const replica = await startReplica(["-o", origin.url]);
  try {
    const first = await get(`${replica.url}/v`);
    deepStrictEqual([first.x, first.body], ["MISS", "the body"]);
    const second = await get(`${replica.url}/v`); // stale: revalidated, the 304 says Vary: *
    deepStrictEqual([second.status, second.x, second.body], [200, "REVALIDATED", "the body"]);
    equal(second.headers.get("vary"), "*");
    const third = await get(`${replica.url}/v`);
    equal(third.body, "the body");
    notEqual(third.x, "HIT", "a response with Vary: * is never served from the cache");
    equal(origin.count("/v"), 3);
  } finally {
    await replica.close();
    await origin.close();
  }
});

Deno.test("http methods: CONNECT and TRACE get 501, OPTIONS * is answered by the replica", async () => {
  const origin = await startOrigin({
    "/page": { headers: { "cache-control": "max-age=60" }, body: "page" },
  });
  const replica = await startReplica(["-o", origin.url]);
  try {
    for (
      const line of ["CONNECT example.com:443 HTTP/1.1", "TRACE /page HTTP/1.1", "TRACK / HTTP/1.1"]
    ) {
      const out = await raw(replica.port, line);
      match(out, /^HTTP\/1\.1 501 /, line);
      match(out, /(CONNECT|TRACE|TRACK) is not supported by this replica/, line);
    }
    const opts = await raw(replica.port, "OPTIONS * HTTP/1.1");
    match(opts, /^HTTP\/1\.1 200 /);
    match(opts, /\r\nallow: GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE\r\n/i);
    // A path OPTIONS is still the origin's to answer.
    const page = await fetch(`${replica.url}/page`, { method: "OPTIONS" });
    await page.body?.cancel();
    equal(page.status, 200);
    deepStrictEqual(
      origin.seen.filter((s) => s.method !== "GET").map((s) => `${s.method} ${s.path}`),
      ["OPTIONS /page"],
    );
  } finally {
    await replica.close();
    await origin.close();
  }
});
