/**
 * `deno task scenario:fleet [--dns 3] [--replicas 30] [--kill 3] [--json FILE]`: a fleet of DNS
 * servers and replicas, each host in its own network namespace with its own sshd
 * (tests/tools/ssh_hosts.ts), deployed, started and stopped by `scripts/deployCDN.sh`, `runCDN.sh`
 * and `stopCDN.sh` from an operator namespace, as an operator would. It reports:
 *
 * - the time to deploy (the release to every host) and to start (every process healthy), and
 *   until every DNS server lists every replica alive;
 * - whether the DNS servers agree: the same replicas alive in each one's registry, and `dig`
 *   against each answering replicas of that set (and how often the same one);
 * - the idle fleet's own traffic (heartbeats, health checks, membership), per host, from the
 *   byte counters of the bridge ports over 10 s;
 * - an upload (1 MiB, `bin/upload` to one replica) until every replica serves it;
 * - the memory of each process (RSS and PSS from /proc, sshd apart);
 * - failover: replicas killed (SIGKILL) until every DNS server has dropped them and `dig` answers
 *   only the others;
 * - the time to stop, and that nothing is left running.
 *
 * Not in the test run: the whole fleet takes minutes (the smoke mode `--dns 1 --replicas 3`
 * less). Every wait is bounded; namespaces (`flt-*`, addresses 10.79.0.0/24) are removed even on
 * failure. Needs root, iproute2, sshd, dig and curl (scripts/ensure_tools.sh installs them). It
 * raises the machine's neighbour (ARP) table limit when it is below what the hosts need.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { releaseName } from "./dist.ts";
import {
  createSshLab,
  releaseTarball,
  type ShResult,
  type SshLab,
  waitFor,
} from "../tests/tools/ssh_hosts.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const PORT = 8053;
const CONTROL = 5380;
const ZONE = "cdn.test";
const ORIGIN_PORT = 8000;
const UPLOAD_BYTES = 1024 * 1024;
/** Quiet window over which the idle fleet's own traffic is counted. */
const IDLE_WINDOW_MS = 10_000;
/** Longest wait for any one step (a loaded 2-core machine starts 33 runtimes slowly). */
const STEP_MS = 10 * 60_000;

const HELP = `deno task scenario:fleet [--dns N] [--replicas N] [--kill N] [--json FILE]

  --dns N       DNS servers (default 3)
  --replicas N  replicas (default 30)
  --kill N      replicas killed for the failover step (default 3, at most replicas - 1)
  --json FILE   also write the figures as JSON

Smoke mode for development: --dns 1 --replicas 3 --kill 1. Needs root.
`;

/** The figures a run reports. */
export interface FleetFigures {
  dns: number;
  replicas: number;
  deploySeconds: number;
  deploySummary: string;
  redeploySeconds: number;
  runSeconds: number;
  allAliveSeconds: (number | null)[];
  agreement: { sameAliveSets: boolean; digs: number; inAliveSet: number; sameAnswer: number };
  idleTraffic: { dnsBytesPerSecondEach: number; replicaBytesPerSecondEach: number };
  serverList: { entries: number; bytes: number };
  uploadAckSeconds: number;
  uploadSeconds: number;
  memory: Record<string, { count: number; rssMiB: number[]; pssMiB: number[] }>;
  failover: { killed: number; droppedSeconds: number[]; digCleanSeconds: number };
  stopSeconds: number;
  leftRunning: number;
}

const secs = (t0: number) => Math.round((performance.now() - t0) / 100) / 10;

