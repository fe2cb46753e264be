/**
 * Latency-measured steering over real emulated paths: the DNS server, a client and three
 * replicas in network namespaces (tests/tools/topology.ts), client↔r1/r2/r3 round trips of
 * 10, 40 and 80 ms. The geo table puts the client next to r3, so the first answer is
 * geographic (r3, short TTL); once the replicas have measured the client, answers name r1;
 * changing the delays flips the choice; killing r1 moves the client to r2; restarting r1 brings
 * it back; so does a partition and its healing. Failover times are printed with generous bounds
 * only: the 3 s goal is checked by `deno task bench:failover`. Namespaces use the prefix
 * `nc-fleet-` and are removed even on failure.
 */
import assert from "node:assert/strict";
import { type Proc, track, waitFor } from "../lib/fleet/_testing.ts";
import { createTopology, denoRun, type Topology } from "./tools/topology.ts";
import { checkEnvironment } from "./tools/netns.ts";

const PREFIX = "nc-fleet-";
const ZONE = "cdn.test";
const TOKEN = "scenario-token";
/**
 * Functional bound on failover after a kill or a partition: by design at most ~3 s (three
 * missed heartbeats); five times that only catches a failover that does not happen.
 */
const FAILOVER_BOUND_MS = 15_000;
/**
 * Measured RTT may exceed the configured one by this much on a busy machine (see netemu.md):
 * the user-space emulator and the probes share the CPU with everything else. At load average
 * 4 to 8 the extra stayed under 30 ms; at load average 40 on 2 cores it was 36 to 97 ms on each
 * path (2026-12-03). The bound only catches a measurement that is not the path's (a timeout, a
 * wrong replica); the order of the three is asserted too.
 */
const SLACK_MS = 150;

const REPLICAS = [
  { name: "r1", lat: 40.71, lon: -74.01 }, // New York
  { name: "r2", lat: 51.51, lon: -0.13 }, // London
  { name: "r3", lat: 35.68, lon: 139.69 }, // Tokyo
];

