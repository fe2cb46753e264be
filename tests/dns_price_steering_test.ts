/**
 * Price in the steering engine, on a price table: `price` picks the cheapest, `balanced` the
 * cheapest within `maxExtraMs` of the fastest (or the weighted score with a price term), and
 * the choice flips when a price, an RTT or liveness changes. Replicas without a price rank
 * after the priced ones; an unreachable pricing service keeps the last prices; with no price at
 * all the price modes answer by latency. `/explain` shows the price of every replica and why.
 */
import assert from "node:assert/strict";
import { parseIp } from "../lib/common/ip.ts";
import type { ReplicaConfig } from "../lib/dns/config.ts";
import { parseConfig } from "../lib/dns/config.ts";
import { parseDnsFlags } from "../lib/dns/flags.ts";
import { type PolicyName, SteeringEngine, type Weights } from "../lib/dns/policy.ts";
import { newSelection, ReplicaSet, replicasFromConfig } from "../lib/dns/steering.ts";
import { RttCache } from "../lib/fleet/dns/rtt.ts";
import { PriceTable } from "./_price_table.ts";

const CLIENT = (() => {
  const ip = parseIp("198.51.100.7")!;
  return { family: ip.family, bytes: ip.bytes, bits: 32 };
})();
const SUBNET = "198.51.100.0/24";

/** near: fast and dear; mid: 15 ms slower, half the price; far: slow and cheapest. */
const REPLICAS: ReplicaConfig[] = [
  { id: "near", ipv4: parseIp("192.0.2.1"), ipv6: null, lat: NaN, lon: NaN, provider: "dear" },
  { id: "mid", ipv4: parseIp("192.0.2.2"), ipv6: null, lat: NaN, lon: NaN, provider: "middle" },
  { id: "far", ipv4: parseIp("192.0.2.3"), ipv6: null, lat: NaN, lon: NaN, provider: "cheap" },
];
const RTT = { near: 10, mid: 25, far: 80 };

function setup(
  mode: PolicyName,
  o: { maxExtraMs?: number; weights?: Partial<Weights>; prices?: PriceTable | null } = {},
) {
  const set = new ReplicaSet(replicasFromConfig(REPLICAS));
  const rtt = new RttCache();
  for (const [id, ms] of Object.entries(RTT)) rtt.record(SUBNET, id, ms);
  const prices = o.prices === undefined
    ? new PriceTable({ dear: 0.09, middle: 0.05, cheap: 0.01 })
    : o.prices;
  const policy = new SteeringEngine({
    mode,
    set,
    geo: [],
    rtt,
    prices,
    maxExtraMs: o.maxExtraMs,
    weights: o.weights,
  });
  const sel = newSelection();
  /** The answer select gives, checked against explain's. */
  const answer = () => {
    const ex = policy.explain(CLIENT, 4, 3);
    policy.select(CLIENT, 4, 3, sel);
    const got = sel.replicas.slice(0, sel.count).map((r) => r.id);
    assert.deepEqual(ex.answer, got, `explain and select differ: ${ex.reason}`);
    return got;
  };
  return { set, rtt, prices: prices!, policy, answer };
}

Deno.test("latency picks the nearest, price the cheapest, balanced the cheapest within the bound", () => {
  assert.deepEqual(setup("latency").answer(), ["near", "mid", "far"]);
  assert.deepEqual(setup("price").answer(), ["far", "mid", "near"]);
  const b = setup("balanced", { maxExtraMs: 20 });
  assert.deepEqual(b.answer(), ["mid", "near", "far"]);
  const ex = b.policy.explain(CLIENT, 4, 1);
  assert.equal(ex.how, "balanced");
  assert.equal(ex.maxExtraMs, 20);
  assert.match(
    ex.reason,
    /^mid: cheapest within 20 ms of the fastest \(0\.05 USD\/GiB from middle; RTT 25 ms, fastest 10 ms\)/,
  );
  const line = (id: string) => ex.replicas.find((r) => r.id === id)!;
  assert.deepEqual(
    [line("mid").costPerGiB, line("mid").currency, line("mid").provider, line("mid").price],
    [0.05, "USD", "middle", "priced"],
  );
  assert.deepEqual(ex.replicas.map((r) => r.withinBound), [true, true, false]);
  assert.deepEqual(ex.prices, { source: true, healthy: true, version: b.prices.version });
  const p = setup("price").policy.explain(CLIENT, 4, 1);
  assert.equal(p.how, "price");
  assert.match(p.reason, /^far: cheapest \(0\.01 USD\/GiB from cheap; RTT 80 ms\)/);
});

Deno.test("balanced flips when a price changes, when a delay changes, when a replica dies", () => {
  const b = setup("balanced", { maxExtraMs: 20 });
  assert.equal(b.answer()[0], "mid");
  b.prices.set("dear", 0.02); // near becomes the cheapest within the bound
  assert.equal(b.answer()[0], "near");
  b.prices.set("dear", 0.09);
  assert.equal(b.answer()[0], "mid");
  b.rtt.record(SUBNET, "mid", 200); // smoothed: 25 → 112.5 ms, out of the bound
  assert.equal(b.answer()[0], "near");
  for (let i = 0; i < 10; i++) b.rtt.record(SUBNET, "mid", 25);
  assert.equal(b.answer()[0], "mid");
  b.set.setLive("mid", false);
  assert.deepEqual(b.answer(), ["near", "far"]);
  b.set.setLive("mid", true);
  assert.equal(b.answer()[0], "mid");
  // A wider bound takes the cheapest of all.
  assert.equal(setup("balanced", { maxExtraMs: 100 }).answer()[0], "far");
});

