/**
 * The failover measurement, bounded: three kill -9 rounds of the replica the client is steered
 * to (bench/failover/failover.ts; the benchmark runs 20). Each failover must meet the goal of
 * issue #4 (no answer names the killed replica after 3 s), the next best must take over, and
 * the restarted replica must be answered again.
 */
import assert from "node:assert/strict";
import { measureFailover, summary } from "../bench/failover/failover.ts";

/** The goal of issue #4. */
const FAILOVER_GOAL_MS = 3_000;

Deno.test({
  name: "fleet failover: kill -9 of the answered replica, three rounds, each under 3 s",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const r = await measureFailover(3, (line) => console.log(line));
    console.log(`failover ms: ${JSON.stringify(summary(r.failover))}`);
    assert.equal(r.failover.length, 3);
    for (const ms of r.failover) {
      assert.ok(ms < FAILOVER_GOAL_MS, `failover took ${ms.toFixed(0)} ms`);
    }
    assert.deepEqual(r.nextBest, ["127.0.0.32", "127.0.0.32", "127.0.0.32"], "r2 is next best");
    assert.equal(r.recovery.length, 3, "the restarted replica was answered again each time");
  },
});
