/**
 * State-aware answers with the real registry and an injected clock: "closest N plus spill"
 * (several addresses, the overloaded ranked last, one spill address when the first is near its
 * limit), and TTLs that follow load and state (full, measuring, load, changing), each with the
 * `/explain` fields that say why.
 */
import assert from "node:assert/strict";
import { parseCidr, parseIp } from "../lib/common/ip.ts";
import { newSelection, ReplicaSet } from "../lib/dns/steering.ts";
import { type PolicyName, SteeringEngine } from "../lib/dns/policy.ts";
import { FleetDb } from "../lib/fleet/dns/db.ts";
import { FleetRegistry } from "../lib/fleet/dns/registry.ts";
import { RttCache } from "../lib/fleet/dns/rtt.ts";

const PARIS = "198.51.100.7";

function client(text: string) {
  const ip = parseIp(text)!;
  return { family: ip.family, bytes: ip.bytes, bits: ip.family === 4 ? 32 : 128 };
}

/**
 * Four registered, alive replicas by distance from Paris: par, lon, fra, tok; overload at 100
 * requests/s, short TTL `shortTtl`, configured TTL 20.
 */
function fleet(mode: PolicyName = "geo", shortTtl = 3) {
  let t = 1_000_000;
  const now = () => t;
  const set = new ReplicaSet([]);
  const registry = new FleetRegistry({ set, db: new FleetDb(":memory:"), statics: [], now });
  const rtt = new RttCache({ now });
  const policy = new SteeringEngine({
    mode,
    set,
    loads: registry,
    states: registry,
    rtt,
    geo: [{ cidr: parseCidr("198.51.100.0/24"), lat: 48.86, lon: 2.35 }],
    overloadRps: 100,
    shortTtl,
    fullTtl: 20,
    now,
  });
  const tokens = new Map<string, string>();
  const add = (id: string, address: string, lat: number, lon: number, check = true) => {
    const e = registry.register({ id, address, port: 8080, lat, lon, provider: "" }, "127.0.0.1");
    tokens.set(id, e.token);
    if (!check) return;
    registry.checkStarted(id);
    registry.checkDone(id, true, "HTTP 200");
  };
  add("par", "10.0.1.1", 48.9, 2.4);
  add("lon", "10.0.2.1", 51.51, -0.13);
  add("fra", "10.0.3.1", 50.11, 8.68);
  add("tok", "10.0.4.1", 35.68, 139.69);
  let seq = 0;
  /** A heartbeat from `id` with `rps` requests/s. */
  const beat = (id: string, rps = 0) =>
    registry.heartbeat({
      id,
      token: tokens.get(id)!,
      seq: ++seq,
      known: 0,
      load: { rps, cacheBytes: 0, hitRatio: 0 },
    });
  const pick = (max: number, who = PARIS) => {
    const sel = newSelection();
    const ex = policy.explain(client(who), 4, max);
    policy.select(client(who), 4, max, sel);
    const ids = sel.replicas.slice(0, sel.count).map((r) => r.id);
    assert.deepEqual(ex.answer, ids, "explain names the answer select gives");
    assert.equal(ex.ttl, sel.ttl === -1 ? null : sel.ttl, "explain's ttl is select's");
    return { ids, ttl: sel.ttl, ex };
  };
  return { registry, policy, rtt, add, beat, pick, tick: (ms: number) => t += ms };
}

Deno.test("closest N: the N best live replicas in order; the dead are skipped", () => {
  const f = fleet();
  const a = f.pick(2);
  assert.deepEqual(a.ids, ["par", "lon"]);
  assert.deepEqual(f.pick(3).ids, ["par", "lon", "fra"]);
  assert.deepEqual(f.pick(9).ids, ["par", "lon", "fra", "tok"], "fewer live than asked: all");
  f.registry.checkDone("lon", false, "refused");
  f.registry.checkDone("lon", false, "refused");
  assert.deepEqual(f.pick(2).ids, ["par", "fra"]);
});