Deno.test("balanced without a bound: the weighted score has a price term", () => {
  // near 0.1 + 0.9, mid 0.25 + 0.5, far 0.8 + 0.1: mid.
  const b = setup("balanced");
  assert.deepEqual(b.answer(), ["mid", "far", "near"]);
  const ex = b.policy.explain(CLIENT, 4, 1);
  assert.deepEqual(ex.replicas.map((r) => [r.id, r.score, r.priceTerm]), [
    ["near", 1, 0.9],
    ["mid", 0.75, 0.5],
    ["far", 0.9, 0.1],
  ]);
  assert.match(
    ex.reason,
    /^mid: lowest weighted score 0\.75 \(lowest measured RTT \(25 ms\), price term 0\.5 \(0\.05 USD\/GiB from middle\)\)/,
  );
  assert.deepEqual(ex.weights, { latency: 1, load: 1, price: 1 });
  assert.equal(setup("balanced", { weights: { price: 0 } }).answer()[0], "near");
  assert.equal(setup("balanced", { weights: { price: 5 } }).answer()[0], "far");
});

Deno.test("a replica without a price ranks after the priced ones, and explain says why", () => {
  const s = setup("price", { prices: new PriceTable({ middle: 0.05, cheap: 0.01 }) });
  assert.deepEqual(s.answer(), ["far", "mid", "near"]);
  s.prices.delete("cheap");
  assert.deepEqual(s.answer(), ["mid", "near", "far"], "unpriced: by latency after the priced");
  const ex = s.policy.explain(CLIENT, 4, 1);
  assert.equal(ex.replicas.find((r) => r.id === "far")!.price, "unknown provider");
  assert.equal(ex.replicas.find((r) => r.id === "far")!.score, null);
  assert.match(
    ex.reason,
    /no price for near \(provider "dear" not priced\), far \(provider "cheap" not priced\): ranked after the priced replicas/,
  );
  const b = setup("balanced", { maxExtraMs: 20, prices: new PriceTable({ middle: 0.05 }) });
  b.prices.set("middle", 0.5); // dearer than anything, but the only priced one in the bound
  assert.equal(b.answer()[0], "mid");
});

Deno.test("pricing service unreachable: the last prices are kept; no price at all: by latency", () => {
  const s = setup("price");
  s.prices.healthy = false;
  assert.equal(s.answer()[0], "far");
  assert.match(
    s.policy.explain(CLIENT, 4, 1).reason,
    /pricing service unreachable: using the last prices received/,
  );
  for (const mode of ["price", "balanced"] as const) {
    const none = setup(mode, { maxExtraMs: 20, prices: new PriceTable() });
    none.prices.healthy = false;
    assert.equal(none.answer()[0], "near", mode);
    const ex = none.policy.explain(CLIENT, 4, 1);
    assert.match(ex.reason, /no price received yet: price not used/, mode);
    assert.match(ex.reason, /by latency: lowest measured RTT \(10 ms\)/, mode);
  }
  const off = setup("price", { prices: null });
  assert.equal(off.answer()[0], "near");
  assert.match(off.policy.explain(CLIENT, 4, 1).reason, /no pricing service \(--price\)/);
});

Deno.test("config: a static replica may name its provider; a bad one is named with the key", () => {
  const ok = parseConfig(
    JSON.stringify({ replicas: [{ id: "a", ipv4: "192.0.2.1", lat: 1, lon: 2, provider: "p" }] }),
    "cdn.json",
  );
  assert.equal(ok.replicas[0].provider, "p");
  assert.equal(replicasFromConfig(ok.replicas)[0].provider, "p");
  assert.throws(
    () =>
      parseConfig(
        JSON.stringify({ replicas: [{ id: "a", ipv4: "192.0.2.1", lat: 1, lon: 2, provider: 7 }] }),
        "cdn.json",
      ),
    /cdn\.json: replicas\[0\]\.provider: must be a string of at most 63 characters: received 7/,
  );
});

Deno.test("flags: --policy price, --weights with price, --max-extra-ms, --price URL", () => {
  const a = parseDnsFlags([
    "-p",
    "0",
    "-n",
    "cdn.test",
    "--policy",
    "balanced",
    "--weights",
    "latency=2,price=0.5",
    "--max-extra-ms",
    "20",
    "--price",
    "http://127.0.0.1:7000",
  ]);
  assert.ok(a !== "help");
  assert.deepEqual(
    [a.policy, a.weights, a.maxExtraMs, a.priceUrl],
    ["balanced", { latency: 2, load: 1, price: 0.5 }, 20, "http://127.0.0.1:7000"],
  );
  const base = ["-p", "0", "-n", "cdn.test"];
  const d = parseDnsFlags(base);
  assert.ok(d !== "help");
  assert.deepEqual([d.maxExtraMs, d.priceUrl], [null, null]);
  assert.throws(() => parseDnsFlags([...base, "--price", "nope"]), /--price: a URL expected/);
  assert.throws(() => parseDnsFlags([...base, "--max-extra-ms", "-1"]), /--max-extra-ms/);
  assert.throws(() => parseDnsFlags([...base, "--weights", "cost=1"]), /price=N expected/);
});