Deno.test({
  name: "fleet scenario: geography first, then measured RTT; delays flip it; failover and return",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await checkEnvironment();
    let topo: Topology | undefined;
    const procs = new Map<string, Proc>();
    const dir = await Deno.makeTempDir({ prefix: "nearcast_fleet_scenario_" });
    try {
      topo = await createTopology({
        prefix: PREFIX,
        cleanupPrefix: true,
        hosts: [{ name: "dns" }, { name: "client" }, ...REPLICAS.map((r) => ({ name: r.name }))],
        delays: { client: { r1: 10, r2: 40, r3: 80 } },
      });
      const t = topo;
      const addr = (name: string) => t.address(name);
      const dnsAddr = addr("dns");
      // The client's /24 is in Tokyo: geography alone would send it to r3.
      const config = { ttl: 30, geo: [{ cidr: "10.77.2.0/24", lat: 35.68, lon: 139.69 }] };
      await Deno.writeTextFile(`${dir}/cdn.json`, JSON.stringify(config));
      const dns = track(t.exec("dns", [
        ...denoRun("main_dns.ts"),
        ...["-p", "53", "-n", ZONE, "--host", "0.0.0.0", "--control", "5380"],
        ...["--config", `${dir}/cdn.json`, "--policy", "latency", "--admin-token", TOKEN],
        ...["--rtt-refresh", "1s", "--short-ttl", "3", "--probe-port", "9", "--data", dir],
      ], { stdout: "piped", stderr: "piped" }));
      procs.set("dns", dns);
      const startReplica = (r: (typeof REPLICAS)[number]) => {
        procs.get(r.name)?.stop();
        procs.set(
          r.name,
          track(t.exec(r.name, [
            ...denoRun("main_http.ts"),
            ...["-p", "8080", "--host", addr(r.name), "-o", `http://${dnsAddr}:9`],
            ...["--id", r.name, "--announce", `${dnsAddr}:5380`, "--admin-token", TOKEN],
            `--lat=${r.lat}`,
            `--lon=${r.lon}`,
          ], { stdout: "piped", stderr: "piped" })),
        );
      };
      REPLICAS.forEach(startReplica);
      const logs = () =>
        [...procs].map(([n, p]) => `--- ${n}:\n${p.output().slice(-1500)}`).join("\n");

      const curl = async (path: string) => {
        const r = await t.run("client", [
          "curl",
          "-sS",
          "-m",
          "5",
          `http://${dnsAddr}:5380${path}`,
        ]);
        if (r.code !== 0) throw new Error(`curl ${path}: ${r.stderr}`);
        return JSON.parse(r.stdout);
      };
      /** The A answer (address and TTL) the client gets. */
      const ask = async () => {
        const r = await t.run("client", [
          "dig",
          "+noall",
          "+answer",
          "+time=1",
          "+tries=1",
          `@${dnsAddr}`,
          ZONE,
          "A",
        ]);
        const f = r.stdout.trim().split(/\s+/);
        return { address: f[4] ?? "", ttl: Number(f[1]) };
      };
      const name = (address: string) =>
        REPLICAS.find((r) => addr(r.name) === address)?.name ?? address;

      await waitFor(
        "three replicas alive",
        async () => {
          const rows = (await curl("/replicas")).replicas as { state: string }[];
          return rows.filter((r) => r.state === "alive").length === 3 ? rows : undefined;
        },
        40_000,
        200,
        logs,
      ).catch(async (e) => {
        // Seen twice on a machine at load average 40: nothing got through the router at all.
        // The emulator's counters tell whether packets reached it and whether it sent them on.
        const stats = await t.stats().then(JSON.stringify, (s) => `no stats: ${s}`);
        throw new Error(`${(e as Error).message}\nemulator: ${stats}`, { cause: e });
      });

      // 1. The first answer is geographic (no measurement yet), with the short TTL.
      const first = await ask();
      assert.equal(name(first.address), "r3", `first answer ${JSON.stringify(first)}`);
      // The short TTL (3), or less when a heartbeat was late at that moment ("changing").
      assert.ok(first.ttl >= 1 && first.ttl <= 3, `first answer's TTL ${first.ttl}`);

      // 2. After measurement: r1, with the configured TTL. State-aware TTLs may shorten an answer
      // for a moment (a heartbeat more than 1.5 intervals late on this loaded machine: basis
      // "changing", TTL 1): such an answer must carry at most the short TTL and /explain must
      // say why; the stable choice then carries the configured 30.
      const shortened: string[] = [];
      await waitFor(
        "answers to name r1",
        async () => name((await ask()).address) === "r1" ? true : undefined,
        15_000,
        100,
        logs,
      );
      const measured = await waitFor(
        "r1 with the configured TTL",
        async () => {
          const a = await ask();
          if (name(a.address) !== "r1") return undefined;
          if (a.ttl === 30) return a;
          assert.ok(a.ttl >= 1 && a.ttl <= 3, `r1 with TTL ${a.ttl}: neither 30 nor short`);
          // /explain is asked after the answer (its basis may be "full" again by then): logged.
          const why = (await curl(`/explain?client=${addr("client")}`)).ttlWhy;
          shortened.push(`TTL ${a.ttl}, then /explain: ${JSON.stringify(why)}`);
          return undefined;
        },
        15_000,
        100,
        logs,
      );
      assert.equal(measured.ttl, 30);
      if (shortened.length > 0) console.log(`shortened r1 answers: ${shortened.join("; ")}`);
      const stable = await curl(`/explain?client=${addr("client")}`);
      if (stable.ttlWhy.basis === "full") assert.equal(stable.ttlWhy.ttl, 30);
      // Each replica's probes report on their own: r1's (3 × 10 ms) arrive first.
      const ex = await waitFor(
        "all three measured",
        async () => {
          const e = await curl(`/explain?client=${addr("client")}`);
          return (e.replicas as { rttMs: number | null }[]).every((r) => r.rttMs !== null)
            ? e
            : undefined;
        },
        10_000,
        200,
        logs,
      );
      const rtt = Object.fromEntries(
        (ex.replicas as { id: string; rttMs: number }[]).map((r) => [r.id, r.rttMs]),
      );
      console.log(`measured RTT (EWMA, ms): ${JSON.stringify(rtt)}; ${ex.reason}`);
      for (const [id, want] of [["r1", 10], ["r2", 40], ["r3", 80]] as const) {
        assert.ok(
          rtt[id] >= want && rtt[id] <= want + SLACK_MS,
          `${id}: measured ${rtt[id]} ms, configured ${want}`,
        );
      }
      assert.ok(rtt.r1 < rtt.r2 && rtt.r2 < rtt.r3, `measured in the configured order`);

      // 3. Changing delays flips the choice (re-measured after --rtt-refresh 1s).
      await t.setDelay("client", "r1", 150);
      await waitFor(
        "answers to move to r2",
        async () => {
          return name((await ask()).address) === "r2" ? true : undefined;
        },
        15_000,
        200,
        logs,
      );
      await t.setDelay("client", "r1", 10);
      await waitFor(
        "answers to return to r1",
        async () => {
          return name((await ask()).address) === "r1" ? true : undefined;
        },
        15_000,
        200,
        logs,
      );

      // 4. kill -9 the best replica: the client moves to the next best.
      const killedAt = performance.now();
      await procs.get("r1")!.stop("SIGKILL");
      await waitFor(
        "answers without r1",
        async () => {
          return name((await ask()).address) === "r2" ? true : undefined;
        },
        FAILOVER_BOUND_MS,
        20,
        logs,
      );
      const failoverMs = performance.now() - killedAt;
      console.log(`failover after kill -9 of r1: ${failoverMs.toFixed(0)} ms`);
      assert.ok(failoverMs < FAILOVER_BOUND_MS, `failover took ${failoverMs.toFixed(0)} ms`);

      // 5. Restarting it brings the client back.
      startReplica(REPLICAS[0]);
      await waitFor(
        "answers to return to the restarted r1",
        async () => {
          return name((await ask()).address) === "r1" ? true : undefined;
        },
        20_000,
        200,
        logs,
      );

      // 6. A partition between the DNS server and r1 (no RST: heartbeats vanish and the health
      // check times out) also moves the client, and healing it brings r1 back.
      const cutAt = performance.now();
      await t.setLoss("dns", "r1", 1);
      await waitFor(
        "answers without the partitioned r1",
        async () => {
          return name((await ask()).address) === "r2" ? true : undefined;
        },
        FAILOVER_BOUND_MS,
        20,
        logs,
      );
      const partitionMs = performance.now() - cutAt;
      console.log(`failover after partitioning r1: ${partitionMs.toFixed(0)} ms`);
      assert.ok(partitionMs < FAILOVER_BOUND_MS, `took ${partitionMs.toFixed(0)} ms`);
      await t.setLoss("dns", "r1", 0);
      await waitFor(
        "answers to return to r1 after healing",
        async () => {
          return name((await ask()).address) === "r1" ? true : undefined;
        },
        15_000,
        200,
        logs,
      );
    } finally {
      await Promise.all([...procs.values()].map((p) => p.stop()));
      await topo?.destroy();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