Deno.test("spill: overloaded ranks last; near its limit, one more address follows", () => {
  const f = fleet();
  // par over the limit: the next N take its place; it is answered only when nothing else is.
  f.beat("par", 150);
  const over = f.pick(2);
  assert.deepEqual(over.ids, ["lon", "fra"]);
  assert.equal(over.ex.spill, null);
  assert.equal(over.ttl, 3, "the short TTL: clients come back to par once it cools");
  assert.deepEqual(
    [over.ex.ttlWhy.basis, over.ex.ttlWhy.replica],
    ["load", "par"],
    over.ex.ttlWhy.reason,
  );
  assert.match(over.ex.ttlWhy.reason, /par is overloaded \(150 requests\/s\)/);
  assert.deepEqual(f.pick(4).ids, ["lon", "fra", "tok", "par"]);
  // par near its limit (80 % of 100): par first, then the spill after the N.
  f.beat("par", 85);
  const near = f.pick(1);
  assert.deepEqual(near.ids, ["par", "lon"], "closest 1 plus spill");
  assert.equal(near.ex.spill, "lon");
  assert.equal(near.ttl, 3);
  assert.equal(near.ex.ttlWhy.basis, "load");
  assert.match(near.ex.ttlWhy.reason, /par is near its limit \(85 requests\/s\)/);
  assert.equal(near.ex.replicas.find((r) => r.id === "par")!.nearLimit, true);
  assert.deepEqual(f.pick(2).ids, ["par", "lon", "fra"], "closest 2 plus spill");
  // The spill skips replicas that are near their limit themselves.
  f.beat("lon", 90);
  assert.deepEqual(f.pick(1).ids, ["par", "fra"]);
  // Nothing left to spill to: the answer is the closest N alone.
  f.beat("fra", 99);
  f.beat("tok", 80);
  assert.deepEqual(f.pick(1).ids, ["par"]);
  // Below the limit again: the full TTL and no spill.
  for (const id of ["par", "lon", "fra", "tok"]) f.beat(id, 10);
  const calm = f.pick(1);
  assert.deepEqual([calm.ids, calm.ttl, calm.ex.spill], [["par"], -1, null]);
  assert.deepEqual(
    [calm.ex.ttlWhy.basis, calm.ex.ttlWhy.ttl],
    ["full", 20],
    calm.ex.ttlWhy.reason,
  );
});

Deno.test("ttl: the short TTL while the client's measurement is pending", () => {
  const f = fleet("latency");
  const first = f.pick(1);
  assert.equal(first.ttl, 3);
  assert.equal(first.ex.ttlWhy.basis, "measuring");
  assert.match(first.ex.ttlWhy.reason, /being measured/);
  for (const [id, ms] of [["par", 5], ["lon", 12], ["fra", 14], ["tok", 200]] as const) {
    f.rtt.record("198.51.100.0/24", id, ms);
  }
  const measured = f.pick(1);
  assert.deepEqual([measured.ids, measured.ttl], [["par"], -1]);
  assert.equal(measured.ex.ttlWhy.basis, "full");
});

Deno.test("ttl: a late heartbeat shortens the TTL to the monitor's next possible change", () => {
  const f = fleet("geo", 30);
  const beatAll = () => ["par", "lon", "fra", "tok"].forEach((id) => f.beat(id));
  beatAll();
  assert.equal(f.pick(1).ttl, -1, "stable: the configured TTL");
  // par stops heartbeating: past 1.5 intervals it is late and a failing check would kill it.
  f.tick(1000);
  ["lon", "fra", "tok"].forEach((id) => f.beat(id));
  assert.equal(f.pick(1).ttl, -1, "one interval: not late yet");
  f.tick(600);
  ["lon", "fra", "tok"].forEach((id) => f.beat(id));
  const late = f.pick(1);
  assert.deepEqual(late.ids, ["par"], "still alive: still answered");
  assert.equal(late.ttl, 1, "the check is due at the next tick: TTL 1");
  assert.equal(late.ex.ttlWhy.basis, "changing");
  assert.equal(late.ex.ttlWhy.replica, "par");
  assert.ok(late.ex.ttlWhy.nextChangeMs! <= 100, JSON.stringify(late.ex.ttlWhy));
  assert.match(late.ex.ttlWhy.reason, /par is changing state \(heartbeat late \(1600 ms\)\)/);
  // Another replica's trouble does not shorten an answer it is not in.
  assert.equal(f.pick(1, "203.0.113.1").ex.answer.includes("par") ? 1 : -1, f.pick(1).ttl);
  // Its heartbeats come back: stable again.
  beatAll();
  assert.equal(f.pick(1).ttl, -1);
});

