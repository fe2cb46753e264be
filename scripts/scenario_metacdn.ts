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
 * read by dig from the DNS server (restarted with `--policy latency|price|balanced`, registry
 * kept in `--data`), and `/explain` says why. Every step waits for its expected answer within
 * a generous bound and fails with the processes' output otherwise. Needs root, iproute2, dig,
 * curl and the TUN device; namespaces are named `dp-*` and removed even on failure.
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

  startReplica(r: (typeof REPLICAS)[number]): void {
    const dns = this.addr("dns");
    this.start(r.name, r.name, [
      ...denoRun("main_http.ts"),
      ...["-p", String(HTTP_PORT), "--host", this.addr(r.name)],
      ...["-o", `http://${dns}:${ORIGIN_PORT}`, "--id", r.name],
      ...["--announce", `${dns}:${CONTROL_PORT}`, "--admin-token", TOKEN],
      ...["--provider", r.provider],
    ]);
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

  /** Waits until dig answers `want`; records and prints the decision with /explain's reason. */
  async expectDns(step: string, want: ReplicaName): Promise<void> {
    const t0 = performance.now();
    let got = "";
    try {
      await waitFor(
        `${step}: dig to answer ${want}`,
        async () => (got = this.name(await this.dig())) === want ? true : undefined,
        DECISION_BOUND_MS,
        200,
        () => `last answer ${got}\n${this.logs()}`,
      );
    } finally {
      const ex = await this.control(`/explain?client=${this.addr("client")}`).catch(() => null);
      const reason = String(ex?.reason ?? "(no explanation)");
      const ms = performance.now() - t0;
      this.decisions.push({ step, via: "dig", expected: want, got, reason, ms });
      this.log(`  dig @dns ${ZONE} -> ${got} (expected ${want}, ${ms.toFixed(0)} ms): ${reason}`);
    }
  }
}

/** Runs the whole scenario; throws at the first decision that does not come. */
export async function runMetacdnScenario(o: ScenarioOptions): Promise<Decision[]> {
  await checkEnvironment();
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
      ...["-p", String(PRICE_PORT), "--config", `${dir}/prices.json`, "--admin-token", TOKEN],
    ]);
    s.start("origin", "dns", [
      ...denoRun("scripts/demo_origin.ts"),
      ...["-p", String(ORIGIN_PORT), "--host", "0.0.0.0"],
    ]);
    await s.startDns(["latency"], false);
    REPLICAS.forEach((r) => s!.startReplica(r));
    await s.aliveReplicas(REPLICAS.length);

    log("1. DNS --policy latency: the nearest");
    await s.expectDns("latency", "r1");
    log("2. DNS --policy price: the cheapest");
    await s.startDns(["price"]);
    await s.expectDns("price", "r3");
    log(`3. DNS --policy balanced --max-extra-ms ${MAX_EXTRA_MS}: the cheapest within the bound`);
    await s.startDns(["balanced", "--max-extra-ms", String(MAX_EXTRA_MS)]);
    await s.expectDns("balanced", "r2");
    log("4. alpha's price falls below beta's (pricing API): balanced flips to r1, then back");
    await s.setPrice("alpha", 0.001);
    await s.expectDns("balanced, alpha cheaper", "r1");
    await s.setPrice("alpha", 0.09);
    await s.expectDns("balanced, alpha's price restored", "r2");
    log("5. r2's delay grows to 120 ms, past the bound: balanced flips to r1, then back");
    await t.setDelay("client", "r2", 120);
    await s.expectDns("balanced, r2 slow", "r1");
    await t.setDelay("client", "r2", 40);
    await s.expectDns("balanced, r2's delay restored", "r2");
    log("6. r2 is killed (kill -9): balanced flips to r1; restarted: back to r2");
    await s.stop("r2");
    await s.expectDns("balanced, r2 killed", "r1");
    s.startReplica(REPLICAS[1]);
    await s.expectDns("balanced, r2 back", "r2");
    return s.decisions;
  } finally {
    if (s) await Promise.all([...s.procs.values()].map((p) => p.stop()));
    await s?.t.destroy();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function main(): Promise<void> {
  if (Deno.args.includes("-h") || Deno.args.includes("--help")) {
    console.log(
      "Usage: deno task scenario:metacdn\n\nRuns the meta-CDN scenario (module doc of " +
        "scripts/scenario_metacdn.ts) in network namespaces dp-*: needs root, iproute2, dig, " +
        "curl and /dev/net/tun. Prints each step and decision; exit 0 when every decision " +
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
