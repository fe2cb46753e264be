/**
 * End-to-end: client conditional requests answered from the cache, and range requests
 * (single, suffix, multiple, unsatisfiable, If-Range) served from a cached full object.
 */
import { deepStrictEqual as assertEquals, equal, match, ok } from "node:assert/strict";
import { startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";

const ALPHABET = "abcdefghijklmnopqrstuvwxyz";
const LM = new Date(Date.now() - 86_400_000).toUTCString();

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  const body = await res.text();
  return { status: res.status, headers: res.headers, body, x: res.headers.get("x-cache") };
}

async function curl(args: string[]): Promise<string> {
  const out = await new Deno.Command("curl", { args: ["-s", "--max-time", "10", ...args] })
    .output();
  equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}

Deno.test("http ranges and conditionals from the cache", async (t) => {
  const origin = await startOrigin({
    "/abc": {
      headers: {
        "cache-control": "max-age=60",
        etag: '"abc1"',
        "last-modified": LM,
        "content-type": "text/plain",
      },
      body: ALPHABET,
    },
    "/weak": { headers: { "cache-control": "max-age=60", etag: 'W/"w1"' }, body: ALPHABET },
    "/miss-range": { headers: { "cache-control": "max-age=60" }, body: ALPHABET },
  });
  const replica = await startReplica(["-o", origin.url, "--id", "rng", "--index", "ts"]);
  const u = replica.url + "/abc";
  try {
    await get(u);
    await t.step("If-None-Match: weak comparison gives 304 from the cache", async () => {
      for (const inm of ['"abc1"', 'W/"abc1"', '"x", "abc1"', "*"]) {
        const r = await get(u, { "if-none-match": inm });
        assertEquals([r.status, r.body, r.headers.get("etag")], [304, "", '"abc1"'], inm);
      }
      equal((await get(u, { "if-none-match": '"other"' })).status, 200);
      await get(replica.url + "/weak");
      equal((await get(replica.url + "/weak", { "if-none-match": '"w1"' })).status, 304);
      equal(origin.count("/abc"), 1);
    });

    await t.step("If-Modified-Since: 304 when not modified since, else 200", async () => {
      equal((await get(u, { "if-modified-since": LM })).status, 304);
      equal((await get(u, { "if-modified-since": new Date().toUTCString() })).status, 304);
      equal(
        (await get(u, {
          "if-modified-since": new Date(Date.now() - 10 * 86_400_000).toUTCString(),
        })).status,
        200,
      );
      // If-None-Match takes precedence.
      equal((await get(u, { "if-none-match": '"zz"', "if-modified-since": LM })).status, 200);
    });

    await t.step("single range, open-ended and suffix ranges give 206", async () => {
      const a = await get(u, { range: "bytes=0-4" });
      assertEquals([a.status, a.body, a.headers.get("content-range"), a.x], [
        206,
        "abcde",
        "bytes 0-4/26",
        "HIT",
      ]);
      const b = await get(u, { range: "bytes=20-" });
      assertEquals([b.status, b.body, b.headers.get("content-range")], [
        206,
        "uvwxyz",
        "bytes 20-25/26",
      ]);
      const c = await get(u, { range: "bytes=-3" });
      assertEquals([c.status, c.body, c.headers.get("content-range")], [
        206,
        "xyz",
        "bytes 23-25/26",
      ]);
      equal(c.headers.get("content-length"), "3");
    });

    await t.step("multiple ranges give multipart/byteranges", async () => {
      const r = await get(u, { range: "bytes=0-1,24-25" });
      equal(r.status, 206);
      const ct = r.headers.get("content-type")!;
      match(ct, /^multipart\/byteranges; boundary=/);
      const boundary = ct.split("boundary=")[1];
      equal(
        r.body,
        `--${boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/26\r\n\r\nab\r\n` +
          `--${boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 24-25/26\r\n\r\nyz\r\n` +
          `--${boundary}--\r\n`,
      );
    });

    await t.step("unsatisfiable range gives 416 with Content-Range: bytes */len", async () => {
      const r = await get(u, { range: "bytes=100-200" });
      assertEquals([r.status, r.headers.get("content-range")], [416, "bytes */26"]);
    });

    await t.step("malformed Range is ignored: 200 with the whole body", async () => {
      const r = await get(u, { range: "bytes=9-2" });
      assertEquals([r.status, r.body], [200, ALPHABET]);
    });

    await t.step("If-Range: matching strong ETag or date gives 206, else 200", async () => {
      equal((await get(u, { range: "bytes=0-0", "if-range": '"abc1"' })).status, 206);
      equal((await get(u, { range: "bytes=0-0", "if-range": LM })).status, 206);
      const r = await get(u, { range: "bytes=0-0", "if-range": '"old"' });
      assertEquals([r.status, r.body], [200, ALPHABET]);
      equal(
        (await get(replica.url + "/weak", { range: "bytes=0-0", "if-range": 'W/"w1"' })).status,
        200,
      );
    });

    await t.step(
      "a range on a miss fetches the full object once and serves the range",
      async () => {
        const r = await get(replica.url + "/miss-range", { range: "bytes=2-3" });
        assertEquals([r.status, r.body, r.x], [206, "cd", "MISS"]);
        equal(origin.seen.find((s) => s.path === "/miss-range")!.headers.get("range"), null);
        const again = await get(replica.url + "/miss-range");
        assertEquals([again.x, again.body], ["HIT", ALPHABET]);
      },
    );

    await t.step("curl: -r range, conditional and header dump", async () => {
      equal(await curl(["-r", "5-9", u]), "fghij");
      const head = await curl(["-D", "-", "-o", "/dev/null", "-H", 'If-None-Match: "abc1"', u]);
      match(head, /^HTTP\/1\.1 304/);
      ok(/x-cache: HIT/i.test(head), head);
      const multi = await curl(["-D", "-", "-o", "/dev/null", "-r", "0-0,2-2", u]);
      match(multi, /^HTTP\/1\.1 206/);
      match(multi, /content-type: multipart\/byteranges/i);
      equal(origin.count("/abc"), 1);
    });
  } finally {
    await replica.close();
    await origin.close();
  }
});
