/**
 * State-aware answers end to end: a real DNS server (`main_dns.ts`), three real replicas
 * (`main_http.ts`) registered over the control API, and `dig`. `answers: 2` gives the two
 * nearest live replicas in order with the configured TTL; an overloaded replica loses its
 * place and the answer gets the short TTL until it cools; a replica whose heartbeats stop
 * (SIGSTOP) is answered with TTL 1 while the monitor decides, then left out with the full TTL.
 * With registrations whose heartbeats report exact loads, a replica near its limit gets a
 * spill address after it.
 */
import assert from "node:assert/strict";
import { http, replicaPort, startDns, startReplica, waitFor } from "../lib/fleet/_testing.ts";
import { sealDatagram } from "../lib/fleet/protocol.ts";

const ZONE = "cdn.test";
const REPLICAS = [
  { id: "near", host: "127.0.0.71", lat: 52.37, lon: 4.9 }, // Amsterdam, where the client is
  { id: "mid", host: "127.0.0.72", lat: 50.11, lon: 8.68 }, // Frankfurt
  { id: "far", host: "127.0.0.73", lat: 35.68, lon: 139.69 }, // Tokyo
];

/** `dig` the zone's A records: [addresses in order, their TTL]. */
async function dig(port: number): Promise<{ ids: string[]; ttl: number }> {
  const out = await new Deno.Command("dig", {
    args: ["+noall", "+answer", "+time=2", "+tries=1", "-p", String(port), "@127.0.0.1", ZONE, "A"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n").filter((l) => l);
  const rows = lines.map((l) => l.split(/\s+/));
  const ids = rows.map((f) => REPLICAS.find((r) => r.host === f[4])?.id ?? f[4]);
  const ttls = new Set(rows.map((f) => Number(f[1])));
  assert.ok(ttls.size <= 1, `one TTL per answer: ${lines}`);
  return { ids, ttl: rows.length ? Number(rows[0][1]) : -1 };
}

Deno.test({
  name: "answers: closest N in order, overload spills, TTLs follow load and state (dig)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "nearcast_dns_answers_" });
    const config = { ttl: 30, answers: 2, geo: [{ cidr: "127.0.0.0/8", lat: 52.37, lon: 4.9 }] };
    await Deno.writeTextFile(`${dir}/cdn.json`, JSON.stringify(config));
    const dns = await startDns([
      ...["-n", ZONE, "--config", `${dir}/cdn.json`, "--policy", "geo"],
      ...["--overload-rps", "30", "--short-ttl", "4"],
    ]);
    const procs = REPLICAS.map((r) =>
      startReplica([
        ...["--host", r.host, "--id", r.id, "--admin-token", "answers-token"],
        ...["--announce", `127.0.0.1:${dns.control}`, `--lat=${r.lat}`, `--lon=${r.lon}`],
      ])
    );
    const base = `http://127.0.0.1:${dns.control}`;
    const logs = () => [dns, ...procs].map((p) => p.output().slice(-1500)).join("\n---\n");
    let flooding = false;
    try {
      await waitFor(
        "three replicas alive",
        async () => {
          const rows = (await http(`${base}/replicas`)).body.replicas as { state: string }[];
          return rows.filter((r) => r.state === "alive").length === 3 ? rows : undefined;
        },
        40_000,
        100,
        logs,
      );
      // 1. The two nearest, nearest first, with the configured TTL.
      const stable = await waitFor(
        "the full TTL",
        async () => {
          const a = await dig(dns.port);
          return a.ttl === 30 ? a : undefined;
        },
        10_000,
        100,
        logs,
      );
      assert.deepEqual(stable.ids, ["near", "mid"]);
      const ex = (await http(`${base}/explain?client=127.0.0.1`)).body;
      assert.deepEqual(ex.answer, ["near", "mid"]);
      assert.equal((ex.ttlWhy as { basis: string }).basis, "full");
      assert.equal((ex.ttlWhy as { ttl: number }).ttl, 30);

      // 2. near over 30 requests/s: mid and far take the answer, with the short TTL.
      const nearPort = await replicaPort(procs[0]);
      flooding = true;
      const flood = (async () => {
        while (flooding) {
          const batch = Array.from(
            { length: 8 },
            () => fetch(`http://127.0.0.71:${nearPort}/_cdn/health`).then((r) => r.body?.cancel()),
          );
          await Promise.allSettled(batch);
          // About 300 requests/s, ten times the limit: enough, without taking the machine's
          // CPU from the other replicas' heartbeats.
          await new Promise((r) => setTimeout(r, 25));
        }
      })();
      const spilled = await waitFor(
        "near to lose its place",
        async () => {
          // near ranked last; far is in the answer once its state is alive (on a loaded
          // machine a late heartbeat can leave it out for a moment, and near fills the place).
          const a = await dig(dns.port);
          return a.ids[0] === "mid" && a.ids[1] === "far" ? a : undefined;
        },
        15_000,
        100,
        logs,
      );
      assert.deepEqual(spilled.ids, ["mid", "far"]);
      assert.equal(spilled.ttl, 4, "the short TTL while near is overloaded");
      const why = (await http(`${base}/explain?client=127.0.0.1`)).body.ttlWhy as {
        basis: string;
        replica: string;
        reason: string;
      };
      assert.deepEqual([why.basis, why.replica], ["load", "near"], why.reason);
      flooding = false;
      await flood;
      const back = await waitFor(
        "near back with the full TTL",
        async () => {
          const a = await dig(dns.port);
          return a.ids[0] === "near" && a.ttl === 30 ? a : undefined;
        },
        15_000,
        100,
        logs,
      );
      assert.deepEqual(back.ids, ["near", "mid"]);

      // 3. mid stops (SIGSTOP: no heartbeats, health checks hang): TTL 1 while the monitor
      // decides, then mid is left out with the full TTL.
      procs[1].child.kill("SIGSTOP");
      const seen: string[] = [];
      const gone = await waitFor(
        "mid to be left out",
        async () => {
          const a = await dig(dns.port);
          seen.push(`${a.ids.join(",")}/${a.ttl}`);
          return a.ids.includes("mid") ? undefined : a;
        },
        15_000,
        50,
        logs,
      );
      assert.ok(seen.includes("near,mid/1"), `TTL 1 while mid was late: ${seen}`);
      assert.ok(
        seen.every((s) => s === "near,mid/30" || s === "near,mid/1" || s === "near,far/30"),
        `only the full TTL or 1: ${seen}`,
      );
      assert.deepEqual([gone.ids, gone.ttl], [["near", "far"], 30]);
      procs[1].child.kill("SIGCONT");
      await waitFor(
        "mid back",
        async () => {
          const a = await dig(dns.port);
          return a.ids[1] === "mid" ? a : undefined;
        },
        15_000,
        100,
        logs,
      );
    } finally {
      flooding = false;
      try {
        procs[1].child.kill("SIGCONT");
      } catch { /* exited */ }
      await Promise.all(procs.map((p) => p.stop()));
      await dns.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "answers: closest 1 plus spill with registrations whose heartbeats report exact loads (dig)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "nearcast_dns_spill_" });
    const config = { ttl: 30, answers: 1, geo: [{ cidr: "127.0.0.0/8", lat: 52.37, lon: 4.9 }] };
    await Deno.writeTextFile(`${dir}/cdn.json`, JSON.stringify(config));
    const token = "spill-token";
    const dns = await startDns([
      ...["-n", ZONE, "--config", `${dir}/cdn.json`, "--policy", "geo"],
      ...["--overload-rps", "100", "--short-ttl", "4", "--admin-token", token],
    ]);
    const base = `http://127.0.0.1:${dns.control}`;
    // Stand-ins that pass the health checks; they register and heartbeat as replicas do.
    const servers = REPLICAS.map((r) =>
      Deno.serve({ hostname: r.host, port: 0, onListen() {} }, () => new Response("ok"))
    );
    const sessions = new Map<string, string>();
    for (const [i, r] of REPLICAS.entries()) {
      const res = await http(`${base}/register`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}` },
        body: JSON.stringify({
          id: r.id,
          address: r.host,
          port: servers[i].addr.port,
          lat: r.lat,
          lon: r.lon,
        }),
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      sessions.set(r.id, res.body.token as string);
    }
    const rps = new Map(REPLICAS.map((r) => [r.id, 0]));
    const sock = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    let seq = 0;
    const beat = () =>
      Promise.all(REPLICAS.map((r) =>
        sock.send(
          sealDatagram(sessions.get(r.id)!, {
            id: r.id,
            ts: Date.now(),
            seq: ++seq,
            known: 0,
            load: { rps: rps.get(r.id)!, cacheBytes: 0, hitRatio: 0 },
          }),
          { transport: "udp", hostname: "127.0.0.1", port: dns.control },
        )
      ));
    const timer = setInterval(beat, 250);
    /** Sets loads, then waits for the answer `ids` with TTL `ttl`. */
    const expect = async (loads: Record<string, number>, ids: string[], ttl: number) => {
      for (const [id, v] of Object.entries(loads)) rps.set(id, v);
      await beat();
      return await waitFor(
        `${ids} with TTL ${ttl}`,
        async () => {
          const a = await dig(dns.port);
          return a.ids.join() === ids.join() && a.ttl === ttl ? a : undefined;
        },
        15_000,
        100,
        dns.output,
      );
    };
    try {
      await waitFor(
        "three registrations alive",
        async () => {
          const rows = (await http(`${base}/replicas`)).body.replicas as { state: string }[];
          return rows.filter((r) => r.state === "alive").length === 3 ? rows : undefined;
        },
        30_000,
        100,
        dns.output,
      );
      await expect({}, ["near"], 30);
      // near at 85 % of its limit: near first, then the spill, with the short TTL.
      await expect({ near: 85 }, ["near", "mid"], 4);
      const ex = (await http(`${base}/explain?client=127.0.0.1`)).body;
      assert.equal(ex.spill, "mid");
      const why = ex.ttlWhy as { basis: string; replica: string; reason: string };
      assert.deepEqual([why.basis, why.replica], ["load", "near"], why.reason);
      // mid near its limit too: the spill skips it.
      await expect({ mid: 90 }, ["near", "far"], 4);
      // near over its limit: mid (near its own) leads, far is its spill.
      await expect({ near: 150 }, ["mid", "far"], 4);
      // Calm again: the nearest alone, with the configured TTL.
      await expect({ near: 10, mid: 10 }, ["near"], 30);
    } finally {
      clearInterval(timer);
      sock.close();
      await Promise.all(servers.map((s) => s.shutdown()));
      await dns.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
