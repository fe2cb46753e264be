/**
 * The steering engine: `/explain` reports exactly what `select()` answers, for every policy,
 * every kind of client (located, unlocated, measured, IPv4, IPv6, ECS prefixes) and over many
 * consecutive calls (rotation included).
 */
import assert from "node:assert/strict";
import { parseCidr, parseIp } from "../lib/common/ip.ts";
import type { ReplicaConfig } from "../lib/dns/config.ts";
import { newSelection, ReplicaSet, replicasFromConfig } from "../lib/dns/steering.ts";
import { FleetDb } from "../lib/fleet/dns/db.ts";
import { DEFAULT_POLICY, POLICIES, type PolicyName, SteeringEngine } from "../lib/dns/policy.ts";
import { FleetRegistry } from "../lib/fleet/dns/registry.ts";
import { RttCache } from "../lib/fleet/dns/rtt.ts";
import { PriceTable } from "./_price_table.ts";

function client(text: string, bits?: number) {
  const ip = parseIp(text)!;
  return { family: ip.family, bytes: ip.bytes, bits: bits ?? (ip.family === 4 ? 32 : 128) };
}

const STATICS: ReplicaConfig[] = [
  { id: "nyc", ipv4: parseIp("192.0.2.10"), ipv6: parseIp("2001:db8::10"), lat: 40.71, lon: -74 },
  { id: "lon", ipv4: parseIp("192.0.2.20"), ipv6: null, lat: 51.5, lon: -0.13 },
];

const GEO = [
  { cidr: parseCidr("198.51.100.0/24"), lat: 48.86, lon: 2.35 }, // Paris
  { cidr: parseCidr("203.0.113.0/24"), lat: 37.57, lon: 126.98 }, // Seoul
  { cidr: parseCidr("2001:db8:aa::/48"), lat: -33.87, lon: 151.21 }, // Sydney
];

/** Clients of every kind: located, unlocated, measured, ECS prefixes, IPv6. */
const CLIENTS = [
  client("198.51.100.7"),
  client("198.51.100.200"),
  client("203.0.113.9"),
  client("10.1.2.3"), // unlocated
  client("10.9.9.9"), // unlocated, measured below
  client("192.168.0.0", 16), // unlocated ECS /16
  client("198.51.0.0", 16), // ECS /16 that covers Paris: not located
  client("2001:db8:aa::1"),
  client("2001:db8:bb::1"), // unlocated IPv6
];

/** Prices of the providers below (one provider, "gone-cloud", has no price). */
const PRICES = { "cheap-cloud": 0.01, "mid-cloud": 0.05, "dear-cloud": 0.09 };

/**
 * A fleet of two statics and four registered replicas (one without a location, one
 * overloaded, one dead) under `mode`, with RTT measured for some subnets; `priced`: with
 * providers and a price table (one replica unpriced), and `balanced` with a latency bound.
 */
function engine(mode: PolicyName, full: boolean, priced = false) {
  let t = 1_000_000;
  const now = () => t;
  const set = new ReplicaSet(replicasFromConfig(STATICS));
  const db = new FleetDb(":memory:");
  const registry = new FleetRegistry({ set, db, statics: STATICS, now });
  const rtt = new RttCache({ now });
  const asked: string[] = [];
  const policy = new SteeringEngine({
    mode,
    set,
    loads: registry,
    geo: GEO,
    rtt,
    overloadRps: 100,
    refreshMs: 5000,
    shortTtl: 3,
    onMeasure: (subnet) => asked.push(subnet),
    now,
    prices: priced ? new PriceTable(PRICES) : null,
    maxExtraMs: priced ? 20 : null,
  });
  const providers = Object.keys(PRICES).concat("gone-cloud");
  let added = 0;
  const add = (id: string, address: string, lat: number | null, lon: number | null) => {
    const provider = priced ? providers[added++ % providers.length] : "";
    const e = registry.register({ id, address, port: 8080, lat, lon, provider }, "127.0.0.1");
    registry.checkStarted(id);
    registry.checkDone(id, true, "HTTP 200");
    return e;
  };
  add("par", "10.0.1.1", 48.86, 2.35);
  add("tok", "2001:db8::30", 35.68, 139.69);
  if (!full) return { policy, registry, rtt, asked, tick: (ms: number) => t += ms };
  add("anywhere", "10.0.4.1", null, null);
  const hot = add("hot", "10.0.5.1", 50.1, 8.68);
  add("gone", "10.0.6.1", 52.52, 13.4);
  registry.heartbeat({
    id: "hot",
    token: hot.token,
    seq: 1,
    known: 0,
    load: { rps: 500, cacheBytes: 0, hitRatio: 0 },
  });
  registry.checkDone("gone", false, "refused");
  registry.checkDone("gone", false, "refused");
  rtt.record("198.51.100.0/24", "lon", 12);
  rtt.record("198.51.100.0/24", "par", 30);
  rtt.record("10.9.9.0/24", "anywhere", 4);
  rtt.record("10.9.9.0/24", "nyc", 80);
  return { policy, registry, rtt, asked, tick: (ms: number) => t += ms };
}

