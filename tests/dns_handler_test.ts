/**
 * The server in-process (real sockets, real dig): the edge turns an exception into SERVFAIL and
 * a counted error and goes on serving; dead replicas are never answered; counters add up.
 */
import assert from "node:assert/strict";
import { dig, kdig } from "../lib/dns/_testing.ts";
import { parseConfig } from "../lib/dns/config.ts";
import { startDnsServer } from "../lib/dns/server.ts";
import { SteeringEngine } from "../lib/dns/policy.ts";
import {
  ReplicaSet,
  type Selection,
  type SteeringClient,
  type SteeringPolicy,
} from "../lib/dns/steering.ts";

const CONFIG = parseConfig(
  JSON.stringify({
    replicas: [
      { id: "near", ipv4: "192.0.2.1", lat: 48, lon: 2 },
      { id: "far", ipv4: "192.0.2.2", lat: -33, lon: 151 },
    ],
    geo: [{ cidr: "198.51.100.0/24", lat: 48.86, lon: 2.35 }],
  }),
  "inline.json",
);

/** The geo policy, except that clients in 10/8 make it throw. */
class ThrowingFor10 implements SteeringPolicy {
  readonly name = "throwing";
  constructor(readonly inner: SteeringPolicy) {}
  select(client: SteeringClient, family: 4 | 6, max: number, out: Selection): void {
    if (client.family === 4 && client.bytes[0] === 10) throw new Error("policy failure");
    this.inner.select(client, family, max, out);
  }
}

for (const codec of ["wasm", "ts"] as const) {
  Deno.test(`${codec}: an exception while answering is SERVFAIL, counted, survived`, async () => {
    const errors: unknown[] = [];
    const set = new ReplicaSet([]);
    const server = await startDnsServer({
      zone: "cdn.test",
      config: CONFIG,
      port: 0,
      codec,
      policy: new ThrowingFor10(new SteeringEngine({ mode: "geo", set, geo: CONFIG.geo })),
      onError: (e) => errors.push(e),
    });
    // The policy reads the server's own registry.
    set.replicas.push(...server.replicas.replicas);
    try {
      for (const via of [[], ["+tcp"]]) {
        const bad = await dig(server.port, ...via, "cdn.test", "A", "+subnet=10.0.0.0/8");
        assert.equal(bad.status, "SERVFAIL", bad.raw);
        assert.ok(!bad.flags.has("aa"), bad.raw);
        const good = await kdig(server.port, ...via, "cdn.test", "A", "+subnet=198.51.100.0/24");
        assert.deepEqual(good.answer.map((a) => a.data), ["192.0.2.1"], good.raw);
      }
      assert.equal(errors.length, 2);
      assert.match(String(errors[0]), /policy failure/);
      const s = server.stats();
      assert.equal(s.errors, 2);
      assert.equal(s.SERVFAIL, 2);
      assert.equal(s.NOERROR, 2);
      assert.equal(s.queries, 4);
      assert.equal(s.udp_received, 2);
      assert.equal(s.tcp_accepted, 2);
    } finally {
      await server.close();
    }
  });
}

Deno.test("dead replicas are never answered; none live with the family is NODATA", async () => {
  const server = await startDnsServer({ zone: "cdn.test", config: CONFIG, port: 0 });
  try {
    const ask = async () =>
      (await dig(server.port, "cdn.test", "A", "+subnet=198.51.100.0/24")).answer.map((a) =>
        a.data
      );
    assert.deepEqual(await ask(), ["192.0.2.1"]);
    assert.ok(server.replicas.setLive("near", false));
    assert.deepEqual(await ask(), ["192.0.2.2"]);
    assert.ok(server.replicas.setLive("far", false));
    const none = await dig(server.port, "cdn.test", "A", "+subnet=198.51.100.0/24");
    assert.deepEqual([none.status, none.answer.length, none.authority[0]?.type], [
      "NOERROR",
      0,
      "SOA",
    ]);
    server.replicas.setLive("near", true);
    assert.deepEqual(await ask(), ["192.0.2.1"]);
  } finally {
    await server.close();
  }
});