function must(r: ShResult, what: string): ShResult {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}\n${r.out}\n${r.err}`);
  return r;
}

/** Runs the scenario; `log` gets each step. */
export async function runFleetScenario(
  o: { dns: number; replicas: number; kill: number; log: (s: string) => void },
): Promise<FleetFigures> {
  const { log } = o;
  const t0 = performance.now();
  const step = (s: string) => log(`${secs(t0).toFixed(1).padStart(6)} s  ${s}`);
  const work = await Deno.makeTempDir({ prefix: "nearcast-fleet-" });
  const tarball = await releaseTarball();
  const hosts = o.dns + o.replicas;
  let lab: SshLab | undefined;
  try {
    await raiseNeighbourLimit(hosts, step);
    step(`${hosts} hosts: namespaces flt-h1..flt-h${hosts}, each with sshd`);
    lab = await createSshLab({ prefix: "flt", subnet: "10.79.0", hosts, work });
    const l = lab;
    const dnsIdx = Array.from({ length: o.dns }, (_, k) => k + 1);
    const repIdx = Array.from({ length: o.replicas }, (_, k) => o.dns + k + 1);
    const site = `${work}/site`;
    await Deno.mkdir(site);
    await Deno.writeTextFile(`${site}/hello.txt`, "hello from the origin\n");
    const origin = l.serveDir(site, ORIGIN_PORT).url;
    const fleet = {
      dns: dnsIdx.map((i) => ({ ssh: l.address(i), address: l.address(i), dir: `${work}/h${i}` })),
      replicas: repIdx.map((i, k) => ({
        ssh: l.address(i),
        address: l.address(i),
        dir: `${work}/h${i}`,
        id: `r${k + 1}`,
        lat: -60 + (k * 37) % 120,
        lon: -180 + (k * 71) % 360,
      })),
    };
    await Deno.writeTextFile(`${work}/fleet.json`, JSON.stringify(fleet, null, 1));
    await Deno.writeTextFile(`${work}/websites.txt`, "/hello.txt\n");
    const common = ["-p", String(PORT), "-o", origin, "-n", ZONE, "-u", "root", "-i", l.key];
    common.push("-f", `${work}/fleet.json`, "-r", tarball);
    const script = (name: string, ...args: string[]) =>
      l.op(
        "env",
        `NEARCAST_START_TIMEOUT=${STEP_MS / 1000}`,
        "sh",
        `${ROOT}scripts/${name}`,
        ...args,
      );

    step("deployCDN.sh");
    let t = performance.now();
    let r = must(await script("deployCDN.sh", ...common), "deployCDN.sh");
    const deploySeconds = secs(t);
    const how = /copied with rsync \(\d+ of \d+ files sent, \d+ MiB\)/.exec(r.out)?.[0] ??
      /copied \(\d+ MiB\) and unpacked/.exec(r.out)?.[0] ?? "?";
    const deploySummary = `${how}, on each of ${hosts} hosts`;
    step(`deployed in ${deploySeconds} s (${deploySummary})`);
    t = performance.now();
    r = must(await script("deployCDN.sh", ...common), "deployCDN.sh again");
    const redeploySeconds = secs(t);
    const upToDate = r.out.match(/nothing copied/g)?.length ?? 0;
    step(`deployed again in ${redeploySeconds} s: ${upToDate} of ${hosts} hosts up to date`);
    if (upToDate !== hosts) throw new Error(`the second deploy copied something:\n${r.out}`);

    step("runCDN.sh");
    t = performance.now();
    must(await script("runCDN.sh", ...common), "runCDN.sh");
    const runSeconds = secs(t);
    step(`every process started and healthy in ${runSeconds} s`);
    const registry = async (i: number) => {
      const c = await l.op("curl", "-s", "-m", "3", `http://${l.address(i)}:${CONTROL}/replicas`);
      if (c.code !== 0) return null;
      const body = JSON.parse(c.out) as { replicas: { id: string; state: string }[] };
      return new Set(body.replicas.filter((x) => x.state === "alive").map((x) => x.id));
    };
    // When each DNS server first lists every replica alive (null: not within STEP_MS; on a
    // saturated machine late health checks make replicas flap).
    const allAliveSeconds = await Promise.all(dnsIdx.map(async (i) => {
      const end = performance.now() + STEP_MS;
      let seen = -2;
      while (performance.now() < end) {
        const n = (await registry(i))?.size ?? -1;
        if (n === o.replicas) return secs(t);
        if (n !== seen) step(`DNS server ${i}: ${n} of ${o.replicas} replicas alive`);
        seen = n;
        await new Promise((res) => setTimeout(res, 300));
      }
      return null;
    }));
    step(
      `each DNS server first listed all ${o.replicas} alive: ${
        allAliveSeconds.join(", ")
      } s after run`,
    );

    // Agreement: the same alive sets, and dig answers from each server within it.
    const sets = await Promise.all(dnsIdx.map(registry));
    const key = (s: Set<string> | null) => [...s ?? []].sort().join(",");
    const sameAliveSets = sets.every((s) => key(s) === key(sets[0]));
    const addrOf = new Map(repIdx.map((i) => [l.address(i), i]));
    const dig = async (i: number) =>
      (await l.op(
        "dig",
        "+short",
        "+time=2",
        "+tries=1",
        `@${l.address(i)}`,
        "-p",
        String(PORT),
        ZONE,
        "A",
      )).out
        .trim();
    const rounds = 10;
    let inAliveSet = 0, sameAnswer = 0;
    for (let k = 0; k < rounds; k++) {
      const answers = await Promise.all(dnsIdx.map(dig));
      inAliveSet += answers.filter((a) => addrOf.has(a)).length;
      if (answers.every((a) => a === answers[0])) sameAnswer++;
    }
    const agreement = { sameAliveSets, digs: rounds * o.dns, inAliveSet, sameAnswer };
    step(
      `agreement: alive sets ${sameAliveSets ? "identical" : "DIFFER"}; ${inAliveSet} of ` +
        `${rounds * o.dns} dig answers are alive replicas; ${sameAnswer} of ${rounds} rounds ` +
        `had every server answer the same replica`,
    );

    // Background traffic of the idle fleet (heartbeats, health checks, membership): the bytes
    // each host sent into the bridge over a quiet window.
    const sent = async () => {
      const c = await l.op(
        "sh",
        "-c",
        "cat /sys/class/net/fltp*/statistics/rx_bytes; ls -d /sys/class/net/fltp*",
      );
      const lines = c.out.trim().split("\n");
      const half = lines.length / 2;
      const by = new Map<number, number>();
      for (let k = 0; k < half; k++) {
        by.set(Number(/fltp(\d+)$/.exec(lines[half + k])![1]), Number(lines[k]));
      }
      return by;
    };
    const before = await sent();
    const windowT = performance.now();
    await new Promise((res) => setTimeout(res, IDLE_WINDOW_MS));
    const after = await sent();
    const windowS = (performance.now() - windowT) / 1000;
    const rate = (idx: number[]) =>
      Math.round(
        idx.reduce((a, i) => a + (after.get(i)! - before.get(i)!), 0) / windowS / idx.length,
      );
    const idleTraffic = {
      dnsBytesPerSecondEach: rate(dnsIdx),
      replicaBytesPerSecondEach: rate(repIdx),
    };
    step(
      `idle traffic over ${windowS.toFixed(1)} s: each DNS server sends ` +
        `${idleTraffic.dnsBytesPerSecondEach} B/s, each replica ${idleTraffic.replicaBytesPerSecondEach} B/s`,
    );

    // The replicas' server list, which every replica-to-replica heartbeat carries both ways.
    const list = await l.op(
      "curl",
      "-s",
      "-m",
      "5",
      `http://${l.address(repIdx[0])}:${PORT}/_cdn/servers`,
    );
    const listBody = JSON.parse(list.out) as unknown;
    const entries = Array.isArray(listBody)
      ? listBody
      : Object.values(listBody as Record<string, unknown>).find(Array.isArray) ?? [];
    const serverList = {
      entries: entries.length,
      bytes: new TextEncoder().encode(list.out).length,
    };
    step(
      `a replica's server list (GET /_cdn/servers): ${serverList.entries} entries, ${serverList.bytes} bytes`,
    );

    // An upload to the first replica until every replica serves it.
    const token = (await Deno.readTextFile(`${work}/h${repIdx[0]}/admin_token`)).trim();
    const blob = new Uint8Array(UPLOAD_BYTES);
    crypto.getRandomValues(blob.subarray(0, 65536));
    await Deno.writeFile(`${work}/up.bin`, blob);
    const bin = `${work}/h${repIdx[0]}/${releaseName()}/bin/upload`;
    t = performance.now();
    must(
      await l.op(
        bin,
        `${work}/up.bin`,
        "--to",
        `http://${l.address(repIdx[0])}:${PORT}`,
        "--name",
        "up.bin",
        "--token",
        token,
        "-q",
      ),
      "bin/upload",
    );
    const uploaded = performance.now();
    await waitFor("the upload on every replica", STEP_MS, async () => {
      const urls = repIdx.map((i) => `http://${l.address(i)}:${PORT}/up.bin`);
      const c = await l.op(
        "curl",
        "-s",
        "-m",
        "3",
        "-w",
        "%{http_code} %{size_download}\n",
        ...urls.flatMap((u) => ["-o", "/dev/null", u]),
      );
      const ok = c.out.split("\n").filter((x) => x === `200 ${UPLOAD_BYTES}`).length;
      return ok === o.replicas ? true : null;
    });
    const uploadSeconds = secs(t);
    const uploadAckSeconds = Math.round((uploaded - t) / 100) / 10;
    step(
      `1 MiB upload: acknowledged in ${uploadAckSeconds} s, served by all ${o.replicas} ` +
        `replicas ${uploadSeconds} s after it began`,
    );

    // Memory of each process the scripts started (after the upload: caches warm).
    const memory: FleetFigures["memory"] = {};
    const addMem = async (kind: string, pid: number) => {
      const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
      const roll = await Deno.readTextFile(`/proc/${pid}/smaps_rollup`).catch(() => "");
      const kib = (re: RegExp, s: string) => Number(re.exec(s)?.[1] ?? NaN);
      const m = memory[kind] ??= { count: 0, rssMiB: [], pssMiB: [] };
      m.count++;
      m.rssMiB.push(Math.round(kib(/^VmRSS:\s+(\d+)/m, status) / 102.4) / 10);
      m.pssMiB.push(Math.round(kib(/^Pss:\s+(\d+)/m, roll) / 102.4) / 10);
    };
    for (let i = 1; i <= hosts; i++) {
      const kind = i <= o.dns ? "dnsserver" : "httpserver";
      const pid = Number((await Deno.readTextFile(`${work}/h${i}/run/${kind}.pid`)).trim());
      await addMem(kind, pid);
    }
    const sshd = await l.op("pgrep", "-f", `${work}/sshd_`);
    for (const pid of sshd.out.split("\n").filter((x) => x)) await addMem("sshd", Number(pid));
    for (const [kind, m] of Object.entries(memory)) {
      step(`memory ${kind} x${m.count}: RSS ${stats(m.rssMiB)} MiB; PSS ${stats(m.pssMiB)} MiB`);
    }

    // Failover: kill the last replicas; each DNS server drops them; dig answers only the others.
    const killed = repIdx.slice(-o.kill);
    const killedIds = new Set(killed.map((i) => `r${i - o.dns}`));
    t = performance.now();
    for (const i of killed) {
      Deno.kill(
        Number((await Deno.readTextFile(`${work}/h${i}/run/httpserver.pid`)).trim()),
        "SIGKILL",
      );
    }
    step(`killed ${[...killedIds].join(", ")} (SIGKILL)`);
    const dropped = await Promise.all(dnsIdx.map(async (i) => {
      await waitFor(`DNS server ${i} to drop the killed replicas`, STEP_MS, async () => {
        const s = await registry(i);
        return s !== null && [...killedIds].every((id) => !s.has(id)) ? true : null;
      });
      return secs(t);
    }));
    step(`every DNS server dropped them: ${dropped.join(", ")} s after the kill`);
    const killedAddrs = new Set(killed.map((i) => l.address(i)));
    await waitFor("dig answers without the killed replicas", STEP_MS, async () => {
      for (let k = 0; k < 5; k++) {
        for (const a of await Promise.all(dnsIdx.map(dig))) {
          if (killedAddrs.has(a) || !addrOf.has(a)) return null;
        }
      }
      return true;
    });
    const digCleanSeconds = secs(t);
    step(`dig answers only live replicas ${digCleanSeconds} s after the kill`);

    step("stopCDN.sh");
    t = performance.now();
    r = await script("stopCDN.sh", ...common);
    const stopSeconds = secs(t);
    if (r.code !== 0) throw new Error(`stopCDN.sh: exit ${r.code}\n${r.out}\n${r.err}`);
    let leftRunning = 0;
    for await (const e of Deno.readDir("/proc")) {
      if (!/^\d+$/.test(e.name)) continue;
      const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(() => "");
      if (cmd.includes(`${work}/h`)) leftRunning++;
    }
    step(`stopped in ${stopSeconds} s; ${leftRunning} processes of the fleet left running`);
    return {
      dns: o.dns,
      replicas: o.replicas,
      deploySeconds,
      deploySummary,
      redeploySeconds,
      runSeconds,
      allAliveSeconds,
      agreement,
      idleTraffic,
      serverList,
      uploadAckSeconds,
      uploadSeconds,
      memory,
      failover: { killed: o.kill, droppedSeconds: dropped, digCleanSeconds },
      stopSeconds,
      leftRunning,
    };
  } catch (e) {
    // The end of the logs of the processes that failed, to tell why.
    for (let i = 1; i <= hosts; i++) {
      for (const k of ["dnsserver", "httpserver"]) {
        const text = await Deno.readTextFile(`${work}/h${i}/logs/${k}.log`).catch(() => null);
        if (text !== null && /error|exited|panic/i.test(text)) {
          log(`--- h${i} ${k}.log\n${text.split("\n").slice(-10).join("\n")}`);
        }
      }
    }
    throw e;
  } finally {
    await lab?.close();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

const GC_THRESH = "/proc/sys/net/ipv4/neigh/default/gc_thresh";

/**
 * The kernel's neighbour (ARP) table is shared by every namespace of the machine: 1024 entries
 * by default (gc_thresh3). Each of our hosts learns every other's address, so 33 hosts need about
 * 33 × 34 entries, beyond it ("neighbor table overflow": connections time out). Raised, never
 * lowered; a machine-wide setting.
 */
async function raiseNeighbourLimit(hosts: number, step: (s: string) => void): Promise<void> {
  const need = Math.max(4096, 4 * hosts * (hosts + 1));
  const now = Number((await Deno.readTextFile(`${GC_THRESH}3`)).trim());
  if (now >= need) return;
  await Deno.writeTextFile(`${GC_THRESH}2`, String(need / 2));
  await Deno.writeTextFile(`${GC_THRESH}3`, String(need));
  step(`neighbour table limit (net.ipv4.neigh.default.gc_thresh3) raised from ${now} to ${need}`);
}

/** `min / median / max` of some numbers. */
function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  return `${s[0]} / ${s[Math.floor(s.length / 2)]} / ${s[s.length - 1]} (min / median / max)`;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      dns: { type: "string", default: "3" },
      replicas: { type: "string", default: "30" },
      kill: { type: "string", default: "3" },
      json: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(HELP);
    Deno.exit(0);
  }
  const n = (v: string, what: string, min: number, max: number) => {
    const x = Number(v);
    if (!Number.isInteger(x) || x < min || x > max) {
      console.error(`--${what} ${v}: must be an integer from ${min} to ${max}\n\n${HELP}`);
      Deno.exit(2);
    }
    return x;
  };
  const dns = n(values.dns, "dns", 1, 10);
  const replicas = n(values.replicas, "replicas", 2, 200 - dns);
  const kill = n(values.kill, "kill", 1, replicas - 1);
  if (Deno.uid() !== 0) {
    console.error("scenario:fleet needs root (network namespaces, sshd)");
    Deno.exit(2);
  }
  const figures = await runFleetScenario({ dns, replicas, kill, log: console.log });
  console.log(JSON.stringify(figures, null, 2));
  if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(figures, null, 2) + "\n");
}
