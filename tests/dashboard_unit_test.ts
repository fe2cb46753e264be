/**
 * The dashboard's parts without a browser: the registry's drain (a drained replica stays out of
 * the answers through passing checks, dies like any other, comes back drained), the decision
 * sample (bounded, rate-limited, newest first), and the state as JSON from a real control API.
 */
import assert from "node:assert/strict";
import { parseIp } from "../lib/common/ip.ts";
import { newSelection, ReplicaSet, type SteeringPolicy } from "../lib/dns/steering.ts";
import { FleetDb } from "../lib/fleet/dns/db.ts";
import { FleetRegistry } from "../lib/fleet/dns/registry.ts";
import {
  DecisionLog,
  MAX_DECISIONS,
  MAX_PER_SECOND,
  SAMPLE_EVERY,
} from "../lib/fleet/dns/dashboard/decisions.ts";
import { startDns } from "../lib/fleet/_testing.ts";
import { browserPath, chromiumPath } from "./_browser.ts";

function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

function client(text: string) {
  const ip = parseIp(text)!;
  return { family: ip.family, bytes: ip.bytes, bits: ip.family === 4 ? 32 : 128 };
}

Deno.test("registry drain: not answered while drained, checks go on, death and return stay drained", () => {
  const c = clock();
  const set = new ReplicaSet([]);
  const r = new FleetRegistry({ set, db: new FleetDb(":memory:"), statics: [], now: c.now });
  const load = { rps: 0, cacheBytes: 0, hitRatio: 0 };
  const e = r.register(
    { id: "r1", address: "192.0.2.1", port: 8080, lat: null, lon: null, provider: "" },
    "127.0.0.1",
  );
  r.checkStarted("r1");
  r.checkDone("r1", true, "HTTP 200");
  assert.equal(r.drain("nope", true), undefined);
  const version = r.version;
  assert.equal(r.drain("r1", true)!.state, "draining");
  assert.ok(r.version > version, "a drain changes the known-servers version");
  assert.equal(set.replicas[0].live, false, "a drained replica is not answered");
  // Routine checks go on and pass: it stays draining.
  c.t += 1000;
  r.heartbeat({ id: "r1", token: e.token, seq: 1, known: 0, load });
  c.t += 5000;
  r.heartbeat({ id: "r1", token: e.token, seq: 2, known: 0, load });
  assert.deepEqual(r.due(), ["r1"], "the routine check is due");
  r.checkStarted("r1");
  r.checkDone("r1", true, "HTTP 200");
  assert.equal(r.get("r1")!.state, "draining");
  // It dies like any replica, and a passing check after its return leaves it drained.
  c.t += 3100;
  r.due();
  assert.equal(r.get("r1")!.state, "dead");
  r.heartbeat({ id: "r1", token: e.token, seq: 3, known: 0, load });
  r.checkStarted("r1");
  r.checkDone("r1", true, "HTTP 200");
  assert.equal(r.get("r1")!.state, "draining");
  assert.equal(set.replicas[0].live, false);
  // The end of the drain answers it again.
  assert.equal(r.drain("r1", false)!.state, "alive");
  assert.equal(set.replicas[0].live, true);
});

Deno.test("decision log: answers as the policy does, keeps a bounded, rate-limited sample", () => {
  const c = clock();
  const picked = { id: "r1" } as never;
  const inner: SteeringPolicy = {
    name: "fixed",
    select(_client, _family, _max, out) {
      out.replicas[0] = picked;
      out.count = 1;
      out.how = "geo";
    },
  };
  const log = new DecisionLog(inner, c.now);
  const sel = newSelection();
  log.select(client("192.0.2.1"), 4, 1, sel);
  assert.equal(sel.replicas[0], picked, "the policy's answer is kept as it is");
  // The same client again: kept once in SAMPLE_EVERY.
  for (let i = 1; i < SAMPLE_EVERY; i++) log.select(client("192.0.2.1"), 4, 1, sel);
  assert.equal(log.kept, 1);
  log.select(client("192.0.2.1"), 4, 1, sel);
  assert.equal(log.kept, 2);
  // Many clients in one second: at most MAX_PER_SECOND kept.
  c.t += 1000;
  for (let i = 0; i < 100; i++) log.select(client(`198.51.100.${i}`), 4, 1, sel);
  assert.equal(log.kept, 2 + MAX_PER_SECOND);
  c.t += 1000;
  for (let i = 0; i < 100; i++) {
    c.t += 100;
    log.select(client(`203.0.113.${i}`), 4, 1, sel);
  }
  const latest = log.latest();
  assert.equal(latest.length, MAX_DECISIONS);
  assert.equal(Array.from(latest[0].client.bytes.subarray(0, 4)).join("."), "203.0.113.99");
  assert.deepEqual([latest[0].answer, latest[0].how], [["r1"], "geo"]);
});

Deno.test({
  name: "dashboard state as JSON without Accept: text/event-stream; no action from another site",
  sanitizeResources: false,
  async fn() {
    const dns = await startDns(["-n", "cdn.test"]);
    try {
      const res = await fetch(`http://127.0.0.1:${dns.control}/dashboard/events`);
      assert.equal(res.headers.get("content-type"), "application/json");
      const s = await res.json();
      assert.deepEqual(
        [s.zone, s.policy, s.replicas, s.matrix, s.streams.open, s.streams.max],
        ["cdn.test", "latency", [], { replicas: [], rows: [] }, 0, 32],
      );
      const page = await fetch(`http://127.0.0.1:${dns.control}/dashboard`);
      assert.match(await page.text(), /new EventSource\("\/dashboard\/events"\)/);
      // Without --admin-token a loopback client may act, but not a page of another site.
      const drain = (origin: string) =>
        fetch(`http://127.0.0.1:${dns.control}/dashboard/replicas/r1/drain`, {
          method: "POST",
          headers: { origin },
        }).then(async (r) => [r.status, (await r.json()).error]);
      assert.deepEqual(await drain("http://evil.example"), [
        403,
        "cross-origin dashboard action refused (Origin http://evil.example)",
      ]);
      assert.deepEqual(await drain(`http://127.0.0.1:${dns.control}`), [404, "no replica r1"]);
    } finally {
      await dns.stop();
    }
  },
});

Deno.test("browser tests without Chromium or Firefox: the error names the package and the installer", () => {
  const path = Deno.env.get("PATH") ?? "";
  try {
    Deno.env.set("PATH", "/nonexistent");
    assert.throws(() => chromiumPath(), /Chromium is not installed .*apt-get install chromium,/);
    assert.throws(
      () => browserPath("firefox"),
      /Firefox is not installed \(no firefox-esr or firefox on PATH\): apt-get install firefox-esr, .*ensure_tools\.sh/,
    );
  } finally {
    Deno.env.set("PATH", path);
  }
  assert.match(chromiumPath(), /chromium/);
  assert.match(browserPath("firefox"), /firefox/);
});
