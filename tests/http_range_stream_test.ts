/**
 * End-to-end: on a miss for a large object (streamed into the store, `--data`), several
 * ranges, `If-Range` and `If-None-Match` are answered from the body as it arrives, without
 * waiting for the whole object: the origin holds back the last quarter until every answer is
 * in. A multipart/byteranges answer is parsed; an `If-Range` with an old validator gets the
 * whole 200, one with the current `ETag` the range.
 */
import { deepStrictEqual as assertEquals, equal } from "node:assert/strict";
import { parseByteranges } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";

const SIZE = 2 * 1024 * 1024;
const FIRST = 1536 * 1024;
const BODY = new Uint8Array(SIZE).map((_, i) => 97 + (i * 7 + (i >> 10)) % 26);
const TEXT = new TextDecoder().decode(BODY);

/** `p` settled within `ms`, or an error naming `what`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

Deno.test("http range miss: several ranges and If-Range answered as the body arrives", async () => {
  let release!: () => void;
  const held = new Promise<void>((r) => release = r);
  let requests = 0;
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    () => {
      requests++;
      let step = 0;
      const stream = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (step++ === 0) return c.enqueue(BODY.slice(0, FIRST));
          await held;
          c.enqueue(BODY.slice(FIRST));
          c.close();
        },
      });
      return new Response(stream, {
        headers: {
          "content-length": String(SIZE),
          "content-type": "text/plain",
          "cache-control": "max-age=600",
          etag: '"v2"',
        },
      });
    },
  );
  const data = await Deno.makeTempDir({ prefix: "i15-range-stream-" });
  const replica = await startReplica([
    "-o",
    `http://127.0.0.1:${server.addr.port}`,
    "--id",
    "rangestream",
    "--index",
    "ts",
    "--data",
    data,
  ]);
  const get = (headers: Record<string, string>) =>
    fetch(`${replica.url}/big.txt`, { headers, signal: AbortSignal.timeout(20_000) });
  try {
    // Several ranges on the miss: multipart/byteranges, parts in request order.
    const multi = await within(
      get({ range: "bytes=1000-1099,0-9,-0,1048576-1048600" }).then(async (res) => ({
        res,
        text: await res.text(),
      })),
      5000,
      "multi-range miss",
    );
    equal(multi.res.status, 206);
    equal(multi.res.headers.get("x-cache"), "MISS");
    const parts = parseByteranges(multi.res.headers.get("content-type"), multi.text);
    assertEquals(parts.map((p) => [p.contentRange, p.contentType, p.body]), [
      [`bytes 1000-1099/${SIZE}`, "text/plain", TEXT.slice(1000, 1100)],
      [`bytes 0-9/${SIZE}`, "text/plain", TEXT.slice(0, 10)],
      [`bytes 1048576-1048600/${SIZE}`, "text/plain", TEXT.slice(1048576, 1048601)],
    ]);
    equal(
      Number(multi.res.headers.get("content-length")),
      new TextEncoder().encode(multi.text).length,
    );

    // If-Range with the current ETag: the range, at once.
    const cur = await within(get({ range: "bytes=5-9", "if-range": '"v2"' }), 5000, "If-Range");
    equal(cur.status, 206);
    equal(await cur.text(), TEXT.slice(5, 10));

    // If-Range with an old validator: the whole 200, its headers at once.
    const old = await within(get({ range: "bytes=5-9", "if-range": '"v1"' }), 5000, "old If-Range");
    equal(old.status, 200);
    equal(old.headers.get("content-range"), null);
    const oldDate = await within(
      get({ range: "bytes=5-9", "if-range": "Sun, 06 Nov 1994 08:49:37 GMT" }),
      5000,
      "If-Range date",
    );
    equal(oldDate.status, 200);

    // If-None-Match with the current ETag: 304 at once.
    const nm = await within(get({ "if-none-match": '"v2"' }), 5000, "If-None-Match");
    equal(nm.status, 304);
    await nm.body?.cancel();

    release();
    equal(await old.text(), TEXT);
    equal((await oldDate.arrayBuffer()).byteLength, SIZE);
    equal(requests, 1);
  } finally {
    release();
    await replica.close();
    ac.abort();
    await server.finished;
    await Deno.remove(data, { recursive: true });
  }
});
