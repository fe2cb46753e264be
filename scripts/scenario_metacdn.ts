/**
 * `deno task scenario:metacdn`: three replicas on three cloud providers, at different round
 * trips from one client, in network namespaces with the link emulator (tests/tools/), and the
 * same request decided by latency, by price, and by both; each step and its decision printed.
 *
 * | replica | provider | price (USD/GiB) | RTT to the client |
 * | --- | --- | --- | --- |
 * | r1 | alpha | 0.09 | 10 ms |
 * | r2 | beta | 0.05 | 40 ms |
 * | r3 | gamma | 0.01 | 150 ms |
 *
 * Latency picks r1, price r3, balanced (the cheapest within {@link MAX_EXTRA_MS} ms of the
 * fastest) r2; balanced flips to r1 when alpha's price falls (through the pricing API), when
 * r2's delay grows past the bound, and when r2 is killed, and back each time. Decisions are
 * read two ways from the client: by dig from the DNS server (restarted with
 * `--policy latency|price|balanced`, registry kept in `--data`; `/explain` says why), and through
 * three routing proxies on the client (`main_proxy.ts --mode latency|price|balanced`) with curl,
 * wget and headless Chromium (`X-Nearcast-Server`/`X-Nearcast-Reason`; Chromium loads a page
 * whose script asks `/_cdn/health` through the same proxy which server it reached). Every step
 * waits for its expected answer within a generous bound and fails with the processes' output
 * otherwise. Needs root, iproute2, dig, curl, wget, Chromium and the TUN device (a missing
 * tool is named); namespaces are named `dp-*` and removed even on failure.
 * `tests/metacdn_scenario_test.ts` runs it.
 *
 * @module
 */
import { type Proc, track, waitFor } from "../lib/fleet/_testing.ts";
import { runMain } from "../lib/common/cli.ts";
import { checkEnvironment } from "../tests/tools/netns.ts";
import { createTopology, denoRun, type Topology } from "../tests/tools/topology.ts";

/** Namespace prefix (every namespace and veth of the scenario lives under it). */
export const PREFIX = "dp-";
/** Balanced's latency bound: r1 (10 ms) + 60 takes in r2 (40 ms), never r3 (150 ms). */
export const MAX_EXTRA_MS = 60;
const ZONE = "cdn.test";
const TOKEN = "metacdn-token";
const DNS_PORT = 53, CONTROL_PORT = 5380, PRICE_PORT = 7000, ORIGIN_PORT = 8000, HTTP_PORT = 8080;
/** The client's three proxies, one per mode. */
export const PROXIES = { latency: 3128, price: 3129, balanced: 3130 } as const;
type Mode = keyof typeof PROXIES;
/** The page Chromium loads: its script asks, through the same proxy, which server answered. */
const PAGE = `<!doctype html><title>metacdn scenario</title><p id="server">loading</p>
<script>
fetch("/_cdn/health", { cache: "no-store" }).then((r) => r.json())
  .then((h) => document.getElementById("server").textContent = "served by " + h.id);
</script>
`;
/** The tools the scenario drives, and the Debian package of each. */
const TOOLS = { dig: "dnsutils", curl: "curl", wget: "wget", chromium: "chromium" } as const;
/** Longest wait for one decision: re-measurement (1 s refresh), heartbeats, price long poll. */
const DECISION_BOUND_MS = 30_000;

/** The replicas: provider, its price, and the RTT to the client. */
export const REPLICAS = [
  { name: "r1", provider: "alpha", egressPerGiB: 0.09, rttMs: 10 },
  { name: "r2", provider: "beta", egressPerGiB: 0.05, rttMs: 40 },
  { name: "r3", provider: "gamma", egressPerGiB: 0.01, rttMs: 150 },
] as const;
type ReplicaName = (typeof REPLICAS)[number]["name"];

/** One decision of the scenario. */
export interface Decision {
  step: string;
  via: string;
  expected: ReplicaName;
  got: string;
  reason: string;
  ms: number;
}

/** Options of {@link runMetacdnScenario}. */
export interface ScenarioOptions {
  /** Where each step and decision is printed. */
  log: (line: string) => void;
}

