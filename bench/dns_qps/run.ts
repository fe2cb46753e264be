/**
 * DNS throughput benchmark: dnsperf against NSD and against our server (portable and batched
 * UDP paths) serving the same zone, in one run. Each server is pinned to one core
 * (`taskset -c 0`), dnsperf to the other (`taskset -c 1`). Prints qps, lost queries, CPU use of
 * both cores and the ratio of each of ours to NSD. Goal: at least half of NSD's qps, 0 lost.
 * Answers are checked (verify.ts): dig before and after each round, and dnsperf's rcode
 * counters; a server that answers wrongly fails its round and the run exits 1.
 *
 * `deno task bench:dns [--duration 10] [--servers nsd,portable,mmsg] [--profile] ...`
 * (`--help` for all flags). Needs dnsperf, nsd and taskset (Debian: dnsperf, nsd, util-linux),
 * and root or CAP_NET_ADMIN only for the larger forced socket buffers.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { buildQueryFile, MIX, query } from "./queries.ts";
import { checkRcodes, verifyServer } from "./verify.ts";
import { nsdConf, nsdZone, ourConfig } from "./zone.ts";

const HELP = `Usage: deno task bench:dns [options]

dnsperf against NSD and our DNS server on the same zone, each server on one core. Every
server's answers are checked with dig before and after its round, and dnsperf's rcode counts
(only NOERROR, and NXDOMAIN for the file's nonexistent names): a wrong answer fails the round.

  -l, --duration SEC     seconds of load per server (default 10)
      --servers LIST     comma list of: nsd, portable, mmsg, udp-mmsg, udp-portable
                         (default nsd,portable,mmsg; udp-* are UDP-only servers without TCP)
      --codec KIND       codec of our server: wasm (default) or ts
  -c, --clients N        dnsperf clients (sockets) (default 8)
  -q, --outstanding N    dnsperf queries in flight (default 500)
  -t, --timeout SEC      dnsperf: a query unanswered this long is lost (default 2)
      --zone NAME        zone served (default cdn.test)
      --server-cpu LIST  taskset CPU list of the servers (default 0)
      --client-cpu LIST  taskset CPU list of dnsperf (default 1)
      --reuseport N      also run N UDP-only batched processes sharing one port
                         (SO_REUSEPORT; on the server CPU list) (default 0: skip)
      --rounds N         measure every server N times, interleaved, and report the median
                         (default 1; use 3+ on a shared machine)
      --profile          run our servers with --cpu-prof and print the top functions
      --perf             sample the server CPUs with perf (cpu-clock) during the load and
                         print the top symbols (JIT code named via --perf-basic-prof)
      --out DIR          where files go (default bench/.out/dns_qps)
      --json             print the results as JSON too
  -h, --help             show this help`;

/** Longest wait for a server to answer its first query. */
const READY_TIMEOUT_MS = 20_000;
/** Longest wait for a server to exit after SIGTERM before SIGKILL. */
const STOP_TIMEOUT_MS = 5_000;
/** Extra seconds dnsperf may take beyond its limit (start-up plus its query timeout). */
const DNSPERF_GRACE_S = 10;

const root = new URL("../../", import.meta.url).pathname;

interface Result {
  server: string;
  /** Which round (1..rounds) it was measured in. */
  round: number;
  qps: number;
  sent: number;
  completed: number;
  lost: number;
  rcodes: string;
  latencyMs: number;
  /** Busy share of the server CPUs and of the client CPUs during the load, in percent. */
  serverCpu: number;
  clientCpu: number;
  /** CPU used by the server processes themselves, in percent of one core. */
  serverProcessCpu: number;
  /** irq + softirq time on the server CPUs (loopback delivery of the answers), percent of one core. */
  serverIrqCpu: number;
  serverStats?: string;
}

function fail(msg: string): never {
  console.error(`bench:dns: ${msg}`);
  Deno.exit(2);
}

function cpuList(s: string): number[] {
  const out: number[] = [];
  for (const part of s.split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) fail(`bad CPU list "${s}" (e.g. 0 or 0,1 or 0-1)`);
    for (let c = Number(m[1]); c <= Number(m[2] ?? m[1]); c++) out.push(c);
  }
  return out;
}

interface CpuTimes {
  busy: number;
  irq: number;
  total: number;
}

