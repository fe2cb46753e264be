/**
 * End-to-end memory bound of the body path: a replica stores a 256 MiB object (streamed from
 * the origin, never held whole), then, after a restart, answers `Range: bytes=0-0` four at a
 * time and a first plain GET (which checks the stored hash by streaming the file). Its peak
 * RSS (VmHWM) grows by less than 100 MiB over its idle figure at each step. A generous
 * functional bound: the goal and its figures are in `deno task bench:memory`.
 */
import { equal, ok } from "node:assert/strict";
import { startReplica } from "./_http_replica.ts";

const MiB = 1024 * 1024;
const SIZE = 256 * MiB;
const PIECE = MiB;
const BOUND = 100 * MiB;

/** Byte `i` of the object. */
const byteAt = (i: number) => (i * 7 + (i >>> 20)) & 0xff;

function piece(offset: number, n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = byteAt(offset + i);
  return out;
}

/** An origin streaming the object in 1 MiB pieces (never building it whole). */
function startBigOrigin() {
  const ac = new AbortController();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: ac.signal,
    onListen() {},
  }, () => {
    let off = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (off >= SIZE) return c.close();
        c.enqueue(piece(off, PIECE));
        off += PIECE;
      },
    });
    return new Response(body, {
      headers: { "cache-control": "max-age=3600", "content-length": String(SIZE) },
    });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    async close() {
      ac.abort();
      await server.finished;
    },
  };
}

function memory(pid: number): { rss: number; hwm: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)![1]);
  return { rss: kb("VmRSS") * 1024, hwm: kb("VmHWM") * 1024 };
}

/** Reads a body to its end, counting bytes and checking a few of them. */
async function drain(res: Response, from: number): Promise<number> {
  let n = 0;
  for await (const chunk of res.body!) {
    if (n === 0 && chunk.length > 0) equal(chunk[0], byteAt(from));
    n += chunk.length;
  }
  return n;
}

Deno.test({
  name: "http memory: storing, ranging and first-reading a 256 MiB object stay under +100 MiB",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const origin = startBigOrigin();
    const dir = await Deno.makeTempDir({ prefix: "nearcast_http_memory_" });
    const args = ["-o", origin.url, "--id", "m", "--data", dir, "--cache-bytes", "1GiB"];
    let replica = await startReplica(args);
    try {
      const mb = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
      let idle = memory(replica.pid).rss;
      const fill = await fetch(replica.url + "/big");
      equal(await drain(fill, 0), SIZE);
      let peak = memory(replica.pid).hwm;
      console.log(`fill: idle ${mb(idle)}, peak ${mb(peak)}`);
      ok(peak - idle < BOUND, `the fill grew RSS by ${mb(peak - idle)}`);
      await replica.close();

      replica = await startReplica(args);
      idle = memory(replica.pid).rss;
      const ranges = await Promise.all(
        Array.from(
          { length: 4 },
          () => fetch(replica.url + "/big", { headers: { range: "bytes=0-0" } }),
        ),
      );
      for (const r of ranges) {
        equal(r.status, 206);
        equal(await drain(r, 0), 1);
      }
      peak = memory(replica.pid).hwm;
      console.log(`range 0-0 x4 after restart: idle ${mb(idle)}, peak ${mb(peak)}`);
      ok(peak - idle < BOUND, `Range 0-0 grew RSS by ${mb(peak - idle)}`);
      await replica.close();

      replica = await startReplica(args);
      idle = memory(replica.pid).rss;
      const get = await fetch(replica.url + "/big");
      equal(get.headers.get("x-cache"), "HIT");
      equal(await drain(get, 0), SIZE);
      peak = memory(replica.pid).hwm;
      console.log(`first GET after restart: idle ${mb(idle)}, peak ${mb(peak)}`);
      ok(peak - idle < BOUND, `the first GET grew RSS by ${mb(peak - idle)}`);
    } finally {
      await replica.close();
      await origin.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
