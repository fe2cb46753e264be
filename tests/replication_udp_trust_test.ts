/**
 * Fleet heartbeats are sealed: a replica's agent registered with a real DNS server drops
 * replies that are not sealed by that server (plain JSON, a wrong key, an unsealed `register`),
 * so a forged datagram neither replaces its known-servers list nor forces a re-registration.
 * HTTP calls between them carry a session MAC instead of the token: a replay, a swapped body
 * or a wrong key is refused.
 */
import assert from "node:assert/strict";
import { sealDatagram, sessionHeaders } from "../lib/fleet/protocol.ts";
import { http, startDns, testAgent, waitFor } from "../lib/fleet/_testing.ts";

Deno.test({
  name: "fleet trust: forged UDP replies do not change the agent's known servers",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dns = await startDns(["-n", "cdn.test", "--admin-token", "admin-secret"]);
    const agent = testAgent("r1", dns.control, "admin-secret");
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

Deno.test({
  name: "fleet trust: session-MAC'd calls refuse replays, swapped bodies and wrong keys",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dns = await startDns(["-n", "cdn.test", "--admin-token", "admin-secret"]);
    const base = `http://127.0.0.1:${dns.control}`;
    try {
      const reg = await fetch(`${base}/register`, {
        method: "POST",
        headers: { authorization: "Bearer admin-secret", "content-type": "application/json" },
        body: JSON.stringify({ id: "r9", address: "127.0.0.1", port: 9 }),
      });
      assert.equal(reg.status, 200);
      assert.match(reg.headers.get("x-nearcast-mac") ?? "", /^[0-9a-f]{64}$/);
      const { token } = await reg.json() as { token: string };
      const path = "/replicas/r9/held";
      const body = JSON.stringify({ paths: ["/a.txt"] });
      const put = (headers: Record<string, string>, b = body) =>
        fetch(`${base}${path}`, { method: "PUT", headers, body: b }).then(async (r) => {
          await r.body?.cancel();
          return r.status;
        });
      const signed = sessionHeaders(token, "r9", "PUT", path, body).headers;
      assert.equal(await put(signed), 200);
      assert.equal(await put(signed), 401, "a replay");
      const other = sessionHeaders(token, "r9", "PUT", path, body).headers;
      assert.equal(await put(other, JSON.stringify({ paths: ["/b.txt"] })), 400, "swapped body");
      assert.equal(await put(sessionHeaders("wrong", "r9", "PUT", path, body).headers), 401);
      const rows = (await http(`${base}/replicas`)).body.replicas as { id: string; held: number }[];
      assert.equal(rows.find((r) => r.id === "r9")?.held, 1);
    } finally {
      await dns.stop("SIGTERM");
    }
  },
});