/** Busy, interrupt and total jiffies per CPU from /proc/stat. */
async function cpuTimes(): Promise<Map<number, CpuTimes>> {
  const out = new Map<number, CpuTimes>();
  for (const line of (await Deno.readTextFile("/proc/stat")).split("\n")) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (!m) continue;
    const f = m[2].trim().split(/\s+/).map(Number);
    const idle = f[3] + (f[4] ?? 0);
    const total = f.reduce((a, b) => a + b, 0);
    // irq and softirq: the loopback network stack runs there and is charged to no process.
    out.set(Number(m[1]), { busy: total - idle, irq: f[5] + f[6], total });
  }
  return out;
}

/** Share of the time the CPUs `cpus` spent on `what` (busy, or irq+softirq), in percent of one CPU. */
function cpuPercent(
  a: Map<number, CpuTimes>,
  b: Map<number, CpuTimes>,
  cpus: number[],
  what: "busy" | "irq",
): number {
  let part = 0, total = 0;
  for (const c of cpus) {
    const x = a.get(c), y = b.get(c);
    if (!x || !y) continue;
    part += y[what] - x[what];
    total += y.total - x.total;
  }
  return total > 0 ? (100 * part * cpus.length) / total : NaN;
}

/** `pid` and all its descendants (NSD forks its server and xfrd processes). */
async function processTree(pid: number): Promise<number[]> {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    try {
      for await (const t of Deno.readDir(`/proc/${out[i]}/task`)) {
        const kids = await Deno.readTextFile(`/proc/${out[i]}/task/${t.name}/children`);
        for (const k of kids.trim().split(/\s+/)) if (k) out.push(Number(k));
      }
    } catch { /* exited */ }
  }
  return out;
}

/** Clock ticks per second of /proc/PID/stat times (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/** CPU seconds (user + system, all threads) used so far by the processes `pids`. */
async function processCpu(pids: number[]): Promise<number> {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
      // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(f[11]) + Number(f[12]);
    } catch { /* exited */ }
  }
  return ticks / USER_HZ;
}

/** A UDP and TCP port free right now on 127.0.0.1. */
function freePort(): number {
  for (let i = 0; i < 50; i++) {
    const u = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const port = (u.addr as Deno.NetAddr).port;
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch {
      /* taken for TCP: try another */
    } finally {
      u.close();
    }
  }
  fail("no free port found");
}

/** Waits until `port` answers a DNS query (SOA at the zone apex). */
async function waitReady(port: number, zone: string, child: Deno.ChildProcess) {
  const sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  let exited = false, answered = false;
  child.status.then(() => exited = true);
  // One pending receive for the whole wait; closing the socket ends it.
  const reader = sock.receive().then(() => answered = true).catch(() => {});
  const deadline = Date.now() + READY_TIMEOUT_MS;
  try {
    while (!answered) {
      if (exited) throw new Error("the server exited before answering");
      if (Date.now() > deadline) {
        throw new Error(`no answer on port ${port} within ${READY_TIMEOUT_MS} ms`);
      }
      await sock.send(query(zone, 6, false), { transport: "udp", hostname: "127.0.0.1", port });
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    sock.close();
    await reader;
  }
}

/** Stops a server: SIGTERM, then SIGKILL after a bound. Returns what it printed. */
async function stop(child: Deno.ChildProcess): Promise<string> {
  try {
    child.kill("SIGTERM");
  } catch { /* already exited */ }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, STOP_TIMEOUT_MS);
  const out = await child.output().catch(() => null);
  clearTimeout(timer);
  return out ? new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr) : "";
}