/** A running scenario: the topology, its processes, and how to ask for a decision. */
class Scenario {
  readonly t: Topology;
  readonly dir: string;
  readonly log: (line: string) => void;
  readonly procs = new Map<string, Proc>();
  readonly decisions: Decision[] = [];

  constructor(t: Topology, dir: string, log: (line: string) => void) {
    this.t = t;
    this.dir = dir;
    this.log = log;
  }

  addr(name: string): string {
    return this.t.address(name);
  }

  name(address: string): string {
    return REPLICAS.find((r) => this.addr(r.name) === address)?.name ?? (address || "(none)");
  }

  logs = (): string =>
    [...this.procs].map(([n, p]) => `--- ${n}:\n${p.output().slice(-1500)}`).join("\n");

  start(name: string, host: string, args: string[]): void {
    this.procs.get(name)?.stop();
    this.procs.set(name, track(this.t.exec(host, args, { stdout: "piped", stderr: "piped" })));
  }

  async stop(name: string): Promise<void> {
    await this.procs.get(name)?.stop("SIGKILL");
    this.procs.delete(name);
  }

  /** A replica; r2 and r3 join r1's server list (what the proxies read). */
  startReplica(r: (typeof REPLICAS)[number]): void {
    const dns = this.addr("dns");
    const join = r.name === "r1" ? [] : ["--join", `http://${this.addr("r1")}:${HTTP_PORT}`];
    this.start(r.name, r.name, [
      ...denoRun("main_http.ts"),
      ...["-p", String(HTTP_PORT), "--host", this.addr(r.name)],
      ...["-o", `http://${dns}:${ORIGIN_PORT}`, "--id", r.name, "--data", `${this.dir}/${r.name}`],
      ...["--announce", `${dns}:${CONTROL_PORT}`, "--admin-token", TOKEN],
      ...["--provider", r.provider, ...join],
    ]);
  }

  /** The client's proxy for `mode`, from r1's server list and the pricing service. */
  startProxy(mode: Mode): void {
    this.start(`proxy-${mode}`, "client", [
      ...denoRun("main_proxy.ts"),
      ...["-p", String(PROXIES[mode]), "--mode", mode, "--name", ZONE],
      ...["--node", `http://${this.addr("r1")}:${HTTP_PORT}`],
      ...["--price", `http://${this.addr("dns")}:${PRICE_PORT}`, "--decay", "3s"],
      ...(mode === "balanced" ? ["--max-extra-ms", String(MAX_EXTRA_MS)] : []),
    ]);
  }

  /** Waits until every proxy lists the three servers. */
  proxiesReady(): Promise<unknown> {
    return waitFor(
      "the proxies to know the three servers",
      async () => {
        for (const port of Object.values(PROXIES)) {
          const r = await this.t.run("client", [
            ...["curl", "-sS", "-m", "5", `http://127.0.0.1:${port}/_proxy/explain`],
          ]);
          if (r.code !== 0) return undefined;
          const servers = JSON.parse(r.stdout).servers as { alive: boolean }[];
          if (servers.filter((x) => x.alive).length < REPLICAS.length) return undefined;
        }
        return true;
      },
      40_000,
      200,
      this.logs,
    );
  }

  /**
   * One request for the page through the proxy for `mode` with `tool`: the server that
   * answered and why ("" when none did).
   */
  async viaProxy(tool: "curl" | "wget" | "chromium", mode: Mode) {
    const proxy = `http://127.0.0.1:${PROXIES[mode]}`;
    const page = `http://${ZONE}/index.html`;
    if (tool === "chromium") {
      const r = await this.t.run("client", [
        ...["chromium", "--headless", "--no-sandbox", "--disable-gpu"],
        ...[`--user-data-dir=${this.dir}/chromium`, `--proxy-server=${proxy}`],
        ...["--virtual-time-budget=10000", "--dump-dom", page],
      ]);
      const loaded = r.stdout.includes("<title>metacdn scenario</title>");
      const id = /served by (\w+)/.exec(r.stdout)?.[1] ?? "";
      return { server: loaded ? id : "", reason: loaded ? "page loaded" : r.stderr.slice(-300) };
    }
    const r = tool === "curl"
      ? await this.t.run("client", [
        ...["curl", "-sS", "-m", "10", "-o", "/dev/null", "-D", "-", "-x", proxy, page],
      ])
      : await this.t.run("client", [
        ...["wget", "-q", "-S", "-O", "/dev/null", "-T", "10", "-t", "1"],
        ...["-e", "use_proxy=yes", "-e", `http_proxy=${proxy}`, page],
      ]);
    const head = tool === "curl" ? r.stdout : r.stderr; // wget -S prints the head on stderr
    return {
      server: /x-nearcast-server: *(\S+)/i.exec(head)?.[1] ?? "",
      reason: /x-nearcast-reason: *(.*)/i.exec(head)?.[1]?.trim() ?? head.slice(-300),
    };
  }

