/**
 * Fleet heartbeats are sealed: a replica's agent registered with a real DNS server drops
 * replies that are not sealed by that server (plain JSON, a wrong key, an unsealed `register`),
 * so a forged datagram neither replaces its known-servers list nor forces a re-registration.
 */
import assert from "node:assert/strict";
import { FleetAgent } from "../lib/fleet/agent.ts";
import { sealDatagram } from "../lib/fleet/protocol.ts";
import { startDns, waitFor } from "../lib/fleet/_testing.ts";

Deno.test({
  name: "fleet trust: forged UDP replies do not change the agent's known servers",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dns = await startDns(["-n", "cdn.test", "--admin-token", "admin-secret"]);
    const agent = new FleetAgent({
      id: "r1",
      address: "127.0.0.1",
      port: 9,
      lat: null,
      lon: null,
      provider: "",
      announce: `127.0.0.1:${dns.control}`,
      adminToken: "admin-secret",
      load: () => ({ requests: 0, hits: 0, misses: 0, cacheBytes: 0 }),
    });
    const sock = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    try {
      agent.start();
      // Real, sealed replies are taken: the list holds r1.
      await waitFor(
        "sealed replies",
        () => agent.stats.replies >= 2 && agent.servers.length === 1 || undefined,
        30_000,
        50,
        dns.output,
      );
      const before = JSON.stringify(agent.servers);
      const registrations = agent.stats.registrations;
      const fake = [{
        id: "evil",
        address: "203.0.113.66",
        port: 80,
        state: "alive",
        provider: "",
      }];
      const to = { transport: "udp" as const, hostname: "127.0.0.1", port: agent.localPort };
      const seq = agent.stats.heartbeats + 1;
      const forged = [
        new TextEncoder().encode(
          JSON.stringify({ seq, status: "ok", version: 999, servers: fake }),
        ),
        sealDatagram("wrong-key", { seq, status: "ok", version: 999, servers: fake }),
        sealDatagram("", { seq, status: "register", version: 999, servers: null }),
        sealDatagram("guess", { seq, status: "register", version: 999, servers: null }),
      ];
      const bad = agent.stats.badReplies;
      for (const d of forged) await sock.send(d, to);
      await waitFor("forged replies dropped", () => agent.stats.badReplies >= bad + 4 || undefined);
      // A few more real replies later, the list is still the server's and no re-registration.
      const replies = agent.stats.replies;
      await waitFor("more real replies", () => agent.stats.replies >= replies + 2 || undefined);
      assert.equal(JSON.stringify(agent.servers), before);
      assert.ok(!agent.servers.some((s) => s.id === "evil"));
      assert.equal(agent.stats.registrations, registrations);
      assert.equal(agent.registered, true);
    } finally {
      sock.close();
      await agent.close();
      await dns.stop("SIGTERM");
    }
  },
});