/** Runs dnsperf against `port` and parses its summary. */
async function dnsperf(
  port: number,
  file: string,
  o: { duration: number; clients: number; outstanding: number; timeout: number; cpu: string },
) {
  const args = [
    "-c",
    o.cpu,
    "dnsperf",
    "-B",
    "-d",
    file,
    "-s",
    "127.0.0.1",
    "-p",
    String(port),
    "-l",
    String(o.duration),
    "-c",
    String(o.clients),
    "-q",
    String(o.outstanding),
    "-t",
    String(o.timeout),
  ];
  const cmd = new Deno.Command("taskset", { args, stdout: "piped", stderr: "piped" }).spawn();
  const timer = setTimeout(() => {
    try {
      cmd.kill("SIGKILL");
    } catch { /* gone */ }
  }, (o.duration + o.timeout + DNSPERF_GRACE_S) * 1000);
  const out = await cmd.output();
  clearTimeout(timer);
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  const num = (re: RegExp) => {
    const m = re.exec(text);
    return m ? Number(m[1]) : NaN;
  };
  const r = {
    sent: num(/Queries sent:\s+(\d+)/),
    completed: num(/Queries completed:\s+(\d+)/),
    lost: num(/Queries lost:\s+(\d+)/),
    qps: num(/Queries per second:\s+([\d.]+)/),
    latencyMs: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
    rcodes: /Response codes:\s+(.*)/.exec(text)?.[1] ?? "",
  };
  if (Number.isNaN(r.qps)) throw new Error(`dnsperf failed (exit ${out.code}):\n${text}`);
  return r;
}

/** Summarises a V8 .cpuprofile: the functions with the most self time. */
export async function topFunctions(path: string, n = 15): Promise<string[]> {
  const prof = JSON.parse(await Deno.readTextFile(path)) as {
    nodes: {
      id: number;
      callFrame: { functionName: string; url: string; lineNumber: number };
      hitCount?: number;
    }[];
    samples?: number[];
    timeDeltas?: number[];
  };
  const byId = new Map(prof.nodes.map((nd) => [nd.id, nd]));
  const self = new Map<string, number>();
  let total = 0;
  const samples = prof.samples ?? [], deltas = prof.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const nd = byId.get(samples[i]);
    if (!nd) continue;
    const f = nd.callFrame;
    const file = f.url.replace(/^file:\/\/.*\/work\/main\//, "").replace(/^.*\//, "");
    const key = `${f.functionName || "(anonymous)"} ${file ? `${file}:${f.lineNumber + 1}` : ""}`
      .trim();
    const dt = deltas[i] ?? 0;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  }
  return [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) =>
    `${(100 * v / total).toFixed(1).padStart(5)}%  ${k}`
  );
}

interface Spawned {
  children: Deno.ChildProcess[];
  port: number;
  profDir?: string;
}

