/**
 * End-to-end: large misses are written through to the store while they are served. Clients
 * get the body as it arrives; concurrent misses share one origin fetch; a body without
 * Content-Length is stored when it fits and streamed whole when it does not; a cut body is
 * never stored.
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { startCutOrigin, startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";

const MiB = 1024 * 1024;
const SLOW = new Uint8Array(4 * MiB).map((_, i) => (i * 13 + (i >> 12)) & 0xff);
const CHUNKED = new Uint8Array(3 * MiB).map((_, i) => (i * 5 + (i >> 9)) & 0xff);

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function withReplica(
  originUrl: string,
  extra: string[],
  fn: (url: string, lines: string[]) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "nearcast_fill_stream_" });
  const replica = await startReplica(["-o", originUrl, "--id", "f", "--data", dir, ...extra]);
  try {
    await fn(replica.url, replica.lines);
  } finally {
    await replica.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * An origin sending `body` for any path: the first half at once, the rest only after
 * `release()`. Counts requests.
 */
function startGatedOrigin(body: Uint8Array<ArrayBuffer>) {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  let count = 0;
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    () => {
      count++;
      const half = body.length >> 1;
      let step = 0;
      const stream = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (step === 0) c.enqueue(body.slice(0, half));
          else if (step === 1) {
            await gate;
            c.enqueue(body.slice(half));
          } else c.close();
          step++;
        },
      });
      return new Response(stream, {
        headers: { "cache-control": "max-age=600", "content-length": String(body.length) },
      });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    release,
    count: () => count,
    async close() {
      release();
      ac.abort();
      await server.finished;
    },
  };
}