const VARIANTS = POLICIES.flatMap((m) =>
  [false, true].flatMap((full) => [[m, full, false], [m, full, true]] as const)
);
for (const [mode, full, priced] of VARIANTS) {
  const fleet = (full ? "with unlocated, overloaded and dead replicas" : "all located and well") +
    (priced ? ", priced (balanced: within 20 ms)" : "");
  Deno.test(`${mode}, ${fleet}: explain reports the answer select gives, call after call`, () => {
    const s = engine(mode, full, priced);
    const sel = newSelection();
    let calls = 0;
    const unlocated = new Set<string>();
    for (let round = 0; round < 12; round++) {
      for (const c of CLIENTS) {
        for (const family of [4, 6] as const) {
          for (const max of [1, 2, 4]) {
            const ex = s.policy.explain(c, family, max);
            sel.ttl = -1; // as the handler does before each query
            s.policy.select(c, family, max, sel);
            const got = sel.replicas.slice(0, sel.count).map((r) => r.id);
            const what = `${mode} ${JSON.stringify(ex.client)}/${c.bits} A${family} max ${max}`;
            assert.deepEqual(ex.answer, got, `${what}: answer (call ${calls})`);
            assert.equal(ex.how, sel.how, `${what}: how`);
            assert.equal(ex.ttl, sel.ttl === -1 ? null : sel.ttl, `${what}: ttl`);
            assert.equal(ex.scope, sel.scope, `${what}: scope`);
            calls++;
            if (c === CLIENTS[3] && family === 4 && max === 1) unlocated.add(got[0]);
          }
        }
      }
      if (round === 6) s.tick(6000); // measurements go stale: asked again, answers may change
    }
    if (priced && mode !== "latency" && mode !== "geo" && mode !== "load") {
      assert.equal(unlocated.size, 1, `prices decide for an unlocated client: ${[...unlocated]}`);
    } else assert.ok(unlocated.size > 1, `an unlocated client rotates: ${[...unlocated]}`);
  });
}

Deno.test("a static config (no loads, no measurements) gets the same engine", () => {
  for (const mode of POLICIES) {
    const set = new ReplicaSet(replicasFromConfig(STATICS));
    const policy = new SteeringEngine({ mode, set, geo: GEO });
    const sel = newSelection();
    for (let i = 0; i < 20; i++) {
      for (const c of CLIENTS) {
        const ex = policy.explain(c, 4, 1);
        policy.select(c, 4, 1, sel);
        assert.deepEqual(ex.answer, [sel.replicas[0].id], `${mode} call ${i}`);
        assert.equal(sel.ttl, -1, "nothing can be measured: no short TTL");
      }
    }
    // Paris is nearest London whatever the mode but load (no loads: rotation).
    policy.select(client("198.51.100.7"), 4, 1, sel);
    if (mode !== "load") assert.equal(sel.replicas[0].id, "lon", mode);
  }
});

Deno.test("with a static config the default (latency) answers exactly as geo", () => {
  const latency = new SteeringEngine({
    mode: DEFAULT_POLICY,
    set: new ReplicaSet(replicasFromConfig(STATICS)),
    geo: GEO,
  });
  const geo = new SteeringEngine({
    mode: "geo",
    set: new ReplicaSet(replicasFromConfig(STATICS)),
    geo: GEO,
  });
  assert.equal(DEFAULT_POLICY, "latency");
  const a = newSelection(), b = newSelection();
  for (let i = 0; i < 30; i++) {
    for (const c of CLIENTS) {
      for (const family of [4, 6] as const) {
        latency.select(c, family, 2, a);
        geo.select(c, family, 2, b);
        const ids = (s: typeof a) => s.replicas.slice(0, s.count).map((r) => r.id);
        assert.deepEqual(
          [ids(a), a.how, a.ttl, a.scope],
          [ids(b), b.how, b.ttl, b.scope],
          `call ${i}, A${family}`,
        );
      }
    }
  }
});

Deno.test("latency: an expired measurement no longer steers; a new subnet gets its own key", () => {
  let t = 1_000_000;
  const now = () => t;
  const set = new ReplicaSet(replicasFromConfig(STATICS));
  const rtt = new RttCache({ ttlMs: 1000, now });
  const policy = new SteeringEngine({ mode: "latency", set, geo: GEO, rtt, now });
  rtt.record("198.51.100.0/24", "nyc", 5); // geography says lon; the measurement says nyc
  const sel = newSelection();
  policy.select(client("198.51.100.7"), 4, 1, sel);
  assert.deepEqual([sel.replicas[0].id, sel.how, sel.scope], ["nyc", "latency", 24]);
  policy.select(client("203.0.113.9"), 4, 1, sel); // another subnet: not measured
  assert.equal(sel.how, "geo");
  policy.select(client("198.51.100.8"), 4, 1, sel);
  assert.equal(sel.replicas[0].id, "nyc", "back to the measured subnet");
  t += 1001;
  policy.select(client("198.51.100.7"), 4, 1, sel);
  assert.deepEqual([sel.replicas[0].id, sel.how], ["lon", "geo"], "expired: geography again");
  const ex = policy.explain(client("198.51.100.7"), 4, 1);
  assert.equal(ex.replicas.find((r) => r.id === "nyc")!.rttMs, null);
});
