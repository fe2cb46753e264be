/**
 * The fleet's pure parts with an injected clock: RTT cache, registry liveness and persistence,
 * the steering modes and their explanations, and input validation.
 */
import assert from "node:assert/strict";
import { isLoopback, parseCidr, parseClientIp, parseIp } from "../lib/common/ip.ts";
import type { ReplicaConfig } from "../lib/dns/config.ts";
import { newSelection, ReplicaSet, replicasFromConfig } from "../lib/dns/steering.ts";
import { FleetDb } from "../lib/fleet/dns/db.ts";
import { parseFleetFlags } from "../lib/fleet/replica/flags.ts";
import { median } from "../lib/fleet/dns/monitor.ts";
import { type PolicyName, SteeringEngine, subnetKey } from "../lib/dns/policy.ts";
import {
  parseHeartbeat,
  parseHeld,
  parseHostPort,
  parseRegistration,
  type Registration,
} from "../lib/fleet/protocol.ts";
import { FleetRegistry, HEALTH_INTERVAL_MS, RECHECK_MS } from "../lib/fleet/dns/registry.ts";
import { RttCache } from "../lib/fleet/dns/rtt.ts";

function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

function client(text: string, bits?: number) {
  const ip = parseIp(text)!;
  return { family: ip.family, bytes: ip.bytes, bits: bits ?? (ip.family === 4 ? 32 : 128) };
}

const load = { rps: 0, cacheBytes: 0, hitRatio: 0 };

function reg(id: string, address: string, lat: number | null = null, lon: number | null = null) {
  return { id, address, port: 8080, lat, lon, provider: "" } satisfies Registration;
}

/** A registry with the given statics, over an in-memory or directory database. */
function fleet(statics: ReplicaConfig[] = [], dir = ":memory:", c = clock()) {
  const set = new ReplicaSet(replicasFromConfig(statics));
  const db = new FleetDb(dir);
  const registry = new FleetRegistry({ set, db, statics, now: c.now });
  return { set, db, registry, c };
}

/** Registers and brings a replica to alive (a passing health check). */
function alive(r: FleetRegistry, id: string, address: string, lat?: number, lon?: number) {
  const e = r.register(reg(id, address, lat ?? null, lon ?? null), "127.0.0.1");
  r.checkStarted(id);
  r.checkDone(id, true, "HTTP 200");
  assert.equal(r.get(id)!.state, "alive");
  return e;
}

Deno.test("rtt cache: EWMA per subnet and replica, expiry, bounded size", () => {
  const c = clock();
  const rtt = new RttCache({ alpha: 0.5, ttlMs: 1000, maxSubnets: 2, now: c.now });
  assert.equal(rtt.record("a", "r1", 10).ms, 10);
  assert.equal(rtt.record("a", "r1", 30).ms, 20);
  assert.equal(rtt.record("a", "r1", 30).ms, 25);
  assert.equal(rtt.get("a", "r1")!.samples, 3);
  c.t += 1001;
  assert.equal(rtt.get("a", "r1"), undefined, "expired");
  assert.equal(rtt.record("a", "r1", 80).ms, 80, "an expired average restarts");
  rtt.record("b", "r1", 1);
  rtt.record("c", "r1", 1); // evicts a, the least recently updated
  assert.equal(rtt.size, 2);
  assert.equal(rtt.get("a", "r1"), undefined);
  rtt.forget("r1");
  assert.equal(rtt.get("b", "r1"), undefined);
  assert.throws(() => rtt.record("a", "r1", -1), RangeError);
  assert.throws(() => new RttCache({ alpha: 0 }), RangeError);
});

Deno.test("rtt cache: subnets are /24 for IPv4 and /56 for IPv6", () => {
  assert.equal(subnetKey(4, parseIp("10.77.2.2")!.bytes), "10.77.2.0/24");
  assert.equal(subnetKey(4, parseIp("10.77.2.200")!.bytes), "10.77.2.0/24");
  const a = subnetKey(6, parseIp("2001:db8:1:2ff::1")!.bytes);
  assert.equal(a, subnetKey(6, parseIp("2001:db8:1:200::9")!.bytes));
  assert.notEqual(a, subnetKey(6, parseIp("2001:db8:1:300::1")!.bytes));
  assert.equal(a, "2001:db8:1:200::/56");
});