/** `p`, or a rejection after `ms` (a functional bound: a hang fails the test). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

Deno.test("fill stream: a large miss reaches its clients while the origin is still sending", async () => {
  const origin = startGatedOrigin(SLOW);
  try {
    await withReplica(origin.url, [], async (url) => {
      const res = await within(fetch(url + "/slow"), 10_000, "response headers");
      equal(res.headers.get("x-cache"), "MISS");
      const reader = res.body!.getReader();
      // The origin holds back the second half: these bytes come from the store's temporary
      // file while it is being written, not from a body buffered whole.
      let got = 0;
      const parts: Uint8Array<ArrayBuffer>[] = [];
      while (got < SLOW.length >> 1) {
        const r = await within(reader.read(), 10_000, "the first half");
        ok(!r.done);
        parts.push(r.value as Uint8Array<ArrayBuffer>);
        got += r.value.byteLength;
      }
      // Misses arriving meanwhile join the same fetch; a range request waits for the entry.
      const joiners = Array.from(
        { length: 4 },
        () => fetch(url + "/slow").then(async (r) => new Uint8Array(await r.arrayBuffer())),
      );
      const ranged = fetch(url + "/slow", { headers: { range: "bytes=100-199" } });
      origin.release();
      while (true) {
        const r = await reader.read();
        if (r.done) break;
        parts.push(r.value as Uint8Array<ArrayBuffer>);
      }
      const body = new Uint8Array(await new Blob(parts).arrayBuffer());
      ok(same(body, SLOW), "the streamed miss is the whole body");
      for (const j of await Promise.all(joiners)) ok(same(j, SLOW), "joined miss");
      const r = await ranged;
      equal(r.status, 206);
      deepStrictEqual(new Uint8Array(await r.arrayBuffer()), SLOW.subarray(100, 200));
      equal(origin.count(), 1, "one origin fetch for all");
      const hit = await fetch(url + "/slow");
      equal(hit.headers.get("x-cache"), "HIT");
      ok(same(new Uint8Array(await hit.arrayBuffer()), SLOW));
    });
  } finally {
    await origin.close();
  }
});

Deno.test("fill stream: a body without Content-Length is stored if it fits, streamed whole if not", async () => {
  const origin = await startOrigin({
    "/chunked": { headers: { "cache-control": "max-age=600" }, body: CHUNKED, chunks: 12 },
  });
  try {
    // Past --max-object-bytes while streamed to the store (2 MiB), or before streaming (512 KiB).
    for (const max of ["2MiB", "512KiB"]) {
      await withReplica(origin.url, ["--max-object-bytes", max], async (url, lines) => {
        const before = origin.count("/chunked");
        for (let i = 1; i <= 2; i++) {
          const res = await fetch(url + "/chunked");
          equal(res.headers.get("x-cache"), "MISS", "larger than --max-object-bytes: not stored");
          ok(same(new Uint8Array(await res.arrayBuffer()), CHUNKED), `${max}: whole body ${i}`);
          equal(origin.count("/chunked"), before + i);
        }
        const metrics = await (await fetch(url + "/_cdn/metrics")).text();
        ok(/^nearcast_http_origin_errors_total 0$/m.test(metrics), `${max}: no origin error`);
        ok(!lines.some((l) => l.includes("missing or corrupt")), lines.join("\n"));
      });
    }
    await withReplica(origin.url, [], async (url) => {
      const before = origin.count("/chunked");
      const miss = await fetch(url + "/chunked");
      ok(same(new Uint8Array(await miss.arrayBuffer()), CHUNKED));
      const hit = await fetch(url + "/chunked");
      equal(hit.headers.get("x-cache"), "HIT");
      ok(same(new Uint8Array(await hit.arrayBuffer()), CHUNKED));
      equal(origin.count("/chunked"), before + 1);
    });
  } finally {
    await origin.close();
  }
});

Deno.test("fill stream: a large body cut short is never stored nor completed", async () => {
  const origin = startCutOrigin(3 * MiB, 2 * MiB);
  try {
    await withReplica(origin.url, [], async (url, lines) => {
      for (let i = 1; i <= 2; i++) {
        const res = await fetch(url + "/cut");
        const got = await res.arrayBuffer().then((b) => b.byteLength, () => "error");
        equal(got, "error", "the client sees the body fail, not a short body");
        equal(origin.count(), i, "nothing was stored: fetched again");
      }
      ok(lines.some((l) => /origin: \/cut: .*2097152/.test(l)), lines.join("\n"));
    });
  } finally {
    await origin.close();
  }
});

Deno.test("fill stream: a streamed body that stalls for --origin-timeout is cut, not stored", async () => {
  const origin = startGatedOrigin(SLOW); // sends half, then nothing until released
  try {
    await withReplica(origin.url, ["--origin-timeout", "500ms"], async (url) => {
      const res = await within(fetch(url + "/stall"), 10_000, "response headers");
      equal(res.status, 200);
      const got = await within(
        res.arrayBuffer().then((b) => b.byteLength, () => "cut"),
        10_000,
        "the cut",
      );
      equal(got, "cut", "the client sees the body fail, not a short body");
      const again = await within(fetch(url + "/stall"), 10_000, "second response");
      equal(again.headers.get("x-cache"), "MISS", "nothing was stored");
      await again.body?.cancel();
      equal(origin.count(), 2);
    });
  } finally {
    await origin.close();
  }
});

/** A fake peer: claims a cache hit of `declared` bytes, sends `sent` of them, and hangs up. */
function startBrokenPeer(declared: number, sent: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let n = 0;
  const conns = new Set<Deno.Conn>();
  const loop = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      (async () => {
        try {
          const buf = new Uint8Array(16 * 1024);
          let head = "";
          while (!head.includes("\r\n\r\n")) {
            const r = await conn.read(buf);
            if (r === null) return;
            head += new TextDecoder().decode(buf.subarray(0, r));
          }
          n++;
          await conn.write(new TextEncoder().encode(
            `HTTP/1.1 200 OK\r\nContent-Length: ${declared}\r\nCache-Control: max-age=600\r\n` +
              `X-Cache: HIT\r\nConnection: close\r\n\r\n`,
          ));
          await conn.write(SLOW.subarray(0, sent));
        } catch {
          /* the replica hung up */
        } finally {
          conns.delete(conn);
          try {
            conn.close();
          } catch { /* closed */ }
        }
      })();
    }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    count: () => n,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await loop.catch(() => {});
    },
  };
}

Deno.test("fill stream: a large body from a peer is stored whole before it is served; a broken peer is passed over", async () => {
  const origin = await startOrigin({
    "/big": { headers: { "cache-control": "max-age=600" }, body: SLOW },
  });
  const broken = startBrokenPeer(SLOW.length, MiB);
  try {
    await withReplica(origin.url, [], async (a) => {
      ok(same(new Uint8Array(await (await fetch(a + "/big")).arrayBuffer()), SLOW));
      equal(origin.count("/big"), 1);
      await withReplica(origin.url, ["--peers", a], async (b) => {
        const res = await fetch(b + "/big");
        ok(same(new Uint8Array(await res.arrayBuffer()), SLOW), "from the peer");
        equal(origin.count("/big"), 1, "the peer answered");
        const hit = await fetch(b + "/big");
        equal(hit.headers.get("x-cache"), "HIT");
        ok(same(new Uint8Array(await hit.arrayBuffer()), SLOW));
      });
    });
    await withReplica(origin.url, ["--peers", broken.url], async (c, lines) => {
      const res = await fetch(c + "/big");
      ok(same(new Uint8Array(await res.arrayBuffer()), SLOW), "from the origin after the peer");
      equal(broken.count(), 1);
      equal(origin.count("/big"), 2);
      ok(lines.some((l) => l.startsWith("peer: /big: ")), lines.join("\n"));
    });
  } finally {
    await broken.close();
    await origin.close();
  }
});
