/**
 * Memory soak: one replica (`main_http.ts` subprocess, `--data` in a temporary directory)
 * with a small `--cache-bytes`, in front of an in-process origin with many 1 KiB objects and
 * some large ones, driven by `--connections` concurrent clients for a bounded number of
 * requests: Zipf-popular small objects (hits and misses), uniformly drawn small objects
 * (mostly misses and evictions), large objects whole and by `Range`. The replica's RSS is
 * sampled from `/proc/PID/status` (VmRSS, VmHWM) throughout.
 *
 * Reports the idle RSS (after start, nothing cached), the peak (VmHWM), the RSS at the end,
 * and the bound `idle + 1.5 x budget + 40 MiB` (the 40 MiB: 1.25 MiB for each of up to 32 busy
 * connections; more connections get 1.25 MiB each); exits 1 when the peak is over the bound.
 *
 * `deno run -A bench/memory/soak.ts [--cache-bytes 16MiB] [--requests 40000]
 * [--connections 32]` (see --help). Writes JSON to bench/.out/memory.json. Linux only.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseSize } from "../../lib/http/units.ts";
import { spawnDenoLines, startedLine } from "../../tests/_proc.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const MiB = 1024 * 1024;
/** Memory allowed per busy connection (the goal's 40 MiB for 32 connections). */
const CONN_ALLOWANCE = 1.25 * MiB;
/** RSS sampling period, ms. */
const SAMPLE_MS = 50;
/** Longest wait for the replica to start. */
const START_MS = 60_000;

const FLAGS = {
  "cache-bytes": { type: "string", help: "Replica --cache-bytes. Default 16MiB." },
  requests: { type: "string", help: "Requests in all. Default 40000." },
  connections: { type: "string", help: "Concurrent clients. Default 32." },
  small: { type: "string", help: "Distinct 1 KiB objects. Default 200000." },
  large: { type: "string", help: "Distinct large objects. Default 16." },
  "large-bytes": { type: "string", help: "Size of a large object. Default 2MiB." },
  "large-share": {
    type: "string",
    help: "Share of requests for large objects (half of them ranges). Default 0.005.",
  },
  heap: { type: "string", help: "Replica --heap: compact (its default) or v8 (V8's defaults)." },
  v8: { type: "string", help: "V8 flags for the replica, e.g. --max-semi-space-size=1." },
  help: { type: "boolean", short: "h", help: "Show this help." },
} as const;

interface Sample {
  rss: number;
  hwm: number;
}

function memory(pid: number): Sample | null {
  try {
    const s = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kb = (n: string) => Number(new RegExp(`^${n}:\\s+(\\d+) kB`, "m").exec(s)![1]) * 1024;
    return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
  } catch {
    return null;
  }
}

/** Resident bytes of the malloc heap (`[heap]`), anonymous mappings (V8's heap among them), and the rest. */
function breakdown(pid: number): { heap: number; anon: number; other: number } {
  const out = { heap: 0, anon: 0, other: 0 };
  let kind: keyof typeof out = "other";
  for (const line of Deno.readTextFileSync(`/proc/${pid}/smaps`).split("\n")) {
    const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m !== null) {
      kind = m[1] === "[heap]" ? "heap" : m[1] === "" ? "anon" : "other";
      continue;
    }
    const r = /^Rss:\s+(\d+) kB/.exec(line);
    if (r !== null) out[kind] += Number(r[1]) * 1024;
  }
  return out;
}

const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

function startOrigin(largeBytes: number) {
  const small = new Uint8Array(1024);
  for (let i = 0; i < small.length; i++) small[i] = (i * 31) & 0xff;
  const large = new Uint8Array(largeBytes);
  for (let i = 0; i < large.length; i++) large[i] = (i * 7 + (i >> 12)) & 0xff;
  const ac = new AbortController();
  const headers = { "cache-control": "max-age=3600", "content-type": "application/octet-stream" };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} }, (
    req,
  ) => {
    const path = new URL(req.url).pathname;
    const n = Number(path.slice(3));
    if (path.startsWith("/s/")) {
      const body = small.slice();
      new DataView(body.buffer).setUint32(0, n);
      return new Response(body, { headers });
    }
    if (path.startsWith("/l/")) {
      const body = large.slice();
      new DataView(body.buffer).setUint32(0, n);
      return new Response(body, { headers });
    }
    return new Response("no such object\n", { status: 404 });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    async close() {
      ac.abort();
      await server.finished;
    },
  };
}

async function startReplica(
  origin: string,
  cacheBytes: string,
  dir: string,
  v8: string[],
  heap: string,
) {
  const p = spawnDenoLines([
    "main_http.ts",
    ...["-p", "0", "--host", "127.0.0.1", "-o", origin, "--id", "soak", "--data", dir],
    ...["--cache-bytes", cacheBytes, "--heap", heap],
  ], { denoFlags: ["-A", ...v8], name: "replica" });
  const [, port] = await startedLine(
    p,
    /listening on http:\/\/127\.0\.0\.1:(\d+)\//,
    undefined,
    START_MS,
  );
  return {
    url: `http://127.0.0.1:${port}`,
    pid: p.pid,
    lines: p.lines,
    stop: () => p.stop("SIGTERM"),
  };
}