Deno.test("registry: pending until checked, dead after 3 missed heartbeats, back on recovery", () => {
  const { registry: r, set, c } = fleet();
  const e = r.register(reg("r1", "192.0.2.1"), "127.0.0.1");
  assert.equal(e.state, "pending");
  assert.equal(set.replicas[0].live, false, "never answered before a health check passes");
  assert.deepEqual(r.due(), ["r1"]);
  r.checkStarted("r1");
  assert.deepEqual(r.due(), [], "no second check while one runs");
  r.checkDone("r1", true, "HTTP 200");
  assert.equal(set.replicas[0].live, true);
  const hb = { id: "r1", token: e.token, seq: 1, known: 0, load };
  for (let i = 0; i < 4; i++) {
    c.t += 1000;
    assert.equal(r.heartbeat({ ...hb, seq: i }), "ok");
    assert.deepEqual(r.due(), [], "fresh heartbeats: no check");
  }
  c.t += 1600; // a heartbeat is late: an active check is due (4.6 s: not the routine one)
  assert.deepEqual(r.due(), ["r1"]);
  assert.equal(r.get("r1")!.state, "alive");
  c.t += 1500; // 3.1 s: three heartbeats missed
  r.due();
  assert.equal(r.get("r1")!.state, "dead");
  assert.equal(set.replicas[0].live, false);
  assert.match(r.get("r1")!.reason, /no heartbeat for 3100 ms/);
  // It comes back: heartbeats first, then a passing check revives it.
  assert.equal(r.heartbeat(hb), "ok");
  r.checkDone("r1", false, "stale check from before"); // a failing check keeps it dead
  assert.equal(r.get("r1")!.state, "dead");
  c.t += 600;
  r.heartbeat(hb);
  assert.deepEqual(r.due(), ["r1"]);
  r.checkStarted("r1");
  r.checkDone("r1", true, "HTTP 200");
  assert.equal(r.get("r1")!.state, "alive");
  assert.equal(set.replicas[0].live, true);
});

Deno.test("registry: a failed check kills at once when the heartbeat is late, else after two", () => {
  const { registry: r, c } = fleet();
  const e = alive(r, "r1", "192.0.2.1");
  const hb = { id: "r1", token: e.token, seq: 1, known: 0, load };
  c.t += HEALTH_INTERVAL_MS;
  r.heartbeat(hb);
  assert.deepEqual(r.due(), ["r1"], "the routine check");
  r.checkStarted("r1");
  r.checkDone("r1", false, "HTTP 500");
  assert.equal(r.get("r1")!.state, "alive", "one failure with fresh heartbeats is tolerated");
  r.checkDone("r1", false, "HTTP 500");
  assert.equal(r.get("r1")!.state, "dead");
  // Late heartbeat + one failure (kill -9: connection refused).
  const { registry: r2, c: c2 } = fleet();
  alive(r2, "r2", "192.0.2.2");
  c2.t += 1600;
  assert.deepEqual(r2.due(), ["r2"]);
  r2.checkStarted("r2");
  r2.checkDone("r2", false, "connection refused");
  assert.equal(r2.get("r2")!.state, "dead");
  assert.match(r2.get("r2")!.reason, /connection refused/);
});

Deno.test("registry: heartbeats need the session token; statics stay alive", () => {
  const statics: ReplicaConfig[] = [{
    id: "s1",
    ipv4: parseIp("192.0.2.50"),
    ipv6: null,
    lat: 1,
    lon: 2,
  }];
  const { registry: r, c } = fleet(statics);
  const e = alive(r, "r1", "192.0.2.1");
  assert.equal(
    r.heartbeat({ id: "r1", token: "x".repeat(32), seq: 1, known: 0, load }),
    "register",
  );
  assert.equal(r.heartbeat({ id: "nope", token: e.token, seq: 1, known: 0, load }), "register");
  assert.equal(r.heartbeat({ id: "s1", token: "", seq: 1, known: 0, load }), "register");
  c.t += 60_000;
  r.due();
  assert.equal(r.get("s1")!.state, "alive", "a static entry needs no heartbeats");
  assert.equal(r.get("r1")!.state, "dead");
  assert.deepEqual(r.servers().map((s) => [s.id, s.state]), [["s1", "alive"], ["r1", "dead"]]);
  assert.throws(() => r.register(reg("w", "0.0.0.0"), "127.0.0.1"), /wildcard/);
  assert.throws(() => r.register(reg("w", "nonsense"), "127.0.0.1"), TypeError);
  // An empty address takes the one the registration came from.
  assert.equal(r.register(reg("r9", ""), "192.0.2.9").address, "192.0.2.9");
  assert.equal(r.remove("r9"), true);
  assert.equal(r.remove("r9"), false);
});

