/**
 * HTTP benchmark: cache hits of small and large objects through our replica and through nginx
 * (`proxy_cache`), from the same demo origin, in the same run. Servers are pinned to core 0
 * (`taskset -c 0`) and wrk to core 1, one at a time; every server must answer the measured
 * URLs with a cache hit before it is measured. Prints requests/s, p99 and the ratio to nginx
 * per size (median of `--rounds` interleaved rounds) and writes JSON to `bench/.out/`.
 *
 * Usage: deno task bench:http [--duration 10] [--connections 64] [--rounds 3]
 *          [--sizes 1024,102400] [--servers nginx,replica,deno:bytes,deno:clone]
 *
 * Servers: `nginx`; `replica` (main_http.ts); `deno:MODE[:CHUNK]`, a bare Deno.serve from
 * `deno_server.ts` (MODE: bytes, bytesasync, bytesfetched, byteslen, clone, blob, stream, file, filebytes).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { nginxConfig } from "./_nginx.ts";
import { runWrk, type WrkResult } from "./_wrk.ts";
import { spawnLines } from "../../tests/_proc.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** Time a server gets to start answering; Deno compiles on first start. */
const START_TIMEOUT_MS = 60_000;
/** Requests tried per server and URL to see a cache hit before giving up. */
const WARM_ATTEMPTS = 5;
/** Slack on top of `--duration` before a wrk run is considered hung and killed. */
const WRK_SLACK_MS = 30_000;
/** wrk's per-request timeout: its default (2 s) is hit by 1 MiB bodies on a loaded machine. */
const WRK_TIMEOUT_S = 10;
/** Lines of a server's output kept for error messages. */
const LOG_LINES = 60;
/** Goals from the brief: replica req/s as a fraction of nginx's, per size. */
const GOALS: Record<number, number> = { 1024: 0.9, 102400: 0.45 };

const HELP = `HTTP benchmark: our replica vs nginx proxy_cache, cache hits only

Usage: deno task bench:http [options]

Options:
  -d, --duration SECONDS   length of each wrk run (default 10)
  -c, --connections N      wrk connections (default 64)
  -r, --rounds N           interleaved rounds; the median is reported (default 3)
      --sizes LIST         object sizes in bytes (default 1024,102400)
      --servers LIST       nginx, replica, deno:MODE[:CHUNK], denolimited:MODE[:CHUNK] (the same
                           server behind lib/common/http_server.ts) (default nginx,replica,deno:bytes,deno:clone)
      --replica-args ARGS  extra flags for main_http.ts, space-separated
      --no-pin             do not pin servers and wrk to cores 0 and 1
      --json FILE          where to write the results (default bench/.out/http_rps-TIME.json)
  -h, --help               show this help
`;

interface Proc {
  name: string;
  child: Deno.ChildProcess;
  /** The last lines of stdout+stderr, for error messages. */
  log: () => string;
}

const procs: Proc[] = [];

function spawn(name: string, cmd: string, args: string[], pin: string | null): Proc {
  const [c, a] = pin ? ["taskset", ["-c", pin, cmd, ...args]] : [cmd, args];
  const lp = spawnLines(c, a, { name, maxLines: LOG_LINES });
  const p = { name, child: lp.child, log: lp.output };
  procs.push(p);
  return p;
}