  /** Waits until a request through the `mode` proxy with `tool` is served by `want`. */
  async expectProxy(
    step: string,
    tool: "curl" | "wget" | "chromium",
    mode: Mode,
    want: ReplicaName,
  ) {
    const t0 = performance.now();
    let got = { server: "", reason: "" };
    try {
      await waitFor(
        `${step}: ${tool} through the ${mode} proxy to reach ${want}`,
        async () => (got = await this.viaProxy(tool, mode)).server === want ? true : undefined,
        DECISION_BOUND_MS,
        200,
        () => `last: ${JSON.stringify(got)}\n${this.logs()}`,
      );
    } finally {
      const ms = performance.now() - t0;
      const via = `${tool} -x ${mode} proxy`;
      this.decisions.push({ step, via, expected: want, got: got.server, reason: got.reason, ms });
      this.log(
        `  ${via} -> ${got.server || "(none)"} (expected ${want}, ${
          ms.toFixed(0)
        } ms): ${got.reason}`,
      );
    }
  }

  /** The same decision by dig and through the `mode` proxy (curl, and wget/Chromium if `all`). */
  async expect(
    step: string,
    mode: Mode,
    want: ReplicaName,
    all = false,
    because?: RegExp,
  ): Promise<void> {
    await this.expectDns(step, want, because);
    await this.expectProxy(step, "curl", mode, want);
    if (!all) return;
    await this.expectProxy(step, "wget", mode, want);
    await this.expectProxy(step, "chromium", mode, want);
  }

  /**
   * (Re)starts the DNS server with `policy` (the registry survives in `--data`) and, with
   * `wait`, waits for every replica to be alive again.
   */
  async startDns(policy: string[], wait = true): Promise<void> {
    await this.stop("dns");
    this.start("dns", "dns", [
      ...denoRun("main_dns.ts"),
      ...["-p", String(DNS_PORT), "-n", ZONE, "--host", "0.0.0.0"],
      ...["--control", String(CONTROL_PORT), "--admin-token", TOKEN, "--data", this.dir],
      ...["--price", `http://127.0.0.1:${PRICE_PORT}`, "--rtt-refresh", "1s", "--short-ttl", "1"],
      ...["--probe-port", "9", "--policy", ...policy],
    ]);
    if (wait) await this.aliveReplicas(REPLICAS.length);
  }

  /** Waits until the DNS server lists `n` replicas alive. */
  aliveReplicas(n: number): Promise<unknown> {
    return waitFor(
      `${n} replicas alive`,
      async () => {
        const rows = (await this.control("/replicas")).replicas as { state: string }[];
        return rows.filter((r) => r.state === "alive").length === n ? rows : undefined;
      },
      40_000,
      200,
      this.logs,
    );
  }

