/** The shared bearer-token helper and the bounded body reader (lib/common/). */
import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import { bearerToken, checkBearer, sameSecret } from "../lib/common/auth.ts";
import { BodyTooLarge, readBodyBytes, readBodyJson, readBodyText } from "../lib/common/body.ts";

const withAuth = (v: string) => new Request("http://x/", { headers: { authorization: v } });

Deno.test("auth: the Bearer scheme is matched case-insensitively; other schemes are not tokens", () => {
  equal(bearerToken(withAuth("Bearer abc")), "abc");
  equal(bearerToken(withAuth("bearer abc")), "abc");
  equal(bearerToken(withAuth("BEARER \t abc ")), "abc");
  equal(bearerToken(withAuth("Basic abc")), null);
  equal(bearerToken(withAuth("Bearer ")), null);
  equal(bearerToken(withAuth("Bearerabc")), null);
  equal(bearerToken(new Request("http://x/")), null);
});

Deno.test("auth: sameSecret compares whole secrets", () => {
  ok(sameSecret("s3cret", "s3cret"));
  ok(!sameSecret("s3cre", "s3cret"));
  ok(!sameSecret("s3cret!", "s3cret"));
  ok(!sameSecret("", "s3cret"));
  ok(!sameSecret("s3creT", "s3cret"));
  ok(sameSecret("ünï", "ünï"));
});

Deno.test("auth: checkBearer answers 401 for missing or wrong, 403 when disabled", () => {
  equal(checkBearer(withAuth("bearer t"), "t"), null);
  const missing = checkBearer(new Request("http://x/"), "t")!;
  equal(missing.status, 401);
  equal(missing.headers.get("www-authenticate"), 'Bearer realm="nearcast"');
  equal(checkBearer(withAuth("Bearer u"), "t")!.status, 401);
  equal(checkBearer(withAuth("Bearer t"), null, "off")!.status, 403);
});

function chunked(total: number, chunk = 64 * 1024) {
  let sent = 0;
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent >= total) return c.close();
      const n = Math.min(chunk, total - sent);
      sent += n;
      c.enqueue(new Uint8Array(n));
    },
    cancel() {
      cancelled = true;
    },
  });
  return { stream, sent: () => sent, cancelled: () => cancelled };
}

Deno.test("body: reads up to the cap; refuses past it while reading and cancels the stream", async () => {
  equal((await readBodyBytes(chunked(1000, 100).stream, 1000)).byteLength, 1000);
  const big = chunked(100 * 1024 * 1024);
  await rejects(readBodyBytes(big.stream, 256 * 1024), (e) => {
    ok(e instanceof BodyTooLarge && e instanceof RangeError);
    equal(e.limit, 256 * 1024);
    return true;
  });
  ok(big.cancelled());
  ok(big.sent() <= 512 * 1024, `read ${big.sent()} bytes of a 100 MiB body with a 256 KiB cap`);
});

Deno.test("body: a declared Content-Length over the cap is refused before reading", async () => {
  const src = chunked(10_000);
  const req = new Request("http://x/", {
    method: "PUT",
    body: src.stream,
    headers: { "content-length": "10000" },
  });
  await rejects(readBodyText(req, 100, "purge body"), /purge body larger than 100 bytes/);
  ok(src.sent() <= 64 * 1024);
});

Deno.test("body: JSON, text, empty", async () => {
  const put = (body: BodyInit | null) => new Request("http://x/", { method: "PUT", body });
  deepStrictEqual(await readBodyJson(put('{"a":1}'), 100), { a: 1 });
  equal(await readBodyText(put("héllo"), 100), "héllo");
  equal((await readBodyBytes(put(null), 100)).byteLength, 0);
  await rejects(readBodyJson(put("{"), 100, "registration body"), (e) => {
    ok(e instanceof SyntaxError);
    ok(/registration body is not JSON/.test(e.message));
    return true;
  });
});
