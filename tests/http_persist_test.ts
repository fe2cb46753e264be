/**
 * End-to-end: `--data DIR` persistence. A restarted replica serves what it cached before
 * without the origin; a replica killed with SIGKILL while fetching and storing a big body
 * never serves a truncated one after restart.
 */
import { deepStrictEqual as assertEquals, equal, ok } from "node:assert/strict";
import { startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";

const BIG = new Uint8Array(200_000).map((_, i) => (i * 7) % 256);
const HUGE = new Uint8Array(6 * 1024 * 1024).map((_, i) => (i * 13 + (i >> 10)) % 256);

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

Deno.test("http persist: a restarted replica serves its cache without the origin", async () => {
  const origin = await startOrigin({
    "/small": { headers: { "cache-control": "max-age=600", etag: '"s"' }, body: "small body" },
    "/big": {
      headers: { "cache-control": "max-age=600", "content-type": "application/octet-stream" },
      body: BIG,
    },
    "/vary": {
      headers: { "cache-control": "max-age=600", vary: "Accept-Language" },
      body: (req) => `lang=${req.headers.get("accept-language")}`,
    },
  });
  const dir = await Deno.makeTempDir({ prefix: "nearcast_http_persist_" });
  let replica = await startReplica(["-o", origin.url, "--id", "p", "--data", dir]);
  try {
    for (const p of ["/small", "/big"]) await (await fetch(replica.url + p)).arrayBuffer();
    await (await fetch(replica.url + "/vary", { headers: { "accept-language": "de" } })).text();
    await replica.close();
    replica = await startReplica(["-o", origin.url, "--id", "p", "--data", dir]);
    ok(
      replica.lines.some((l) => l === `http: loaded 3 cached entries from ${dir}`),
      replica.lines.join("\n"),
    );
    const small = await fetch(replica.url + "/small");
    assertEquals([small.headers.get("x-cache"), await small.text()], ["HIT", "small body"]);
    const big = await fetch(replica.url + "/big");
    equal(big.headers.get("x-cache"), "HIT");
    ok(same(new Uint8Array(await big.arrayBuffer()), BIG));
    const range = await fetch(replica.url + "/big", { headers: { range: "bytes=100-104" } });
    assertEquals([range.status, [...new Uint8Array(await range.arrayBuffer())]], [206, [
      ...BIG.subarray(100, 105),
    ]]);
    const de = await fetch(replica.url + "/vary", { headers: { "accept-language": "de" } });
    assertEquals([de.headers.get("x-cache"), await de.text()], ["HIT", "lang=de"]);
    const inm = await fetch(replica.url + "/small", { headers: { "if-none-match": '"s"' } });
    await inm.body?.cancel();
    equal(inm.status, 304);
    for (const p of ["/small", "/big", "/vary"]) equal(origin.count(p), 1, p);
  } finally {
    await replica.close();
    await origin.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("http persist: SIGKILL while storing never leaves a truncated body", async () => {
  const origin = await startOrigin({
    "/huge": {
      headers: { "cache-control": "max-age=600" },
      body: HUGE,
      chunks: 24,
      chunkDelayMs: 25,
    },
  });
  const dir = await Deno.makeTempDir({ prefix: "nearcast_http_kill_" });
  try {
    // Kill early in the transfer, near its end, and just after it (while storing).
    for (const killAfterMs of [200, 550, 700]) {
      const before = origin.count("/huge");
      const victim = await startReplica(["-o", origin.url, "--id", "k", "--data", dir]);
      try {
        const pending = fetch(victim.url + "/huge").then((r) => r.arrayBuffer()).catch(() => null);
        for (let i = 0; i < 250 && origin.count("/huge") === before; i++) {
          await new Promise((r) => setTimeout(r, 20));
        }
        await new Promise((r) => setTimeout(r, killAfterMs));
        await victim.kill9();
        await pending;
      } finally {
        await victim.close();
      }
      const again = await startReplica(["-o", origin.url, "--id", "k", "--data", dir]);
      try {
        const res = await fetch(again.url + "/huge");
        const body = new Uint8Array(await res.arrayBuffer());
        equal(res.status, 200);
        ok(
          same(body, HUGE),
          `after a kill at +${killAfterMs} ms: ${body.byteLength} bytes, ${
            res.headers.get("x-cache")
          }`,
        );
        // Either it was stored whole before the kill (a HIT) or it is fetched afresh (a MISS).
        ok(["HIT", "MISS"].includes(res.headers.get("x-cache")!));
      } finally {
        await again.close();
      }
      // Start the next round from nothing cached.
      await Deno.remove(dir, { recursive: true });
      await Deno.mkdir(dir);
    }
  } finally {
    await origin.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
