/**
 * Several DNS servers on loopback with real processes: a replica announces to two (`--announce
 * A,B`); each keeps its own registry, so killing one (-9) leaves the other answering with the
 * replica alive and heartbeated; the killed one, restarted without its data, gets the replica
 * back by a new registration. Probe requests from both servers for one subnet cost one probe
 * (the replica shares its recent result); the Prober's sharing rules are unit-tested with a fake
 * clock. A `--tls` replica announces to an `https://` control API and a plain one at once.
 */
import assert from "node:assert/strict";
import {
  type DnsProc,
  http,
  replicaPort,
  resolveA,
  startDns,
  startReplica,
  waitFor,
} from "../lib/fleet/_testing.ts";
import { parseIp } from "../lib/common/ip.ts";
import { MAX_SHARE_MS, Prober } from "../lib/fleet/replica/probe.ts";
import { ReplicaFleet } from "../lib/fleet/replica/fleet.ts";
import { readPin, writePin } from "../lib/fleet/credentials.ts";
import { newKey } from "../lib/replication/trust.ts";
import { caFetch, makeCerts, tlsArgs } from "./_tls_cluster.ts";
import { withTempDir } from "./_upload_cluster.ts";

const ZONE = "cdn.test";
const TOKEN = "multidns-test-token";
const R1 = "127.0.0.61";
/** A client in another /24 than 127.0.0.1 (all of 127/8 is loopback). */
const OTHER_CLIENT = "127.0.1.61";

type Row = Record<string, unknown>;

async function row(dns: DnsProc, id: string): Promise<Row | undefined> {
  const body = (await http(`http://127.0.0.1:${dns.control}/replicas`)).body;
  return (body.replicas as Row[]).find((r) => r.id === id);
}

/** Resolves once `id` is alive at `dns` with a heartbeat sequence above `seq`. */
function aliveAfter(dns: DnsProc, id: string, seq: number, context: () => string) {
  return waitFor(
    `${id} alive with seq > ${seq}`,
    async () => {
      const r = await row(dns, id);
      return r?.state === "alive" && (r.seq as number) > seq ? r : undefined;
    },
    30_000,
    100,
    context,
  );
}

Deno.test({
  name: "fleet: a replica announced to two DNS servers survives either one's death",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dnsArgs = ["-n", ZONE, "--admin-token", TOKEN, "--probe-port", "9"];
    const a = await startDns(dnsArgs);
    let b = await startDns(dnsArgs);
    const replica = startReplica([
      "--host",
      R1,
      "--id",
      "r1",
      "--announce",
      `127.0.0.1:${a.control},127.0.0.1:${b.control}`,
      "--admin-token",
      TOKEN,
    ]);
    const out = () => a.output() + b.output() + replica.output();
    try {
      await aliveAfter(a, "r1", 1, out);
      await aliveAfter(b, "r1", 1, out);
      const rport = await replicaPort(replica);
      const fleet = async () => (await http(`http://${R1}:${rport}/_cdn/fleet`)).body;
      const f = await fleet();
      assert.deepEqual(f.announce, [`127.0.0.1:${a.control}`, `127.0.0.1:${b.control}`]);
      assert.equal(f.registered, true);
      assert.deepEqual((f.dns as Row[]).map((d) => d.registered), [true, true]);

      // Probes: A measures the client subnet; B's request for it is answered from A's result.
      assert.equal(await resolveA(a.port, ZONE), R1);
      const measured = (dns: DnsProc, client: string) =>
        waitFor(
          `a measurement at ${dns.control} for ${client}`,
          async () => {
            const e = (await http(`http://127.0.0.1:${dns.control}/explain?client=${client}`)).body;
            return (e.replicas as Row[])[0]?.basis === "measured" ? e : undefined;
          },
          10_000,
          100,
          out,
        );
      await measured(a, "127.0.0.1");
      assert.equal(await resolveA(b.port, ZONE), R1);
      await measured(b, "127.0.0.1");
      assert.deepEqual((await fleet()).probes, { probes: 1, shared: 1 });
      // Another subnet is probed on its own.
      assert.equal(await resolveA(a.port, ZONE, OTHER_CLIENT), R1);
      await measured(a, OTHER_CLIENT);
      assert.deepEqual((await fleet()).probes, { probes: 2, shared: 1 });
      const metrics = await (await fetch(`http://${R1}:${rport}/_cdn/metrics`)).text();
      for (
        const line of [
          'nearcast_http_fleet_probes_total{result="probed"} 2',
          'nearcast_http_fleet_probes_total{result="shared"} 1',
          `nearcast_http_fleet_registered{dns="127.0.0.1:${b.control}"} 1`,
        ]
      ) assert.ok(metrics.includes(line), `${line} in\n${metrics}`);

      // kill -9 B: A keeps answering r1, which keeps heartbeating A.
      await b.stop("SIGKILL");
      const seqA = (await row(a, "r1"))!.seq as number;
      await aliveAfter(a, "r1", seqA + 3, out);
      for (let i = 0; i < 5; i++) assert.equal(await resolveA(a.port, ZONE), R1);

      // B comes back on its control port without its data (a new key, an empty registry):
      // the replica registers with it again, and A never noticed.
      const registrations = ((await fleet()).dns as Row[]).map((d) =>
        (d.stats as Row).registrations as number
      );
      b = await startDns([...dnsArgs, "--control", String(b.control)]);
      await aliveAfter(b, "r1", 1, out);
      assert.equal(await resolveA(b.port, ZONE), R1);
      const after = ((await fleet()).dns as Row[]).map((d) =>
        (d.stats as Row).registrations as number
      );
      assert.equal(after[0], registrations[0], "A: no new registration");
      assert.ok(after[1] > registrations[1], "B: registered again");
      assert.equal((await row(a, "r1"))!.state, "alive");

      // SIGTERM: the replica deregisters from both.
      await replica.stop("SIGTERM");
      for (const dns of [a, b]) assert.equal(await row(dns, "r1"), undefined);
    } finally {
      await replica.stop();
      await a.stop();
      await b.stop();
    }
  },
});

