/**
 * Bodies stream through the routing proxy both ways without being held whole: a 256 MiB
 * download and a 128 MiB upload (curl through `main_proxy.ts` to a generating/counting
 * origin) leave the proxy's peak RSS (VmHWM) well under the body sizes. The 1 GiB figure is
 * `deno task bench:proxy --rss` (docs/benchmarks.md).
 */
import { equal, ok } from "node:assert/strict";
import { startReplica } from "./_http_replica.ts";
import { run, startProxyProc } from "./_proxy_procs.ts";

const MiB = 1024 * 1024;
const DOWN = 256 * MiB;
const UP = 128 * MiB;
/** Allowed growth of the proxy's peak RSS over its idle RSS while the bodies move. */
const GROWTH_BOUND = 100 * MiB;

function vmKiB(pid: number, field: "VmHWM" | "VmRSS"): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(
    Deno.readTextFileSync(`/proc/${pid}/status`),
  );
  return Number(m![1]) * 1024;
}

Deno.test("proxy: a 256 MiB download and a 128 MiB upload stream through with bounded RSS", async () => {
  const chunk = new Uint8Array(64 * 1024).fill(0x61);
  const origin = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    if (req.method === "PUT") {
      let n = 0;
      for await (const b of req.body!) n += b.length;
      return new Response(`${n}\n`);
    }
    let left = DOWN;
    return new Response(
      new ReadableStream({
        pull(c) {
          if (left === 0) return c.close();
          const b = left >= chunk.length ? chunk : chunk.subarray(0, left);
          left -= b.length;
          c.enqueue(b);
        },
      }),
      { headers: { "content-length": String(DOWN) } },
    );
  });
  const upload = await Deno.makeTempFile({ prefix: "proxy_up_" });
  const replica = await startReplica(["-o", "http://127.0.0.1:9", "--id", "s1"]);
  const proxy = await startProxyProc(["--node", replica.url, "--name", "cdn.test"]);
  try {
    const f = await Deno.open(upload, { write: true });
    for (let i = 0; i < UP / chunk.length; i++) await f.write(chunk);
    f.close();
    const idle = vmKiB(proxy.pid, "VmRSS");
    const target = `http://127.0.0.1:${origin.addr.port}/big`;
    const down = await run("curl", [
      "-s",
      "-x",
      proxy.url,
      "-o",
      "/dev/null",
      "-w",
      "%{size_download}",
      target,
    ], 120_000);
    equal(down.code, 0, down.stderr);
    equal(Number(new TextDecoder().decode(down.stdout)), DOWN);
    const up = await run("curl", ["-s", "-x", proxy.url, "-T", upload, target], 120_000);
    equal(up.code, 0, up.stderr);
    equal(new TextDecoder().decode(up.stdout).trim(), String(UP));
    const peak = vmKiB(proxy.pid, "VmHWM");
    ok(
      peak - idle < GROWTH_BOUND,
      `proxy peak RSS ${(peak / MiB).toFixed(1)} MiB, idle ${(idle / MiB).toFixed(1)} MiB`,
    );
  } finally {
    await proxy.close();
    await replica.close();
    await origin.shutdown();
    await Deno.remove(upload);
  }
});
