/**
 * CPU time per proxied request, this checkout's proxy against another checkout's (a baseline
 * commit in a git worktree), measured in pairs so that both see the same load from the rest of
 * the machine: one replica (core 1) serves a 1 KiB cache hit; both proxies are pinned to core
 * 0 and loaded at the same time by two wrk processes (core 1, `--connections` each); each
 * proxy's user + system CPU time over the run (/proc/PID/stat) is divided by the requests wrk
 * completed through it. Medians of `--runs` pairs.
 *
 * Usage: deno run -A bench/proxy/cpu_ab.ts --baseline DIR [--runs 8] [--duration 5]
 *          [--connections 16]
 *   e.g. git worktree add /tmp/base COMMIT && deno run -A bench/proxy/cpu_ab.ts --baseline /tmp/base
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { cpuSeconds, fetchVia, freePort, spawn, stopAll } from "./run.ts";
import { parseWrk } from "../http_rps/_wrk.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

async function wrkRequests(url: string, seconds: number, connections: number): Promise<number> {
  const script = await Deno.makeTempFile({ suffix: ".lua" });
  await Deno.writeTextFile(
    script,
    'request = function() return wrk.format("GET", "http://cdn.test/obj.bin") end\n',
  );
  const out = await new Deno.Command("taskset", {
    args: [
      "-c",
      "1",
      "wrk",
      "-t1",
      `-c${connections}`,
      `-d${seconds}s`,
      "--latency",
      "-s",
      script,
      url,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  await Deno.remove(script);
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) throw new Error(`wrk failed: ${new TextDecoder().decode(out.stderr)}`);
  return parseWrk(text).requests;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      baseline: { type: "string" },
      runs: { type: "string", default: "8" },
      duration: { type: "string", default: "5" },
      connections: { type: "string", default: "16" },
    },
    strict: true,
  });
  if (values.baseline === undefined) throw new Error("--baseline DIR is required (see the doc)");
  const runs = Number(values.runs), seconds = Number(values.duration);
  const connections = Number(values.connections);
  const body = new Uint8Array(1024).map((_, i) => 97 + (i % 26));
  const origin = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response(body, { headers: { "cache-control": "max-age=3600" } }),
  );
  try {
    const rport = freePort();
    const replica = spawn("replica", Deno.execPath(), [
      "run",
      "-A",
      `${ROOT}main_http.ts`,
      ...["-p", String(rport), "--host", "127.0.0.1"],
      ...["-o", `http://127.0.0.1:${origin.addr.port}`],
    ], "1");
    await fetchVia(null, `http://127.0.0.1:${rport}/obj.bin`, replica);
    const proxies: { name: string; url: string; pid: number; us: number[] }[] = [];
    for (const [name, dir] of [["baseline", values.baseline], ["this", ROOT]]) {
      const port = freePort();
      const p = spawn(name, Deno.execPath(), [
        "run",
        "-A",
        `${dir}/main_proxy.ts`,
        ...["-p", String(port), "--node", `http://127.0.0.1:${rport}`, "--name", "cdn.test"],
      ], "0");
      const url = `http://127.0.0.1:${port}`;
      await fetchVia(url, "http://cdn.test/obj.bin", p);
      await wrkRequests(url, 2, connections); // warm-up
      proxies.push({ name, url, pid: p.child.pid, us: [] });
    }
    console.log(`cpu_ab: ${runs} paired ${seconds} s runs, ${connections} connections each`);
    for (let i = 0; i < runs; i++) {
      const before = await Promise.all(proxies.map((p) => cpuSeconds(p.pid)));
      const done = await Promise.all(proxies.map((p) => wrkRequests(p.url, seconds, connections)));
      const after = await Promise.all(proxies.map((p) => cpuSeconds(p.pid)));
      const line = proxies.map((p, j) => {
        const us = (after[j] - before[j]) / done[j] * 1e6;
        p.us.push(us);
        return `${p.name} ${done[j]} requests ${us.toFixed(1)} us/request`;
      });
      const load = (await Deno.readTextFile("/proc/loadavg")).split(" ")[0];
      console.log(`run ${i + 1}: ${line.join(" | ")} | load ${load}`);
    }
    const [b, t] = proxies.map((p) => median(p.us));
    const fewer = proxies[1].us.filter((x, i) => x < proxies[0].us[i]).length;
    console.log(
      `median CPU per request: baseline ${b.toFixed(1)} us, this ${t.toFixed(1)} us (${
        ((t / b - 1) * 100).toFixed(0)
      }%); this one lower in ${fewer} of ${runs} pairs`,
    );
  } finally {
    await stopAll();
    await origin.shutdown();
  }
}

if (import.meta.main) await main();