  /** GET from the DNS server's control API, from the client's namespace. */
  async control(path: string): Promise<Record<string, unknown>> {
    const url = `http://${this.addr("dns")}:${CONTROL_PORT}${path}`;
    const r = await this.t.run("client", ["curl", "-sS", "-m", "5", url]);
    if (r.code !== 0) throw new Error(`curl ${url}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  }

  /** The A answer the client gets from dig. */
  async dig(): Promise<string> {
    const r = await this.t.run("client", [
      ...["dig", "+noall", "+answer", "+time=1", "+tries=1"],
      `@${this.addr("dns")}`,
      ZONE,
      "A",
    ]);
    return r.stdout.trim().split(/\s+/)[4] ?? "";
  }

  /** Changes a provider's price through the pricing API (from the DNS host, where it runs). */
  async setPrice(provider: string, egressPerGiB: number): Promise<void> {
    const r = await this.t.run("dns", [
      ...["curl", "-sS", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PATCH"],
      ...["-H", `Authorization: Bearer ${TOKEN}`, "-H", "Content-Type: application/json"],
      ...["-d", JSON.stringify({ egressPerGiB })],
      `http://127.0.0.1:${PRICE_PORT}/providers/${provider}`,
    ]);
    if (r.stdout !== "200") throw new Error(`PATCH ${provider}: ${r.stdout} ${r.stderr}`);
    this.log(`  PATCH /providers/${provider} {"egressPerGiB":${egressPerGiB}}: 200`);
  }

  /**
   * Waits until dig answers `want` and /explain gives `want` as the policy's choice (not a
   * rotation before anything is measured, which can land on `want` by chance), and its reason
   * matches `because` when given; records and prints the decision with /explain's reason.
   */
  async expectDns(step: string, want: ReplicaName, because?: RegExp): Promise<void> {
    const t0 = performance.now();
    let got = "";
    let reason = "(no explanation)";
    const explain = async () => {
      const ex = await this.control(`/explain?client=${this.addr("client")}`).catch(() => null);
      return String(ex?.reason ?? "(no explanation)");
    };
    try {
      await waitFor(
        `${step}: dig to answer ${want}, chosen by the policy`,
        async () => {
          if ((got = this.name(await this.dig())) !== want) return undefined;
          reason = await explain();
          const chosen = reason.startsWith(`${want}:`) && !reason.includes("rotation");
          return chosen && (because === undefined || because.test(reason)) ? true : undefined;
        },
        DECISION_BOUND_MS,
        200,
        () => `last answer ${got} (${reason})\n${this.logs()}`,
      );
    } finally {
      const ms = performance.now() - t0;
      this.decisions.push({ step, via: "dig", expected: want, got, reason, ms });
      this.log(`  dig @dns ${ZONE} -> ${got} (expected ${want}, ${ms.toFixed(0)} ms): ${reason}`);
    }
  }
}