Deno.test("fleet: probes are shared per subnet, port and count within maxAge", async () => {
  let now = 0;
  const connects: string[] = [];
  let refuse = false;
  const prober = new Prober({
    now: () => now,
    connect: (target, port) => {
      connects.push(`${target}:${port}`);
      return Promise.resolve(refuse ? null : 1.5);
    },
  });
  const ip = (s: string) => parseIp(s)!;
  const first = await prober.measure(ip("10.1.2.3"), 80, 2, 30_000);
  assert.deepEqual(first, { measured: "10.1.2.3", samples: [1.5, 1.5], ageMs: 0, shared: false });
  now = 10_000;
  // Same /24, within maxAge: the result of 10.1.2.3, no connect.
  assert.deepEqual(await prober.measure(ip("10.1.2.200"), 80, 2, 30_000), {
    measured: "10.1.2.3",
    samples: [1.5, 1.5],
    ageMs: 10_000,
    shared: true,
  });
  assert.equal(connects.length, 2);
  // A shorter maxAge, another port, count or subnet: probed.
  await prober.measure(ip("10.1.2.3"), 80, 2, 5_000);
  await prober.measure(ip("10.1.2.3"), 443, 2, 30_000);
  await prober.measure(ip("10.1.2.3"), 80, 1, 30_000);
  await prober.measure(ip("10.1.3.3"), 80, 2, 30_000);
  assert.equal(prober.stats.probes, 5);
  // IPv6: shared within the /56.
  await prober.measure(ip("2001:db8:0:1::1"), 80, 1, 30_000);
  assert.equal((await prober.measure(ip("2001:db8:0:ff::2"), 80, 1, 30_000)).shared, true);
  assert.equal((await prober.measure(ip("2001:db8:0:100::2"), 80, 1, 30_000)).shared, false);
  // maxAge is capped: paths change.
  now += MAX_SHARE_MS;
  assert.equal((await prober.measure(ip("10.1.3.3"), 80, 2, 10 * MAX_SHARE_MS)).shared, false);
  // Requests meeting a probe in flight wait for it; an empty result is not kept.
  refuse = true;
  const n = connects.length;
  const both = await Promise.all([
    prober.measure(ip("10.9.9.1"), 80, 1, 30_000),
    prober.measure(ip("10.9.9.2"), 80, 1, 30_000),
  ]);
  assert.deepEqual(both.map((r) => [r.samples, r.shared]), [[[], false], [[], true]]);
  assert.equal(connects.length, n + 1);
  await prober.measure(ip("10.9.9.1"), 80, 1, 30_000);
  assert.equal(connects.length, n + 2);
});