Deno.test("ttl: after a failed check, the TTL ends with the next routine check", () => {
  const f = fleet("geo", 30);
  f.registry.checkStarted("par");
  f.registry.checkDone("par", false, "HTTP 503"); // one of two: still alive
  f.beat("par");
  const a = f.pick(1);
  assert.deepEqual(a.ids, ["par"]);
  assert.equal(a.ttl, 5, "the next routine check is 5 s away");
  assert.equal(a.ex.ttlWhy.nextChangeMs, 5000);
  assert.match(a.ex.ttlWhy.reason, /its last health check failed \(1 of 2\)/);
  f.tick(1200);
  f.beat("par");
  assert.equal(f.pick(1).ttl, 4, "3.8 s left: rounded up to 4, never more");
  f.registry.checkStarted("par");
  const running = f.pick(1);
  assert.equal(running.ttl, 1, "a check in flight may end it now");
  f.registry.checkDone("par", true, "HTTP 200");
  assert.equal(f.pick(1).ttl, -1, "passed: stable");
  // With the default short TTL (3 s) the short TTL caps it.
  const g = fleet("geo", 3);
  g.registry.checkStarted("par");
  g.registry.checkDone("par", false, "HTTP 503");
  assert.equal(g.pick(1).ttl, 3);
});

Deno.test("ttl: a pending replica that would rank in the answer shortens it", () => {
  const f = fleet();
  // A new replica in the middle of Paris registers: pending until its health check passes.
  f.add("par2", "10.0.1.2", 48.86, 2.35, false);
  const a = f.pick(1);
  assert.deepEqual(a.ids, ["par"], "pending replicas are never answered");
  assert.equal(a.ttl, 1, "its check is at most 0.5 s away");
  assert.deepEqual([a.ex.ttlWhy.basis, a.ex.ttlWhy.replica], ["changing", "par2"]);
  assert.match(a.ex.ttlWhy.reason, /pending/);
  // A pending replica far away (it would not enter the answer) changes nothing.
  const g = fleet();
  g.add("syd", "10.0.9.1", -33.87, 151.21, false);
  assert.equal(g.pick(1).ttl, -1);
  assert.equal(g.pick(9).ttl, 1, "...unless the answer asks for every replica");
  // A dead replica whose heartbeats stopped is not about to change: the full TTL.
  f.registry.checkStarted("par2");
  f.registry.checkDone("par2", false, "refused");
  assert.equal(f.registry.get("par2")!.state, "dead");
  f.tick(3500); // its heartbeats are gone for good; the others keep theirs
  ["par", "lon", "fra", "tok"].forEach((id) => f.beat(id));
  const b = f.pick(1);
  assert.deepEqual([b.ids, b.ttl], [["par"], -1], b.ex.ttlWhy.reason);
  assert.equal(b.ex.replicas.find((r) => r.id === "par2")!.stateChange, null);
  // A drained replica stays out until the admin ends the drain: nothing under way.
  f.registry.drain("par", true);
  ["par", "lon", "fra", "tok"].forEach((id) => f.beat(id));
  const d = f.pick(1);
  assert.deepEqual([d.ids, d.ttl], [["lon"], -1], d.ex.ttlWhy.reason);
  f.registry.drain("par", false);
  // Its heartbeats come back: a health check may revive it at once.
  f.beat("par2");
  const c = f.pick(1);
  assert.deepEqual([c.ids, c.ttl, c.ex.ttlWhy.replica], [["par"], 1, "par2"]);
  assert.match(c.ex.ttlWhy.reason, /heartbeating again/);
});
