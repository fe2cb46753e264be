/**
 * End-to-end: a range request that misses on a large object is answered from the body being
 * written to the store as soon as its bytes have arrived, while the whole object fills the
 * cache in the same (single) origin request.
 */
import { deepStrictEqual as assertEquals, equal } from "node:assert/strict";
import { startReplica } from "./_http_replica.ts";

const SIZE = 2 * 1024 * 1024;
const SENT_FIRST = 1536 * 1024;

Deno.test("http range miss: answered from the growing body, one origin request", async () => {
  const body = new Uint8Array(SIZE).map((_, i) => (i * 7) % 251);
  let release!: () => void;
  const held = new Promise<void>((r) => release = r);
  let requests = 0;
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    () => {
      requests++;
      let sent = false;
      const stream = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (!sent) {
            sent = true;
            c.enqueue(body.slice(0, SENT_FIRST));
            return;
          }
          await held; // the rest only once the test has its range
          c.enqueue(body.slice(SENT_FIRST));
          c.close();
        },
      });
      return new Response(stream, {
        headers: { "content-length": String(SIZE), "cache-control": "max-age=600" },
      });
    },
  );
  const data = await Deno.makeTempDir({ prefix: "i15-range-fill-" });
  const replica = await startReplica([
    "-o",
    `http://127.0.0.1:${server.addr.port}`,
    "--id",
    "rangefill",
    "--index",
    "ts",
    "--data",
    data,
  ]);
  try {
    const res = await fetch(`${replica.url}/big.bin`, {
      headers: { range: "bytes=100-199" },
      signal: AbortSignal.timeout(10_000),
    });
    equal(res.status, 206);
    equal(res.headers.get("content-range"), `bytes 100-199/${SIZE}`);
    assertEquals(new Uint8Array(await res.arrayBuffer()), body.slice(100, 200));
    release();
    // The one fill completes and stores the object.
    let x = "";
    for (let i = 0; i < 100 && x !== "HIT"; i++) {
      const whole = await fetch(`${replica.url}/big.bin`);
      x = whole.headers.get("x-cache") ?? "";
      const got = new Uint8Array(await whole.arrayBuffer());
      equal(got.byteLength, SIZE);
      if (x !== "HIT") await new Promise((r) => setTimeout(r, 50));
    }
    equal(x, "HIT");
    equal(requests, 1);
  } finally {
    release();
    await replica.close();
    ac.abort();
    await server.finished;
    await Deno.remove(data, { recursive: true });
  }
});
