/**
 * Deregistration: a replica's agent removes itself from the DNS server with its session token
 * (no admin token needed), so a stopping replica is no longer answered.
 */
import assert from "node:assert/strict";
import { http, startDns, testAgent, waitFor } from "../lib/fleet/_testing.ts";

Deno.test({
  name: "fleet: an agent deregisters itself with its session token",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dns = await startDns(["-n", "cdn.test", "--admin-token", "admin-secret"]);
    const base = `http://127.0.0.1:${dns.control}`;
    const ids = async () =>
      ((await http(`${base}/replicas`)).body.replicas as { id: string }[]).map((r) => r.id);
    const agent = testAgent("leaving", dns.control, "admin-secret");
    try {
      agent.start();
      await waitFor("registered", () => agent.registered || undefined, 30_000, 50, dns.output);
      assert.deepEqual(await ids(), ["leaving"]);
      // Without a token (and not as the replica) removal is refused.
      assert.equal((await http(`${base}/replicas/leaving`, { method: "DELETE" })).status, 401);
      assert.equal(await agent.deregister(), true);
      assert.deepEqual(await ids(), []);
    } finally {
      await agent.close();
      await dns.stop("SIGTERM");
    }
  },
});
