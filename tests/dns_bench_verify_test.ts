/**
 * The DNS benchmark's answer checks (bench/dns_qps/verify.ts): our server on the benchmark's
 * zone passes them; a server that answers SERVFAIL, or the wrong replica, fails them; and
 * dnsperf rcode counts with SERVFAIL, or without the expected NXDOMAIN share, are refused.
 */
import assert from "node:assert/strict";
import { checkRcodes, verifyServer } from "../bench/dns_qps/verify.ts";
import { ourConfig } from "../bench/dns_qps/zone.ts";
import { parseConfig } from "../lib/dns/config.ts";
import { startDnsServer } from "../lib/dns/server.ts";
import type { Selection, SteeringClient, SteeringPolicy } from "../lib/dns/steering.ts";

const ZONE = "cdn.test";
const CONFIG = parseConfig(ourConfig(), "bench zone");

/** Answers with the replicas `pick` returns, or throws (SERVFAIL) when it returns null. */
function policyOf(
  server: { replicas: { replicas: Selection["replicas"] } },
  pick: "last" | "fail",
) {
  return {
    name: pick,
    select(_c: SteeringClient, _family: 4 | 6, _max: number, out: Selection) {
      if (pick === "fail") throw new Error("broken on purpose");
      const all = server.replicas.replicas;
      out.replicas[0] = all[all.length - 1];
      out.count = 1;
      out.scope = 0;
    },
  } satisfies SteeringPolicy;
}

Deno.test({
  name: "bench:dns answer checks pass our server and catch SERVFAIL and wrong replicas",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const good = await startDnsServer({ zone: ZONE, config: CONFIG, port: 0, codec: "ts" });
    try {
      await verifyServer(good.port, ZONE, "ours");
      // NSD's zone has one fixed apex A: our steered answers are not that.
      await assert.rejects(verifyServer(good.port, ZONE, "nsd"), /apex A, ECS/);
    } finally {
      await good.close();
    }
    const cases: ["fail" | "last", RegExp][] = [
      ["fail", /rcode SERVFAIL/],
      ["last", /ECS 192\.0\.2\.0\/24/],
    ];
    for (const [pick, why] of cases) {
      const holder = { replicas: { replicas: [] as Selection["replicas"] } };
      const bad = await startDnsServer({
        zone: ZONE,
        config: CONFIG,
        port: 0,
        codec: "ts",
        policy: policyOf(holder, pick),
        onError: () => {},
      });
      holder.replicas = bad.replicas;
      try {
        await assert.rejects(verifyServer(bad.port, ZONE, "ours"), why, pick);
      } finally {
        await bad.close();
      }
    }
  },
});

Deno.test("bench:dns refuses dnsperf rcode counts other than NOERROR and the NXDOMAIN share", () => {
  const ok = "NOERROR 92000 (92.00%), NXDOMAIN 8000 (8.00%)";
  assert.deepEqual(checkRcodes(ok, 100_000, 0.08, 1000), []);
  assert.match(
    checkRcodes("NOERROR 92000 (92.00%), SERVFAIL 8000 (8.00%)", 100_000, 0.08, 1000).join(),
    /8000 answers SERVFAIL/,
  );
  assert.match(
    checkRcodes("SERVFAIL 100000 (100.00%)", 100_000, 0.08, 1000).join(),
    /100000 answers SERVFAIL/,
  );
  // A server answering NOERROR for everything (nonexistent names too) is wrong as well.
  assert.match(
    checkRcodes("NOERROR 100000 (100.00%)", 100_000, 0.08, 1000).join(),
    /NXDOMAIN 0\.00% of answers, 8\.00% expected/,
  );
  assert.match(checkRcodes(ok, 120_000, 0.08, 1000).join(), /add up to 100000/);
});
