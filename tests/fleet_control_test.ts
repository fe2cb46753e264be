/**
 * The live fleet on loopback with real processes: a replica registers through `--announce`,
 * heartbeats over UDP, shows in `/replicas`, is measured and explained, survives a DNS server
 * restart through SQLite, and the control API guards its mutations with `--admin-token`.
 */
import assert from "node:assert/strict";
import {
  http,
  replicaPort,
  resolveA,
  startDns,
  startReplica,
  waitFor,
} from "../lib/fleet/_testing.ts";

const ZONE = "cdn.test";
const TOKEN = "fleet-test-token";
const R1 = "127.0.0.41";

type Row = Record<string, unknown>;

Deno.test({
  name: "fleet: register, heartbeat, explain, restart from SQLite, admin token",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "nearcast_fleet_control_" });
    const dnsArgs = [
      "-n",
      ZONE,
      "--data",
      dir,
      "--admin-token",
      TOKEN,
      "--probe-port",
      "9",
    ];
    let dns = await startDns(dnsArgs);
    const replica = startReplica([
      "--host",
      R1,
      "--id",
      "r1",
      "--announce",
      `127.0.0.1:${dns.control}`,
      "--admin-token",
      TOKEN,
      "--lat",
      "10",
      "--lon",
      "20",
      "--provider",
      "acme",
    ]);
    try {
      const base = () => `http://127.0.0.1:${dns.control}`;
      const rows = async () => (await http(`${base()}/replicas`)).body.replicas as Row[];
      const policy = (await http(`${base()}/replicas`)).body.policy;
      assert.equal(policy, "latency", "the default policy: measured RTT first");
      const r1 = await waitFor(
        "r1 alive",
        async () => {
          const r = (await rows()).find((x) => x.id === "r1");
          return r?.state === "alive" && (r.seq as number) >= 2 ? r : undefined;
        },
        30_000,
        100,
        () => dns.output() + replica.output(),
      );
      assert.equal(r1.address, R1);
      assert.equal(r1.provider, "acme");
      assert.deepEqual([r1.lat, r1.lon], [10, 20]);
      assert.equal(typeof (r1.load as Row).rps, "number");
      assert.ok((r1.heartbeatAgeMs as number) < 3000);
      const rport = await replicaPort(replica);

      // The known-servers list reaches the replica through the heartbeat replies.
      const fleet = await http(`http://${R1}:${rport}/_cdn/fleet`);
      assert.equal(fleet.body.registered, true);
      assert.deepEqual((fleet.body.servers as Row[]).map((s) => [s.id, s.state]), [[
        "r1",
        "alive",
      ]]);
      // Probes are only for the DNS server.
      assert.equal((await http(`http://${R1}:${rport}/_cdn/probe?target=127.0.0.1`)).status, 401);

      // A query triggers a measurement in the background; /explain then shows it.
      assert.equal(await resolveA(dns.port, ZONE), R1);
      const ex = await waitFor(
        "a measured RTT",
        async () => {
          const e = (await http(`${base()}/explain?client=127.0.0.1`)).body;
          const line = (e.replicas as Row[])[0];
          return line.basis === "measured" ? e : undefined;
        },
        10_000,
        100,
        dns.output,
      );
      assert.deepEqual(ex.answer, ["r1"]);
      assert.match(ex.reason as string, /^r1: lowest measured RTT/);
      assert.equal(ex.subnet, "127.0.0.0/24");
      const bad = await http(`${base()}/explain?client=not-an-ip`);
      assert.equal(bad.status, 400);
      assert.match(bad.body.error as string, /client must be an IP address/);

      // Mutations need the admin token.
      const reg = { id: "x1", address: "127.0.0.99", port: 1 };
      const post = (auth?: string, body: unknown = reg) =>
        http(`${base()}/register`, {
          method: "POST",
          headers: auth ? { authorization: `Bearer ${auth}` } : {},
          body: JSON.stringify(body),
        });
      assert.equal((await post()).status, 401);
      assert.equal((await post("wrong")).status, 401);
      assert.equal((await http(`${base()}/replicas/r1`, { method: "DELETE" })).status, 401);
      const invalid = await post(TOKEN, { id: "x 1", port: 1 });
      assert.equal(invalid.status, 400);
      assert.match(invalid.body.error as string, /id must be/);
      assert.equal((await post(TOKEN, { ...reg, port: 70000 })).status, 400);
      // x1 registers but never answers its health check: it is never answered.
      assert.equal((await post(TOKEN)).status, 200);
      await waitFor("x1 dead", async () => {
        const x = (await rows()).find((r) => r.id === "x1");
        return x?.state === "dead" ? x : undefined;
      }, 10_000);
      for (let i = 0; i < 5; i++) assert.equal(await resolveA(dns.port, ZONE), R1);
      const del = await http(`${base()}/replicas/x1`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(del.status, 200);

      // Restart the DNS server on the same database and ports: it knows r1 at once, and r1's
      // heartbeats (same session token) keep it without a new registration.
      const control = dns.control;
      await dns.stop("SIGTERM");
      dns = await startDns([...dnsArgs, "--control", String(control)]);
      assert.deepEqual((await rows()).map((r) => r.id), ["r1"], "known before any heartbeat");
      await waitFor(
        "r1 alive after the restart",
        async () => {
          const r = (await rows()).find((x) => x.id === "r1");
          return r?.state === "alive" && (r.seq as number) > 0 ? r : undefined;
        },
        10_000,
        100,
        dns.output,
      );
      assert.equal(await resolveA(dns.port, ZONE), R1);
      const stats = (await http(`http://${R1}:${rport}/_cdn/fleet`)).body.stats as Row;
      assert.equal(stats.registrations, 1, "no re-registration was needed");

      // kill -9: dead, never answered (NODATA: no other replica).
      await replica.stop("SIGKILL");
      await waitFor(
        "r1 dead",
        async () => {
          const r = (await rows()).find((x) => x.id === "r1");
          return r?.state === "dead" ? r : undefined;
        },
        10_000,
        100,
        dns.output,
      );
      assert.equal(await resolveA(dns.port, ZONE), "", "a dead replica is never answered");
    } finally {
      await replica.stop();
      await dns.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
