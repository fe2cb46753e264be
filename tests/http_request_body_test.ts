/**
 * Request bodies through the listener (`serveLimited`): the body a handler gets is a byte stream,
 * so the upload decoders read it with a BYOB reader into one reused buffer (a fresh 64 KiB array
 * per read, collected late by V8, cost a node about 25 MiB at the peak of a 1 GiB upload:
 * `deno task bench:upload --runs 0`, docs/benchmarks.md); a default reader still works, and every
 * byte arrives, in order, whichever reader.
 */
import { deepStrictEqual, equal } from "node:assert/strict";
import { serveLimited } from "../lib/common/http_server.ts";

async function sha(b: Uint8Array<ArrayBuffer>): Promise<string> {
  return Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", b)),
    (x) => x.toString(16).padStart(2, "0"),
  ).join("");
}

Deno.test("listener: a request body reads with BYOB into the caller's buffer, and with a default reader", async () => {
  const seen: { mode: string; bytes: number; sha: string; reads: number; reused: boolean }[] = [];
  const server = serveLimited({ port: 0, hostname: "127.0.0.1", log: () => {} }, async (req) => {
    const mode = new URL(req.url).pathname.slice(1);
    const parts: Uint8Array[] = [];
    let reads = 0;
    let reused = true;
    if (mode === "byob") {
      const r = req.body!.getReader({ mode: "byob" });
      let buf = new Uint8Array(16 * 1024);
      for (;;) {
        const { done, value } = await r.read(buf);
        if (done || value === undefined) break;
        reads++;
        parts.push(value.slice());
        buf = new Uint8Array(value.buffer as ArrayBuffer);
        // The caller's buffer comes back each time (transferred, so its size is what shows).
        if (value.buffer.byteLength !== 16 * 1024) reused = false;
      }
    } else {
      for await (const c of req.body!) {
        reads++;
        parts.push(c.slice());
      }
    }
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    seen.push({ mode, bytes: all.length, sha: await sha(all), reads, reused });
    return new Response("ok");
  });
  try {
    const pattern = crypto.getRandomValues(new Uint8Array(65536));
    const big = new Uint8Array(3 * 1024 * 1024 + 17);
    for (let i = 0; i < big.length; i += pattern.length) {
      big.set(pattern.subarray(0, Math.min(pattern.length, big.length - i)), i);
    }
    const want = await sha(big);
    for (const mode of ["byob", "default"]) {
      // Sent as a stream in pieces, so the server reads it over many socket reads.
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          for (let i = 0; i < big.length; i += 100_000) c.enqueue(big.slice(i, i + 100_000));
          c.close();
        },
      });
      const res = await fetch(`http://127.0.0.1:${server.addr.port}/${mode}`, {
        method: "POST",
        body: stream,
      });
      equal(await res.text(), "ok");
    }
    deepStrictEqual(seen.map((s) => [s.mode, s.bytes, s.sha, s.reused]), [
      ["byob", big.length, want, true],
      ["default", big.length, want, true],
    ]);
    equal(seen[0].reads > 3 * 1024 * 1024 / (16 * 1024) - 1, true, `${seen[0].reads} reads`);
  } finally {
    await server.shutdown();
  }
});
