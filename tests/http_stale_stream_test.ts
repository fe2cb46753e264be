/**
 * End-to-end: `--stale-on-error` for a body streamed into the store (2 MiB, `--data`). The
 * stale copy stays stored while its replacement streams in: an origin that drops the
 * connection before the first body byte of the revalidation gets the client the stale copy;
 * one that drops it mid-body (bytes already sent) aborts the client's response, never a short
 * body presented as complete; and in both cases the store keeps the old, whole body (served
 * stale while the origin is down, also after a restart).
 */
import { equal, ok, rejects } from "node:assert/strict";
import { rawResponse, startRawOrigin } from "./_http_raw_origin.ts";
import { startReplica } from "./_http_replica.ts";

const SIZE = 2 * 1024 * 1024;
const OLD = "a".repeat(SIZE);

Deno.test("http stale on error: a body streamed into the store", async (t) => {
  let mode: "ok" | "no-body" | "half-body" = "ok";
  const origin = startRawOrigin(() => {
    const base: [string, string][] = [["cache-control", "max-age=0"]];
    if (mode === "ok") return rawResponse("200 OK", [...base, ["etag", '"v1"']], OLD);
    const head = `HTTP/1.1 200 OK\r\ncache-control: max-age=0\r\netag: "v2"\r\n` +
      `content-length: ${SIZE}\r\n\r\n`;
    // A changed object whose body breaks off: before its first byte, or halfway.
    return { text: mode === "no-body" ? head : head + "b".repeat(SIZE / 2), close: true };
  });
  const data = await Deno.makeTempDir({ prefix: "i15-stale-stream-" });
  const args = ["-o", origin.url, "--id", "soestream", "--index", "ts", "--data", data];
  let replica = await startReplica(args);
  const get = async () => {
    const res = await fetch(`${replica.url}/big.bin`, { signal: AbortSignal.timeout(20_000) });
    return { status: res.status, x: res.headers.get("x-cache"), body: await res.text() };
  };
  try {
    const first = await get();
    equal(first.status, 200);
    equal(first.body.length, SIZE);
    await t.step("origin drops the connection before the new body's first byte", async () => {
      mode = "no-body";
      const r = await get();
      equal(r.status, 200);
      equal(r.x, "STALE");
      ok(r.body === OLD, "the stale copy, whole");
      await replica.waitFor(/origin failure: GET \/big\.bin: .*served the stale copy/, 5000);
    });
    await t.step("origin drops the connection mid-body: the client's response aborts", async () => {
      mode = "half-body";
      const res = await fetch(`${replica.url}/big.bin`, { signal: AbortSignal.timeout(20_000) });
      equal(res.status, 200);
      equal(res.headers.get("content-length"), String(SIZE));
      await rejects(res.arrayBuffer());
    });
    await t.step("the store kept the old body whole, also across a restart", async () => {
      await origin.close();
      const r = await get();
      equal(r.x, "STALE");
      ok(r.body === OLD, `the stale copy, whole (got ${r.body.length} bytes)`);
      await replica.close();
      replica = await startReplica(args);
      const again = await get();
      equal(again.x, "STALE");
      ok(again.body === OLD, `after a restart (got ${again.body.length} bytes)`);
    });
  } finally {
    await replica.close();
    await origin.close();
    await Deno.remove(data, { recursive: true });
  }
});