async function startServer(
  kind: string,
  o: {
    dir: string;
    zone: string;
    codec: string;
    cpu: string;
    profile: boolean;
    perf: boolean;
    processes: number;
  },
): Promise<Spawned> {
  const port = freePort();
  const deno = Deno.execPath();
  if (kind === "nsd") {
    const nsdDir = `${o.dir}/nsd`;
    await Deno.mkdir(nsdDir, { recursive: true });
    await Deno.writeTextFile(`${nsdDir}/nsd.conf`, nsdConf(nsdDir, o.zone, port));
    await Deno.writeTextFile(`${nsdDir}/zone.db`, nsdZone(o.zone));
    const child = new Deno.Command("taskset", {
      args: ["-c", o.cpu, "nsd", "-d", "-c", `${nsdDir}/nsd.conf`],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return { children: [child], port };
  }
  const cfg = `${o.dir}/cdn.json`;
  await Deno.writeTextFile(cfg, ourConfig());
  const profDir = o.profile ? `${o.dir}/prof-${kind}` : undefined;
  if (profDir) {
    await Deno.remove(profDir, { recursive: true }).catch(() => {});
    await Deno.mkdir(profDir, { recursive: true });
  }
  const prof = profDir ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : [];
  if (o.perf) prof.push("--v8-flags=--perf-basic-prof");
  const children: Deno.ChildProcess[] = [];
  for (let i = 0; i < o.processes; i++) {
    const [entry, io] = kind.startsWith("udp-")
      ? [`${root}bench/dns_qps/udp_server.ts`, kind.slice(4)]
      : [`${root}main_dns.ts`, kind];
    // No control API: nothing but DNS on the CPU, and no fixed control port to collide on.
    // No response rate limiting: dnsperf is one client flooding (NSD runs with rrl off too).
    const extra = entry.endsWith("main_dns.ts") ? ["--control", "off", "--rrl-rate", "0"] : [];
    children.push(
      new Deno.Command("taskset", {
        args: [
          "-c",
          o.cpu,
          deno,
          "run",
          "-A",
          ...prof,
          entry,
          "-p",
          String(port),
          "-n",
          o.zone,
          "--config",
          cfg,
          "--io",
          io,
          "--codec",
          o.codec,
          ...extra,
        ],
        cwd: root,
        stdout: "piped",
        stderr: "piped",
      }).spawn(),
    );
  }
  return { children, port, profDir };
}

async function measure(
  kind: string,
  label: string,
  o: {
    dir: string;
    zone: string;
    codec: string;
    serverCpu: string;
    clientCpu: string;
    duration: number;
    clients: number;
    outstanding: number;
    timeout: number;
    profile: boolean;
    perf: boolean;
    processes: number;
    file: string;
    /** Share of the query file's names that do not exist (NXDOMAIN expected). */
    nxShare: number;
    fileQueries: number;
    round: number;
  },
): Promise<Result> {
  const s = await startServer(kind, { ...o, cpu: o.serverCpu });
  const perfFile = `${o.dir}/perf-${label.replace(/\W+/g, "_")}.data`;
  let perf;
  let before, after;
  let serverStats = "";
  let pids: number[] = [], cpu0 = 0, cpu1 = 0, t0 = 0, t1 = 1;
  try {
    for (const c of s.children) await waitReady(s.port, o.zone, c);
    const kindOfAnswers = kind === "nsd" ? "nsd" : "ours";
    await verifyServer(s.port, o.zone, kindOfAnswers);
    pids = (await Promise.all(s.children.map((c) => processTree(c.pid)))).flat();
    cpu0 = await processCpu(pids);
    t0 = performance.now();
    before = await cpuTimes();
    // perf samples the server CPUs for the middle of the run (not dnsperf's start and drain).
    const sampler = o.perf
      ? new Deno.Command("perf", {
        args: [
          "record",
          "-e",
          "cpu-clock",
          "-F",
          "999",
          "-C",
          o.serverCpu,
          "-o",
          perfFile,
          "--",
          "sleep",
          String(Math.max(1, o.duration - 2)),
        ],
        stdout: "null",
        stderr: "null",
      }).output()
      : null;
    perf = await dnsperf(s.port, o.file, { ...o, cpu: o.clientCpu });
    after = await cpuTimes();
    cpu1 = await processCpu(pids);
    t1 = performance.now();
    if (sampler) await sampler;
    const wrong = checkRcodes(perf.rcodes, perf.completed, o.nxShare, o.fileQueries);
    if (wrong.length) {
      throw new Error(
        `dnsperf counted wrong answers (${perf.qps.toFixed(0)} qps not counted): ${
          wrong.join("; ")
        } (rcodes ${perf.rcodes})`,
      );
    }
    await verifyServer(s.port, o.zone, kindOfAnswers);
  } finally {
    const outputs = await Promise.all(s.children.map(stop));
    if (!perf) console.error(`${label} server output:\n${outputs.join("\n").trim()}`);
    serverStats = outputs.map((t) => /stopped (\{.*\})/.exec(t)?.[1]).filter(Boolean).join(" ");
  }
  const result: Result = {
    server: label,
    round: o.round,
    ...perf,
    serverCpu: cpuPercent(before!, after!, cpuList(o.serverCpu), "busy"),
    clientCpu: cpuPercent(before!, after!, cpuList(o.clientCpu), "busy"),
    serverIrqCpu: cpuPercent(before!, after!, cpuList(o.serverCpu), "irq"),
    serverProcessCpu: (100 * (cpu1 - cpu0)) / ((t1 - t0) / 1000),
    serverStats: serverStats || undefined,
  };
  if (o.perf) {
    // Two views of the server processes' samples: by binary (kernel, deno, JIT code, libc) and
    // by symbol.
    for (const [sort, n] of [["dso", 8], ["dso,sym", 25]] as const) {
      const rep = await new Deno.Command("perf", {
        args: [
          "report",
          "-i",
          perfFile,
          "--stdio",
          "--no-children",
          "--sort",
          sort,
          "--percentage",
          "relative",
          "--pid",
          pids.join(","),
        ],
        stdout: "piped",
        stderr: "null",
      }).output();
      const lines = new TextDecoder().decode(rep.stdout).split("\n")
        .filter((l) => /^\s+\d/.test(l)).slice(0, n);
      console.log(
        `\n${label}: perf by ${sort} of the server processes (${perfFile}; % of their samples)`,
      );
      for (const l of lines) console.log(`  ${l.trim().replace(/\s+/g, " ")}`);
    }
  }
  if (s.profDir) {
    for await (const e of Deno.readDir(s.profDir)) {
      if (!e.name.endsWith(".cpuprofile")) continue;
      console.log(`\n${label}: top self time (${s.profDir}/${e.name})`);
      for (const line of await topFunctions(`${s.profDir}/${e.name}`)) console.log(`  ${line}`);
    }
  }
  return result;
}

if (import.meta.main) {
  const parse = () =>
    parseArgs({
      args: Deno.args,
      options: {
        duration: { type: "string", short: "l", default: "10" },
        servers: { type: "string", default: "nsd,portable,mmsg" },
        codec: { type: "string", default: "wasm" },
        clients: { type: "string", short: "c", default: "8" },
        outstanding: { type: "string", short: "q", default: "500" },
        timeout: { type: "string", short: "t", default: "2" },
        zone: { type: "string", default: "cdn.test" },
        "server-cpu": { type: "string", default: "0" },
        "client-cpu": { type: "string", default: "1" },
        reuseport: { type: "string", default: "0" },
        profile: { type: "boolean", default: false },
        perf: { type: "boolean", default: false },
        rounds: { type: "string", default: "1" },
        out: { type: "string", default: `${root}bench/.out/dns_qps` },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h" },
      },
    });
  let v: ReturnType<typeof parse>["values"];
  try {
    v = parse().values;
  } catch (e) {
    fail(`${e instanceof Error ? e.message : e} (--help for usage)`);
  }
  if (v.help) {
    console.log(HELP);
    Deno.exit(0);
  }
  const int = (name: string, s: string, min: number, max: number) => {
    const n = Number(s);
    if (!/^\d+$/.test(s) || n < min || n > max) fail(`--${name} must be ${min}..${max}: "${s}"`);
    return n;
  };
  const duration = int("duration", v.duration, 1, 600);
  const clients = int("clients", v.clients, 1, 256);
  const outstanding = int("outstanding", v.outstanding, 1, 65535);
  const timeout = int("timeout", v.timeout, 1, 60);
  const reuseport = int("reuseport", v.reuseport, 0, 64);
  const rounds = int("rounds", v.rounds, 1, 20);
  const known = ["nsd", "portable", "mmsg", "udp-mmsg", "udp-portable"];
  const servers = v.servers.split(",").map((s) => s.trim()).filter(Boolean);
  for (const s of servers) if (!known.includes(s)) fail(`unknown server "${s}" (${known})`);
  if (v.codec !== "wasm" && v.codec !== "ts") fail(`--codec must be wasm or ts: "${v.codec}"`);
  cpuList(v["server-cpu"]);
  cpuList(v["client-cpu"]);
  const packages: Record<string, string> = { taskset: "util-linux", dig: "dnsutils" };
  for (const tool of ["dnsperf", "nsd", "taskset", "dig", ...(v.perf ? ["perf"] : [])]) {
    const ok = await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`], stdout: "null" })
      .output().then((r) => r.success);
    if (!ok && (tool !== "nsd" || servers.includes("nsd"))) {
      fail(
        `${tool} not found (Debian: apt-get install -y ${packages[tool] ?? tool})`,
      );
    }
  }

  await Deno.mkdir(v.out, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: v.out, prefix: "run-" });
  const file = `${dir}/queries.bin`;
  const { bytes, kinds } = buildQueryFile(v.zone);
  await Deno.writeFile(file, bytes);
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  console.log(
    `bench:dns: ${duration} s per server, dnsperf -c ${clients} -q ${outstanding} on CPU ${
      v["client-cpu"]
    }, servers on CPU ${v["server-cpu"]}, codec ${v.codec}, load average ${load}`,
  );
  console.log(
    `query mix (${Object.values(kinds).reduce((a, b) => a + b)} queries): ${
      Object.entries(kinds).map(([k, n]) => `${k} ${n}`).join(", ")
    } (percent: ${JSON.stringify(MIX)})`,
  );

  const common = {
    dir,
    zone: v.zone,
    codec: v.codec,
    serverCpu: v["server-cpu"],
    clientCpu: v["client-cpu"],
    duration,
    clients,
    outstanding,
    timeout,
    profile: v.profile,
    perf: v.perf,
    file,
    nxShare: kinds.nxdomain / Object.values(kinds).reduce((a, b) => a + b),
    fileQueries: Object.values(kinds).reduce((a, b) => a + b),
  };
  const all: Result[] = [];
  const failed = new Set<string>();
  const runs: [string, string, number][] = servers.map((s) => [s, s, 1]);
  if (reuseport > 0) runs.push(["udp-mmsg", `udp-mmsg x${reuseport}`, reuseport]);
  for (let round = 1; round <= rounds; round++) {
    if (rounds > 1) console.log(`round ${round} of ${rounds}`);
    for (const [kind, label, processes] of runs) {
      let r: Result;
      try {
        r = await measure(kind, label, {
          ...common,
          processes,
          round,
          profile: v.profile && kind !== "nsd" && round === 1,
          perf: v.perf && round === 1,
        });
      } catch (e) {
        // One server failing (not built, crashed) must not hide the others' figures.
        console.error(`${label}: FAILED: ${e instanceof Error ? e.message : e}`);
        failed.add(label);
        continue;
      }
      all.push(r);
      console.log(
        `${label.padEnd(14)} ${r.qps.toFixed(0).padStart(8)} qps  lost ${r.lost}/${r.sent}  ` +
          `latency ${r.latencyMs.toFixed(2)} ms  server process ${
            r.serverProcessCpu.toFixed(0)
          }% ` +
          `+ irq ${r.serverIrqCpu.toFixed(0)}% (server CPU busy ${r.serverCpu.toFixed(0)}%, ` +
          `client CPU ${r.clientCpu.toFixed(0)}%)  ` +
          `rcodes ${r.rcodes}`,
      );
      if (r.serverStats) console.log(`${"".padEnd(14)} server stats ${r.serverStats}`);
    }
  }
  // Per server: the median qps over the rounds, the worst loss, and the median of the
  // per-round ratios to NSD (each server is compared with the NSD run of its own round, so
  // slow drift of the machine's load cancels out).
  // Queries per CPU-second of the server processes plus the interrupt time of their CPUs is a
  // second view, less sensitive to other load on the server CPU (a shared machine).
  const perCpu = (r: Result) => r.qps / ((r.serverProcessCpu + r.serverIrqCpu) / 100);
  const median = (xs: number[]) => {
    const ys = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
    return ys.length ? ys[Math.floor(ys.length / 2)] : NaN;
  };
  const summary = runs.filter(([, label]) => all.some((r) => r.server === label)).map(
    ([, label]) => {
      const mine = all.filter((r) => r.server === label);
      const ratios = mine.map((r) => {
        const n = all.find((x) => x.server === "nsd" && x.round === r.round);
        return n ? [r.qps / n.qps, perCpu(r) / perCpu(n)] : [NaN, NaN];
      });
      return {
        server: label,
        qps: median(mine.map((r) => r.qps)),
        lost: Math.max(...mine.map((r) => r.lost)),
        ratio: median(ratios.map((x) => x[0])),
        perCpu: median(mine.map(perCpu)),
        perCpuRatio: median(ratios.map((x) => x[1])),
      };
    },
  );
  console.log(
    `\n${
      rounds > 1
        ? `median of ${rounds} rounds (lost: the worst round; ratios paired by round)\n`
        : ""
    }server           qps        lost   ratio to NSD  goal (>= 0.5, 0 lost)   q/CPU-s  ratio`,
  );
  for (const r of summary) {
    const goal = r.server === "nsd" || Number.isNaN(r.ratio)
      ? ""
      : r.ratio >= 0.5 && r.lost === 0
      ? "met"
      : "NOT met";
    console.log(
      `${r.server.padEnd(14)} ${r.qps.toFixed(0).padStart(8)} ${String(r.lost).padStart(9)}   ${
        r.ratio.toFixed(3).padStart(6)
      }        ${goal.padEnd(18)} ${r.perCpu.toFixed(0).padStart(8)}  ${r.perCpuRatio.toFixed(3)}`,
    );
  }
  if (v.json) {
    console.log(JSON.stringify({ load, duration, clients, outstanding, rounds, summary, all }));
  }
  await Deno.remove(`${dir}/nsd`, { recursive: true }).catch(() => {});
  if (failed.size > 0) {
    console.error(`bench:dns: failed: ${[...failed].join(", ")}`);
    Deno.exit(1);
  }
}