/** Zipf(0.99)-like rank in [0, n) by inversion of a continuous approximation. */
function zipfRank(n: number, u: number): number {
  return Math.min(n - 1, Math.floor(Math.exp(u * Math.log(n + 1)) - 1));
}

async function main() {
  const { values } = parseArgs({ options: FLAGS });
  if (values.help) {
    console.log("deno run -A bench/memory/soak.ts [options]\n");
    for (const [name, f] of Object.entries(FLAGS)) console.log(`  --${name}  ${f.help}`);
    return;
  }
  if (Deno.build.os !== "linux") throw new Error("bench:memory reads /proc: Linux only");
  const cacheBytes = values["cache-bytes"] ?? "16MiB";
  const budget = parseSize(cacheBytes);
  const requests = Number(values.requests ?? 40_000);
  const connections = Number(values.connections ?? 32);
  const smallCount = Number(values.small ?? 200_000);
  const largeCount = Number(values.large ?? 16);
  const largeBytes = parseSize(values["large-bytes"] ?? "2MiB");
  const largeShare = Number(values["large-share"] ?? 0.005);

  const origin = startOrigin(largeBytes);
  const dir = await Deno.makeTempDir({ prefix: "nearcast_soak_" });
  const v8 = values.v8 === undefined ? [] : [`--v8-flags=${values.v8}`];
  const replica = await startReplica(origin.url, cacheBytes, dir, v8, values.heap ?? "compact");
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const idle = memory(replica.pid)!.rss;
    let maxRss = idle;
    const timeline: { done: number; rss: number; entries: number; usedBytes: number }[] = [];
    const sampler = setInterval(() => {
      const m = memory(replica.pid);
      if (m !== null) maxRss = Math.max(maxRss, m.rss);
    }, SAMPLE_MS);

    let next = 0;
    let done = 0;
    let failed = 0;
    let bytes = 0;
    let x = 0x2545f491;
    const rand = () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) / 2 ** 32;
    };
    const reportEvery = Math.max(1, Math.floor(requests / 10));
    const t0 = performance.now();
    const worker = async () => {
      while (next < requests) {
        next++;
        const u = rand();
        let path: string;
        const init: RequestInit = {};
        if (u < largeShare) {
          path = `/l/${Math.floor(rand() * largeCount)}`;
          if (u < largeShare / 2) {
            const start = Math.floor(rand() * (largeBytes - 4096));
            init.headers = { range: `bytes=${start}-${start + 4095}` };
          }
        } else if (u < 0.6) path = `/s/${zipfRank(smallCount, rand())}`;
        else path = `/s/${Math.floor(rand() * smallCount)}`;
        try {
          const res = await fetch(replica.url + path, init);
          bytes += (await res.arrayBuffer()).byteLength;
          if (res.status !== 200 && res.status !== 206) failed++;
        } catch {
          failed++;
        }
        done++;
        if (done % reportEvery === 0) {
          const h = await (await fetch(`${replica.url}/_cdn/health`)).json();
          const m = memory(replica.pid)!;
          timeline.push({ done, rss: m.rss, entries: h.entries, usedBytes: h.usedBytes });
          console.log(
            `${done}/${requests}: RSS ${mib(m.rss)}, peak ${mib(m.hwm)}, ${h.entries} entries, ` +
              `${mib(h.usedBytes)} of ${mib(h.budgetBytes)}`,
          );
        }
      }
    };
    await Promise.all(Array.from({ length: connections }, worker));
    const seconds = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    const end = memory(replica.pid)!;
    const parts = breakdown(replica.pid);
    const peak = Math.max(maxRss, end.hwm);
    const bound = idle + 1.5 * budget + Math.max(32, connections) * CONN_ALLOWANCE;
    const missing = replica.lines.filter((l) => l.includes("missing or corrupt")).length;
    const result = {
      cacheBytes: budget,
      requests,
      connections,
      seconds: Number(seconds.toFixed(1)),
      requestsPerSecond: Math.round(requests / seconds),
      failed,
      bodyBytes: bytes,
      idle,
      peak,
      end: end.rss,
      endBreakdown: parts,
      bound,
      ok: peak <= bound,
      missingBodyLines: missing,
      timeline,
    };
    console.log(
      `\ncache ${mib(budget)}, ${requests} requests over ${connections} connections in ` +
        `${result.seconds} s (${result.requestsPerSecond}/s), ${failed} failed\n` +
        `idle ${mib(idle)}, peak ${mib(peak)} (+${mib(peak - idle)}), end ${mib(end.rss)}, ` +
        `bound ${mib(bound)}: ${result.ok ? "within" : "OVER"}\n` +
        `at the end: malloc heap ${mib(parts.heap)}, anonymous (V8 heap, ...) ${
          mib(parts.anon)
        }, ` +
        `other ${mib(parts.other)}`,
    );
    await Deno.mkdir(`${ROOT}bench/.out`, { recursive: true });
    await Deno.writeTextFile(`${ROOT}bench/.out/memory.json`, JSON.stringify(result, null, 2));
    if (!result.ok) Deno.exitCode = 1;
  } finally {
    await replica.stop();
    await origin.close();
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main();