Deno.test("registry: a restarted server knows its fleet from SQLite", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nearcast_fleet_unit_" });
  try {
    const first = fleet([], dir);
    const e = alive(first.registry, "r1", "192.0.2.1", 40, -74);
    first.registry.setHeld("r1", e.token, ["/a.txt"]);
    alive(first.registry, "r2", "2001:db8::2");
    first.registry.remove("r2");
    first.db.close();
    const second = fleet([], dir);
    const got = second.registry.get("r1")!;
    assert.equal(got.address, "192.0.2.1");
    assert.deepEqual([got.lat, got.lon, got.port, got.held], [40, -74, 8080, ["/a.txt"]]);
    assert.equal(got.state, "pending", "checked before it is answered again");
    assert.equal(second.registry.get("r2"), undefined);
    assert.equal(
      second.registry.heartbeat({ id: "r1", token: e.token, seq: 9, known: 0, load }),
      "ok",
      "its session token survives the restart",
    );
    assert.deepEqual(second.registry.due(), ["r1"]);
    second.db.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Three registered replicas: near (10.0.1.1, Paris), mid (London), far (Tokyo). */
function steering(mode: PolicyName, extra: { overloadRps?: number } = {}) {
  const f = fleet();
  const rtt = new RttCache({ now: f.c.now });
  const asked: string[] = [];
  const geo = [{ cidr: parseCidr("198.51.100.0/24"), lat: 48.86, lon: 2.35 }]; // Paris
  const policy = new SteeringEngine({
    mode,
    set: f.set,
    loads: f.registry,
    geo,
    rtt,
    refreshMs: 5000,
    shortTtl: 3,
    onMeasure: (subnet, target) => asked.push(`${subnet} ${target}`),
    now: f.c.now,
    ...extra,
  });
  const tok = { a: alive(f.registry, "tok", "10.0.3.1", 35.68, 139.69) };
  alive(f.registry, "lon", "10.0.2.1", 51.51, -0.13);
  alive(f.registry, "par", "10.0.1.1", 48.86, 2.35);
  const pick = (who: string, max = 1) => {
    const sel = newSelection();
    policy.select(client(who), 4, max, sel);
    return { ids: sel.replicas.slice(0, sel.count).map((r) => r.id), sel };
  };
  return { ...f, rtt, policy, asked, pick, tok };
}

Deno.test("policy latency: geography first with a short TTL, then the measured best", () => {
  const s = steering("latency");
  const first = s.pick("198.51.100.7");
  assert.deepEqual(first.ids, ["par"], "no measurement: the nearest by geography");
  assert.equal(first.sel.ttl, 3);
  assert.deepEqual(s.asked, ["198.51.100.0/24 198.51.100.7"], "measured in the background");
  s.rtt.record("198.51.100.0/24", "par", 90);
  s.rtt.record("198.51.100.0/24", "lon", 12);
  s.rtt.record("198.51.100.0/24", "tok", 200);
  const second = s.pick("198.51.100.99");
  assert.deepEqual(second.ids, ["lon"], "measured RTT wins over geography, per /24");
  assert.equal(second.sel.ttl, -1, "a measured answer keeps the configured TTL");
  assert.equal(second.sel.how, "latency");
  assert.equal(second.sel.scope, 24);
  assert.equal(s.asked.length, 1, "fresh measurements: nothing more to ask");
  s.c.t += 6000;
  s.pick("198.51.100.1");
  assert.equal(s.asked.length, 2, "older than the refresh period: measured again");
  // A client with no location and no measurement: rotation, short TTL.
  const seen = new Set([0, 1, 2, 3, 4, 5].map(() => s.pick("203.0.113.5").ids[0]));
  assert.equal(seen.size, 3);
  // The dead are never answered, even when measured best.
  s.registry.checkDone("lon", false, "refused");
  s.registry.checkDone("lon", false, "refused");
  assert.deepEqual(s.pick("198.51.100.99", 3).ids, ["par", "tok"]);
});

Deno.test("policy: overloaded replicas lose their clients; load and balanced modes", () => {
  const s = steering("geo", { overloadRps: 100 });
  assert.deepEqual(s.pick("198.51.100.7", 3).ids, ["par", "lon", "tok"]);
  s.registry.heartbeat({
    id: "par",
    token: s.registry.get("par")!.token,
    seq: 1,
    known: 0,
    load: { rps: 500, cacheBytes: 0, hitRatio: 0 },
  });
  assert.deepEqual(s.pick("198.51.100.7", 3).ids, ["lon", "tok", "par"]);
  const ex = s.policy.explain(client("198.51.100.7"), 4, 1);
  assert.deepEqual(ex.answer, ["lon"]);
  assert.match(ex.reason, /overloaded \(ranked last\): par/);
  assert.equal(ex.replicas.find((r) => r.id === "par")!.overloaded, true);

  const l = steering("load");
  const beat = (id: string, rps: number) =>
    l.registry.heartbeat({
      id,
      token: l.registry.get(id)!.token,
      seq: 1,
      known: 0,
      load: { rps, cacheBytes: 0, hitRatio: 0 },
    });
  beat("par", 30);
  beat("lon", 10);
  beat("tok", 20);
  assert.deepEqual(l.pick("198.51.100.7", 3).ids, ["lon", "tok", "par"]);

  const b = steering("balanced", { overloadRps: 100 });
  b.rtt.record("198.51.100.0/24", "par", 10);
  b.rtt.record("198.51.100.0/24", "lon", 20);
  b.rtt.record("198.51.100.0/24", "tok", 200);
  assert.deepEqual(b.pick("198.51.100.7").ids, ["par"]);
  b.registry.heartbeat({
    id: "par",
    token: b.registry.get("par")!.token,
    seq: 1,
    known: 0,
    load: { rps: 50, cacheBytes: 0, hitRatio: 0 },
  });
  // par: 0.1 + 0.5 = 0.6; lon: 0.2 + 0 = 0.2
  assert.deepEqual(b.pick("198.51.100.7").ids, ["lon"]);
  const why = b.policy.explain(client("198.51.100.7"), 4, 1);
  assert.equal(why.replicas.find((r) => r.id === "par")!.score, 0.6);
  assert.match(why.reason, /^lon: lowest weighted score 0.2/);
});

Deno.test("policy explain matches select and names the basis of every score", () => {
  const s = steering("latency");
  s.rtt.record("198.51.100.0/24", "tok", 5);
  const ex = s.policy.explain(client("198.51.100.7"), 4, 1);
  assert.deepEqual(ex.answer, s.pick("198.51.100.7").ids);
  assert.deepEqual(ex.answer, ["tok"]);
  const by = Object.fromEntries(ex.replicas.map((r) => [r.id, r]));
  assert.equal(by.tok.basis, "measured");
  assert.equal(by.par.basis, "geo");
  assert.equal(by.par.distanceKm, 0);
  assert.ok(by.lon.distanceKm! > 300 && by.lon.distanceKm! < 400, `${by.lon.distanceKm}`);
  assert.equal(ex.subnet, "198.51.100.0/24");
  assert.deepEqual(ex.location, { lat: 48.86, lon: 2.35 });
  assert.match(ex.reason, /lowest measured RTT \(5 ms\)/);
  assert.throws(
    () => new SteeringEngine({ ...s, mode: "nope" as PolicyName, geo: [] }),
    RangeError,
  );
});

Deno.test("protocol and flags reject bad input with clear errors", () => {
  assert.deepEqual(parseRegistration({ id: "a", port: 80 }), {
    id: "a",
    address: "",
    port: 80,
    lat: null,
    lon: null,
    provider: "",
  });
  assert.throws(() => parseRegistration([]), /JSON object/);
  assert.throws(() => parseRegistration({ id: "a b", port: 80 }), /id must be/);
  assert.throws(() => parseRegistration({ id: "a", port: 0 }), /port must be/);
  assert.throws(() => parseRegistration({ id: "a", port: 80, lat: 1 }), /both lat and lon/);
  assert.throws(() => parseRegistration({ id: "a", port: 80, lat: 91, lon: 0 }), /lat must be/);
  assert.throws(() => parseRegistration({ id: "a", port: 80, extra: 1 }), /unknown field extra/);
  assert.throws(() => parseHeartbeat({ id: "a", token: "t", seq: 1, known: 1 }), /load/);
  assert.throws(
    () => parseHeartbeat({ id: "a", token: "t", seq: 1, known: 1, load: { ...load, hitRatio: 2 } }),
    /hitRatio/,
  );
  assert.throws(() => parseHeld({ paths: ["relative"] }), /start with \//);
  assert.deepEqual(parseHostPort("[::1]:5380"), { host: "::1", port: 5380 });
  assert.deepEqual(parseHostPort("dns.test:53"), { host: "dns.test", port: 53 });
  assert.throws(() => parseHostPort("127.0.0.1"), /HOST:PORT/);
  assert.throws(() => parseHostPort("127.0.0.1:70000"), /HOST:PORT/);
  assert.equal(parseFleetFlags({ host: "0.0.0.0" }), null);
  assert.throws(() => parseFleetFlags({ host: "0.0.0.0", lat: "1" }), /need --announce/);
  const f = parseFleetFlags({ announce: "127.0.0.1:5380", host: "0.0.0.0", lat: "1", lon: "2" });
  assert.deepEqual(f, { announce: ["127.0.0.1:5380"], address: "", lat: 1, lon: 2, provider: "" });
  // Several DNS servers: repeated and comma-separated, in order, without repeats.
  assert.deepEqual(
    parseFleetFlags({ announce: ["a:1, https://b:2", "[::1]:3"], host: "0.0.0.0" })!.announce,
    ["a:1", "https://b:2", "[::1]:3"],
  );
  assert.throws(() => parseFleetFlags({ announce: ["a:1", "A:1"], host: "0.0.0.0" }), /twice/);
  assert.throws(() => parseFleetFlags({ announce: "a:1,,b:2", host: "0.0.0.0" }), /empty/);
  assert.throws(() => parseFleetFlags({ announce: "a:1,b", host: "0.0.0.0" }), /HOST:PORT/);
  assert.equal(
    parseFleetFlags({ announce: "h:1", host: "0.0.0.0", advertise: "http://10.0.0.5:8080" })!
      .address,
    "10.0.0.5",
  );
  assert.equal(parseFleetFlags({ announce: "h:1", host: "127.0.0.11" })!.address, "127.0.0.11");
  assert.throws(
    () => parseFleetFlags({ announce: "h:1", host: "x", lat: "100", lon: "0" }),
    /--lat/,
  );
  assert.throws(() => parseFleetFlags({ announce: "h:1", host: "localhost" }), /--advertise/);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
});

Deno.test("policy latency: static config entries are answered but never measured", () => {
  const statics: ReplicaConfig[] = [{
    id: "s1",
    ipv4: parseIp("192.0.2.50"),
    ipv6: null,
    lat: 48.86,
    lon: 2.35,
  }];
  const f = fleet(statics);
  const asked: string[] = [];
  const policy = new SteeringEngine({
    mode: "latency",
    set: f.set,
    loads: f.registry,
    geo: [{ cidr: parseCidr("198.51.100.0/24"), lat: 48.86, lon: 2.35 }],
    rtt: new RttCache({ now: f.c.now }),
    onMeasure: (subnet) => asked.push(subnet),
    now: f.c.now,
  });
  const sel = newSelection();
  policy.select(client("198.51.100.7"), 4, 1, sel);
  assert.deepEqual([sel.count, sel.replicas[0].id], [1, "s1"]);
  assert.deepEqual(asked, [], "nothing to probe");
  alive(f.registry, "r1", "10.0.0.1");
  policy.select(client("198.51.100.7"), 4, 1, sel);
  assert.deepEqual(asked, ["198.51.100.0/24"], "a registered replica is measured");
});

Deno.test("ip: isLoopback is 127.0.0.0/8 and ::1 only", () => {
  const loop = (t: string) => isLoopback(parseClientIp(t)!);
  assert.deepEqual(
    ["127.0.0.1", "127.9.8.7", "::1", "::ffff:127.0.0.1"].map(loop),
    [true, true, true, true],
  );
  assert.deepEqual(["128.0.0.1", "::2", "::", "10.0.0.1", "fe80::1"].map(loop), [
    false,
    false,
    false,
    false,
    false,
  ]);
});

Deno.test("registry: a pending replica that answers 503 (not ready) stays pending; one that does not answer is dead", () => {
  const { registry: r, set, c } = fleet();
  const e = r.register(reg("r1", "192.0.2.1"), "127.0.0.1");
  r.register(reg("r2", "192.0.2.2"), "127.0.0.1");
  const hb = { id: "r1", token: e.token, seq: 1, known: 0, load };
  r.checkStarted("r1");
  r.checkDone("r1", false, "HTTP 503 in 4 ms", true);
  assert.equal(r.get("r1")!.state, "pending", "still loading or catching up: not dead");
  assert.match(r.get("r1")!.reason, /not ready yet: HTTP 503 in 4 ms/);
  assert.equal(set.replicas[0].live, false, "not answered while not ready");
  c.t += RECHECK_MS;
  r.heartbeat(hb);
  assert.deepEqual(r.due(), ["r1", "r2"], "checked again");
  r.checkStarted("r1");
  r.checkDone("r1", true, "HTTP 200 in 3 ms");
  assert.equal(r.get("r1")!.state, "alive");
  // Any other failure of a pending replica, or a 503 from one that was alive, counts as before.
  r.checkStarted("r2");
  r.checkDone("r2", false, "cannot connect: Connection refused");
  assert.equal(r.get("r2")!.state, "dead");
});