/** Runs the whole scenario; throws at the first decision that does not come. */
export async function runMetacdnScenario(o: ScenarioOptions): Promise<Decision[]> {
  await checkEnvironment();
  const missing = await missingTools();
  if (missing.length > 0) {
    throw new Error(
      `metacdn scenario needs ${missing.join(", ")}: apt-get install ${
        missing.map((m) => TOOLS[m]).join(" ")
      }`,
    );
  }
  const log = o.log;
  const dir = await Deno.makeTempDir({ prefix: "nearcast_metacdn_" });
  let s: Scenario | undefined;
  try {
    const delays: Record<string, number> = {};
    for (const r of REPLICAS) delays[r.name] = r.rttMs;
    const t = await createTopology({
      prefix: PREFIX,
      cleanupPrefix: true,
      hosts: [{ name: "dns" }, { name: "client" }, ...REPLICAS.map((r) => ({ name: r.name }))],
      delays: { client: delays },
    });
    s = new Scenario(t, dir, log);
    log(
      `topology (namespaces ${PREFIX}*): client ${s.addr("client")}; DNS, pricing and origin ` +
        `on ${s.addr("dns")}; ` +
        REPLICAS.map((r) =>
          `${r.name} ${
            s!.addr(r.name)
          } on ${r.provider} (${r.egressPerGiB} USD/GiB, RTT ${r.rttMs} ms)`
        ).join("; "),
    );
    const prices: Record<string, unknown> = {};
    for (const r of REPLICAS) {
      prices[r.provider] = { serverPerHour: 0, egressPerGiB: r.egressPerGiB, currency: "USD" };
    }
    await Deno.writeTextFile(`${dir}/prices.json`, JSON.stringify({ providers: prices }));
    s.start("price", "dns", [
      ...denoRun("main_price.ts"),
      ...["-p", String(PRICE_PORT), "--host", "0.0.0.0", "--config", `${dir}/prices.json`],
      ...["--admin-token", TOKEN],
    ]);
    await Deno.mkdir(`${dir}/site`);
    await Deno.writeTextFile(`${dir}/site/index.html`, PAGE);
    s.start("origin", "dns", [
      ...denoRun("scripts/demo_origin.ts"),
      ...["-p", String(ORIGIN_PORT), "--host", "0.0.0.0", "--dir", `${dir}/site`],
    ]);
    await s.startDns(["latency"], false);
    s.startReplica(REPLICAS[0]);
    await waitFor(
      "r1's server list",
      () =>
        t.run("r1", [
          ...["curl", "-sf", "-m", "2", `http://${s!.addr("r1")}:${HTTP_PORT}/_cdn/health`],
        ]).then((r) => r.code === 0 ? true : undefined),
      40_000,
      200,
      s.logs,
    );
    REPLICAS.slice(1).forEach((r) => s!.startReplica(r));
    await s.aliveReplicas(REPLICAS.length);
    for (const mode of Object.keys(PROXIES) as Mode[]) s.startProxy(mode);
    await s.proxiesReady();

    const proxy = (mode: Mode) => `proxy --mode ${mode} on 127.0.0.1:${PROXIES[mode]}`;
    log(`1. latency: the nearest (DNS --policy latency; ${proxy("latency")})`);
    await s.expect("latency", "latency", "r1", true);
    log(`2. price: the cheapest (DNS --policy price; ${proxy("price")})`);
    await s.startDns(["price"]);
    await s.expect("price", "price", "r3", true);
    log(
      `3. balanced: the cheapest within ${MAX_EXTRA_MS} ms of the fastest (DNS --policy ` +
        `balanced --max-extra-ms ${MAX_EXTRA_MS}; ${
          proxy("balanced")
        } --max-extra-ms ${MAX_EXTRA_MS})`,
    );
    await s.startDns(["balanced", "--max-extra-ms", String(MAX_EXTRA_MS)]);
    await s.expect("balanced", "balanced", "r2", true);
    log("4. alpha's price falls below beta's (pricing API): balanced flips to r1, then back");
    await s.setPrice("alpha", 0.001);
    await s.expect("balanced, alpha cheaper", "balanced", "r1");
    await s.setPrice("alpha", 0.09);
    await s.expect("balanced, alpha's price restored", "balanced", "r2");
    log("5. r2's delay grows to 120 ms, past the bound: balanced flips to r1, then back");
    await t.setDelay("client", "r2", 120);
    await s.expect("balanced, r2 slow", "balanced", "r1");
    await t.setDelay("client", "r2", 40);
    await s.expect("balanced, r2's delay restored", "balanced", "r2");
    log("6. r2 is killed (kill -9): balanced flips to r1; restarted: back to r2");
    await s.stop("r2");
    // r1 can win before r2 is found dead (r2's RTT, no longer re-measured, ages out first):
    // the step waits for the reason that names r2 not live, which the health monitor gives.
    await s.expect("balanced, r2 killed", "balanced", "r1", false, /not live .*\br2\b/);
    s.startReplica(REPLICAS[1]);
    await s.expect("balanced, r2 back", "balanced", "r2");
    return s.decisions;
  } finally {
    if (s) await Promise.all([...s.procs.values()].map((p) => p.stop()));
    await s?.t.destroy();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The tools of {@link TOOLS} not on PATH. */
async function missingTools(): Promise<(keyof typeof TOOLS)[]> {
  const out: (keyof typeof TOOLS)[] = [];
  for (const tool of Object.keys(TOOLS) as (keyof typeof TOOLS)[]) {
    const r = await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`] }).output();
    if (r.code !== 0) out.push(tool);
  }
  return out;
}

async function main(): Promise<void> {
  if (Deno.args.includes("-h") || Deno.args.includes("--help")) {
    console.log(
      "Usage: deno task scenario:metacdn\n\nRuns the meta-CDN scenario (module doc of " +
        "scripts/scenario_metacdn.ts) in network namespaces dp-*: needs root, iproute2, dig, " +
        "curl, wget, chromium and /dev/net/tun. Prints each step and decision; exit 0 when every decision " +
        "came as expected, 1 otherwise.",
    );
    return;
  }
  const t0 = performance.now();
  const decisions = await runMetacdnScenario({ log: (line) => console.log(line) });
  console.log(
    `scenario: ${decisions.length} decisions as expected in ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s`,
  );
}

if (import.meta.main) await runMain("scenario", main);