Deno.test("fleet: the pin file keeps every DNS server's key; one pin keeps the old shape", () => {
  const file = Deno.makeTempFileSync({ prefix: "nearcast_pins_" });
  try {
    const [k1, k2] = [newKey().publicKey, newKey().publicKey];
    Deno.writeTextFileSync(file, "not json");
    assert.equal(readPin(file, "a:1"), null);
    writePin(file, "a:1", k1);
    assert.deepEqual(JSON.parse(Deno.readTextFileSync(file)), { announce: "a:1", serverKey: k1 });
    writePin(file, "b:2", k2);
    assert.equal(readPin(file, "a:1"), k1);
    assert.equal(readPin(file, "b:2"), k2);
    assert.equal(readPin(file, "c:3"), null);
    writePin(file, "a:1", k2);
    assert.deepEqual([readPin(file, "a:1"), readPin(file, "b:2")], [k2, k2]);
  } finally {
    Deno.removeSync(file);
  }
});

Deno.test({
  name: "fleet: a --tls replica announces to an https:// control API and a plain one at once",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withTempDir(async (dir) => {
      const R = "127.0.0.62";
      await makeCerts(["--out", `${dir}/c`, "--nodes", `t2=${R},dns=127.0.0.1`]);
      const common = ["-n", ZONE, "--admin-token", TOKEN, "--probe-port", "9"];
      const ca = ["--ca", `${dir}/c/ca.pem`]; // health checks of a --tls replica over HTTPS
      const cert = ["--cert", `${dir}/c/dns.pem`, "--key", `${dir}/c/dns-key.pem`];
      const a = await startDns([...common, ...ca, ...cert]); // control API over HTTPS
      const b = await startDns([...common, ...ca]); // control API over plain HTTP
      const replica = startReplica([
        "--host",
        R,
        "--id",
        "t2",
        "--announce",
        `https://127.0.0.1:${a.control}`,
        "--announce",
        `127.0.0.1:${b.control}`,
        "--admin-token",
        TOKEN,
        ...tlsArgs(`${dir}/c`, "t2"),
      ]);
      const out = () => a.output() + b.output() + replica.output();
      try {
        const viaTls = caFetch(`${dir}/c/ca.pem`);
        await waitFor(
          "t2 alive at both",
          async () => {
            const rowA = ((await (await viaTls(`https://127.0.0.1:${a.control}/replicas`)).json())
              .replicas as Row[]).find((r) => r.id === "t2");
            const rowB = await row(b, "t2");
            return rowA?.state === "alive" && rowB?.state === "alive" ? true : undefined;
          },
          30_000,
          100,
          out,
        );
        assert.equal(await resolveA(a.port, ZONE), R);
        assert.equal(await resolveA(b.port, ZONE), R);
      } finally {
        await replica.stop();
        await a.stop();
        await b.stop();
      }
    });
  },
});

Deno.test("fleet: the known servers of several DNS servers merge, alive wins", async () => {
  const fleetOptions = () => ({
    announce: ["127.0.0.1:1", "127.0.0.2:1"],
    id: "me",
    address: "",
    port: 1,
    lat: null,
    lon: null,
    provider: "",
    adminToken: null,
    load: () => ({ requests: 0, hits: 0, misses: 0, cacheBytes: 0 }),
  });
  const fleet = new ReplicaFleet(fleetOptions());
  const s = (id: string, state: string) => ({
    id,
    address: "10.0.0.1",
    port: 1,
    state,
    provider: "",
  });
  fleet.agents[0].servers = [s("a", "alive"), s("b", "dead")];
  fleet.agents[1].servers = [s("b", "alive"), s("c", "pending")];
  assert.deepEqual(fleet.servers.map((x) => [x.id, x.state]), [
    ["a", "alive"],
    ["b", "alive"],
    ["c", "pending"],
  ]);
  assert.equal(fleet.registered, false);
  assert.throws(() => new ReplicaFleet({ ...fleetOptions(), announce: [] }), /no DNS server/);
  await fleet.close();
});