async function stop(p: Proc): Promise<void> {
  try {
    p.child.kill("SIGTERM");
  } catch { /* already gone */ }
  const timer = setTimeout(() => {
    try {
      p.child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, 5000);
  await p.child.status;
  clearTimeout(timer);
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function waitHttp(p: Proc, url: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let exited = false;
  p.child.status.then(() => exited = true);
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${p.name} exited before answering ${url}:\n${p.log()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.body?.cancel();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`${p.name} did not answer ${url} within ${START_TIMEOUT_MS} ms:\n${p.log()}`);
}

/** Fetches until the response is a cache hit of the right size; returns the X-Cache seen. */
async function warm(name: string, url: string, size: number): Promise<string> {
  let last = "";
  for (let i = 0; i < WARM_ATTEMPTS; i++) {
    const res = await fetch(url);
    const body = await res.bytes();
    last = `${res.status} X-Cache: ${res.headers.get("x-cache")} (${body.length} bytes)`;
    if (
      res.status === 200 && body.length === size && /^HIT\b/i.test(res.headers.get("x-cache") ?? "")
    ) {
      return res.headers.get("x-cache")!;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} does not serve ${url} as a cache hit: last answer ${last}`);
}

function wrk(url: string, opts: Opts): Promise<WrkResult & { raw: string }> {
  return runWrk({
    url,
    connections: opts.connections,
    durationS: opts.duration,
    core: opts.pin ? "1" : null,
    timeoutS: WRK_TIMEOUT_S,
    slackMs: WRK_SLACK_MS,
  });
}

interface Opts {
  duration: number;
  connections: number;
  rounds: number;
  sizes: number[];
  servers: string[];
  replicaArgs: string[];
  pin: boolean;
  json: string;
}

function parseOpts(): Opts | null {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      duration: { type: "string", short: "d", default: "10" },
      connections: { type: "string", short: "c", default: "64" },
      rounds: { type: "string", short: "r", default: "3" },
      sizes: { type: "string", default: "1024,102400" },
      servers: { type: "string", default: "nginx,replica,deno:bytes,deno:clone" },
      "replica-args": { type: "string", default: "" },
      "no-pin": { type: "boolean", default: false },
      json: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return null;
  }
  const int = (name: string, v: string, min: number, max: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new RangeError(`--${name} must be an integer in ${min}..${max}: received ${v}`);
    }
    return n;
  };
  const sizes = values.sizes.split(",").map((s) => int("sizes", s, 0, 64 * 1024 * 1024));
  const servers = values.servers.split(",").filter((s) => s !== "");
  for (const s of servers) {
    if (
      !/^(nginx|replica|deno(limited)?:(bytes|bytesasync|bytesfetched|byteslen|clone|blob|file|filebytes|stream(:\d+)?))$/
        .test(
          s,
        )
    ) {
      throw new RangeError(`--servers: unknown server "${s}"`);
    }
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  return {
    duration: int("duration", values.duration, 1, 3600),
    connections: int("connections", values.connections, 1, 10000),
    rounds: int("rounds", values.rounds, 1, 100),
    sizes,
    servers,
    replicaArgs: values["replica-args"].split(" ").filter((s) => s !== ""),
    pin: !values["no-pin"],
    json: values.json ?? `${ROOT}bench/.out/http_rps-${stamp}.json`,
  };
}

async function have(cmd: string, args: string[]): Promise<boolean> {
  try {
    await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output();
    return true;
  } catch {
    return false;
  }
}

async function versionOf(cmd: string, args: string[]): Promise<string> {
  const o = await new Deno.Command(cmd, { args }).output();
  return (new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr)).split("\n")[0]
    .trim();
}

function loadavg(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "n/a";
  }
}

/** Clock ticks per second of /proc/PID/stat times (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/**
 * CPU seconds (user + system) used so far by `pid` and its descendants (nginx's worker is a
 * child of its master). CPU per request is robust to other load on the machine, unlike req/s.
 */
function cpuSeconds(pid: number): number {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    let stat: string;
    try {
      stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
    } catch {
      continue; // exited meanwhile
    }
    // Fields after the command (which may contain spaces) start at the last ')'.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // f[1] = ppid, f[11] = utime, f[12] = stime, f[13] = cutime, f[14] = cstime
    stats.set(Number(e.name), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
  }
  let ticks = 0;
  for (const [p, st] of stats) {
    for (let q: number | undefined = p; q !== undefined && q > 1; q = stats.get(q)?.ppid) {
      if (q === pid) {
        ticks += st.ticks;
        break;
      }
    }
  }
  return ticks / USER_HZ;
}

function rotate<T>(xs: T[], by: number): T[] {
  const k = by % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main(): Promise<void> {
  const opts = parseOpts();
  if (!opts) return;
  const nginxBin = (await have("nginx", ["-v"])) ? "nginx" : "/usr/sbin/nginx";
  if (opts.servers.includes("nginx") && !(await have(nginxBin, ["-v"]))) {
    throw new Error("nginx not found: apt-get install -y nginx");
  }
  if (!(await have("wrk", ["-v"]))) throw new Error("wrk not found: apt-get install -y wrk");
  if (opts.pin && !(await have("taskset", ["-V"]))) {
    throw new Error("taskset not found (util-linux); or run with --no-pin");
  }
  if (opts.pin && navigator.hardwareConcurrency < 2) {
    console.warn("only one core: running unpinned");
    opts.pin = false;
  }
  if (opts.servers.includes("replica")) {
    try {
      await Deno.stat(`${ROOT}main_http.ts`);
    } catch {
      console.warn("main_http.ts not found: skipping the replica");
      opts.servers = opts.servers.filter((s) => s !== "replica");
    }
  }
  const pin = opts.pin ? "0" : null;
  const tmp = await Deno.makeTempDir({ prefix: "nearcast_bench_http_" });
  const deno = Deno.execPath();
  const paths = opts.sizes.map((n) => `/bytes/${n}`);
  const env = {
    deno: await versionOf(deno, ["--version"]),
    nginx: opts.servers.includes("nginx") ? await versionOf(nginxBin, ["-v"]) : null,
    wrk: await versionOf("wrk", ["-v"]),
    cores: navigator.hardwareConcurrency,
    loadBefore: loadavg(),
    loadAfter: "",
  };
  const results: Record<
    string,
    Record<number, (WrkResult & { xcache: string; cpuUsPerReq: number })[]>
  > = {};
  try {
    // The origin: pinned away from the servers; it only sees the warm-up misses.
    const originPort = freePort();
    const origin = spawn("origin", deno, [
      "run",
      "-A",
      "scripts/demo_origin.ts",
      "-p",
      String(originPort),
      "--host",
      "127.0.0.1",
    ], opts.pin ? "1" : null);
    const originUrl = `http://127.0.0.1:${originPort}`;
    await waitHttp(origin, `${originUrl}/bytes/1`);

    const bases: Record<string, string> = {};
    const pids: Record<string, number> = {};
    for (const s of opts.servers) {
      const port = freePort();
      const base = `http://127.0.0.1:${port}`;
      let p: Proc;
      if (s === "nginx") {
        const prefix = `${tmp}/nginx`;
        await Deno.mkdir(`${prefix}/cache`, { recursive: true });
        await Deno.writeTextFile(`${prefix}/nginx.conf`, nginxConfig(prefix, port, originUrl));
        p = spawn(s, nginxBin, [
          "-p",
          prefix,
          "-c",
          `${prefix}/nginx.conf`,
          "-e",
          `${prefix}/error.log`,
        ], pin);
      } else if (s === "replica") {
        p = spawn(s, deno, [
          "run",
          "-A",
          "main_http.ts",
          "-p",
          String(port),
          "-o",
          originUrl,
          "--host",
          "127.0.0.1",
          ...opts.replicaArgs,
        ], pin);
      } else {
        const [kind, mode, chunk] = s.split(":");
        p = spawn(s, deno, [
          "run",
          "-A",
          "bench/http_rps/deno_server.ts",
          "-p",
          String(port),
          "-o",
          originUrl,
          "--paths",
          paths.join(","),
          "--mode",
          mode,
          ...(chunk ? ["--chunk", chunk] : []),
          ...(kind === "denolimited" ? ["--listener", "limited"] : []),
        ], pin);
      }
      await waitHttp(p, `${base}/`);
      bases[s] = base;
      pids[s] = p.child.pid;
    }
    const xcache: Record<string, string> = {};
    for (const s of opts.servers) {
      for (const [i, path] of paths.entries()) {
        xcache[`${s} ${path}`] = await warm(s, bases[s] + path, opts.sizes[i]);
      }
    }
    console.log(
      `measuring ${opts.servers.join(", ")} on ${opts.sizes.join(", ")} bytes: ` +
        `${opts.rounds} x ${opts.duration}s, ${opts.connections} connections, ` +
        `${opts.pin ? "servers on core 0, wrk on core 1" : "unpinned"}, load ${env.loadBefore}`,
    );
    for (let round = 0; round < opts.rounds; round++) {
      for (const [i, size] of opts.sizes.entries()) {
        // Rotated each round so no server always runs first (or right after another).
        for (const s of rotate(opts.servers, round)) {
          const cpu0 = cpuSeconds(pids[s]);
          const r = await wrk(bases[s] + paths[i], opts);
          const cpuUsPerReq = (cpuSeconds(pids[s]) - cpu0) / r.requests * 1e6;
          // A broken server answering errors fast would look good: that aborts the run.
          // Socket timeouts on a loaded machine are counted and shown instead.
          if (r.non2xx3xx > 0) {
            throw new Error(`${s} ${paths[i]}: ${r.non2xx3xx} non-2xx/3xx answers:\n${r.raw}`);
          }
          if (r.bytesRead < r.requests * size * 0.99) {
            throw new Error(
              `${s} ${paths[i]}: read ${r.bytesRead} bytes for ${r.requests} requests`,
            );
          }
          ((results[s] ??= {})[size] ??= []).push({
            ...r,
            cpuUsPerReq,
            xcache: xcache[`${s} ${paths[i]}`],
          });
          console.log(
            `  round ${round + 1} ${s.padEnd(18)} ${String(size).padStart(7)} B ` +
              `${r.requestsPerSec.toFixed(0).padStart(8)} req/s  p99 ${r.p99Ms.toFixed(2)} ms` +
              `  cpu ${cpuUsPerReq.toFixed(1)} us/req` +
              (r.socketErrors > 0 ? `  (${r.socketErrors} socket errors)` : ""),
          );
        }
      }
    }
    // Each server must still answer hits after the runs (a crash mid-run would show as errors).
    for (const s of opts.servers) await warm(s, bases[s] + paths[0], opts.sizes[0]);
  } finally {
    for (const p of procs.reverse()) await stop(p);
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
  env.loadAfter = loadavg();
  const summary = [];
  for (const size of opts.sizes) {
    console.log(
      `\n${size} B (medians of ${opts.rounds} rounds; ratio = median of per-round ratios):`,
    );
    console.log(
      `  ${"server".padEnd(18)} ${"req/s".padStart(9)} ${"p99 ms".padStart(8)} ` +
        `${"vs nginx".padStart(9)} ${"cpu us/req".padStart(11)} ${"cpu vs nginx".padStart(13)}`,
    );
    for (const s of opts.servers) {
      const runs = results[s][size];
      const rps = median(runs.map((r) => r.requestsPerSec));
      const p99 = median(runs.map((r) => r.p99Ms));
      // Paired ratio: per round (the runs of a round are seconds apart, so they share the
      // machine's load), then the median over rounds. Robust to load drifting between rounds.
      const ratio = results.nginx
        ? median(runs.map((r, k) => r.requestsPerSec / results.nginx[size][k].requestsPerSec))
        : null;
      const goal = s === "replica" && ratio !== null && GOALS[size] !== undefined
        ? `  (goal ${GOALS[size]}: ${ratio >= GOALS[size] ? "met" : "not met"})`
        : "";
      const cpu = median(runs.map((r) => r.cpuUsPerReq));
      // CPU efficiency: nginx's CPU per request over ours (above 1: we use less CPU). Unlike
      // req/s it barely depends on what else the machine runs.
      const cpuRatio = results.nginx
        ? median(results.nginx[size].map((r) => r.cpuUsPerReq)) / cpu
        : null;
      const x = (v: number | null) => v === null ? "-" : v.toFixed(2) + "x";
      console.log(
        `  ${s.padEnd(18)} ${rps.toFixed(0).padStart(9)} ${p99.toFixed(2).padStart(8)} ` +
          `${x(ratio).padStart(9)} ${cpu.toFixed(1).padStart(11)} ${
            x(cpuRatio).padStart(13)
          }${goal}`,
      );
      const errors = runs.reduce((a, r) => a + r.socketErrors, 0);
      if (errors > 0) console.log(`  ${"".padEnd(18)} (${errors} socket errors over the rounds)`);
      summary.push({
        server: s,
        size,
        rps,
        p99Ms: p99,
        ratioToNginx: ratio,
        cpuUsPerReq: cpu,
        cpuEfficiencyVsNginx: cpuRatio,
        socketErrors: errors,
        runs,
      });
    }
  }
  console.log(`\nload average before ${env.loadBefore}, after ${env.loadAfter}`);
  await Deno.mkdir(opts.json.slice(0, opts.json.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(
    opts.json,
    JSON.stringify({ date: new Date().toISOString(), env, opts, summary }, null, 2) + "\n",
  );
  console.log(`results: ${opts.json}`);
}

if (import.meta.main) {
  const cleanup = async () => {
    for (const p of procs) await stop(p);
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", cleanup);
  Deno.addSignalListener("SIGTERM", cleanup);
  try {
    await main();
  } catch (err) {
    console.error(`bench:http: ${err instanceof Error ? err.message : err}`);
    Deno.exitCode = 1;
  }
  Deno.removeSignalListener("SIGINT", cleanup);
  Deno.removeSignalListener("SIGTERM", cleanup);
}
