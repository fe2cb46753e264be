/**
 * End-to-end, one membership for cache peering and purges: three replicas that learn each
 * other only through `--join` (no `--peers`) fill a miss from a member before the origin, and
 * a purge accepted on one node (admin token) is pushed to every member as a signed call and
 * reported member by member (with each replica's count); a member does not push it on, a
 * member that is down is reported as failed after the retries and told once it is back, and
 * copies filled from a member carry its surrogate keys (a key purge reaches them).
 */
import { deepStrictEqual as assertEquals, equal, match, ok } from "node:assert/strict";
import { MAX_MEMBER_PEERS, selectPeers } from "../lib/http/peer_select.ts";
import { startOrigin } from "./_http_origin.ts";
import {
  startNode,
  stopAll,
  type TestNode,
  tfetch,
  TOKEN,
  waitUntil,
  withTempDir,
} from "./_upload_cluster.ts";

/** Longest wait for the nodes to list each other as alive. */
const MEMBERSHIP_TIMEOUT_MS = 20_000;

async function get(url: string) {
  const res = await tfetch(url);
  return { status: res.status, body: await res.text(), x: res.headers.get("x-cache"), res };
}

async function purge(node: TestNode, target: Record<string, string>, token = TOKEN) {
  const res = await tfetch(`${node.url}/_cdn/purge`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(target),
  });
  return { status: res.status, body: await res.json() };
}

/** `node` lists every one of `others` as alive in its server list. */
async function seesAlive(node: TestNode, others: TestNode[]): Promise<boolean> {
  const res = await tfetch(`${node.url}/_cdn/servers`);
  const view = await res.json() as { id: string; alive: boolean }[];
  return others.every((o) => view.some((v) => v.id === o.id && v.alive));
}

Deno.test("one membership serves cache peering and purges", async (t) => {
  const routes: Record<string, { headers: Record<string, string>; body: string }> = {};
  for (const p of ["/m/1", "/m/2", "/d/1", "/d/2"]) {
    routes[p] = { headers: { "cache-control": "max-age=600" }, body: `object ${p}` };
  }
  routes["/k/1"] = {
    headers: { "cache-control": "max-age=600", "surrogate-key": "grp other" },
    body: "object /k/1",
  };
  const origin = await startOrigin(routes);
  const other = await startOrigin({
    "/m/2": { headers: { "cache-control": "max-age=600" }, body: "other /m/2" },
  });
  let stopped: number | null = null;
  await withTempDir(async (dir) => {
    const nodes: TestNode[] = [];
    try {
      const a = await startNode("a", `${dir}/a`, ["-o", origin.url]);
      nodes.push(a);
      const b = await startNode("b", `${dir}/b`, ["-o", origin.url, "--join", a.url]);
      nodes.push(b);
      const c = await startNode("c", `${dir}/c`, ["-o", origin.url, "--join", a.url]);
      nodes.push(c);
      await waitUntil(
        async () =>
          await seesAlive(a, [b, c]) && await seesAlive(b, [a, c]) && await seesAlive(c, [a, b]),
        MEMBERSHIP_TIMEOUT_MS,
        "a, b and c to list each other as alive",
      );

      await t.step("a miss is filled from a member before the origin", async () => {
        const first = await get(`${a.url}/m/1`);
        assertEquals([first.status, first.x, first.body], [200, "MISS", "object /m/1"]);
        equal(origin.count("/m/1"), 1);
        for (const n of [b, c]) {
          const r = await get(`${n.url}/m/1`);
          assertEquals([r.status, r.x, r.body], [200, "MISS", "object /m/1"]);
          match(r.res.headers.get("via") ?? "", /nearcast-a/);
        }
        equal(origin.count("/m/1"), 1, "b and c were filled by a member, not the origin");
        for (const n of [a, b, c]) equal((await get(`${n.url}/m/1`)).x, "HIT");
      });

      await t.step("the signed purge route refuses unsigned and admin-token calls", async () => {
        const none: Record<string, string> = {};
        for (const headers of [none, { authorization: `Bearer ${TOKEN}` }]) {
          const res = await tfetch(`${b.url}/_cdn/purge-peer`, {
            method: "POST",
            headers: { ...headers, "content-type": "application/json" },
            body: JSON.stringify({ url: "/m/1" }),
          });
          await res.body?.cancel();
          equal(res.status, 401);
        }
        equal((await get(`${b.url}/m/1`)).x, "HIT");
      });

      await t.step("a purge on one node removes the object from every member", async () => {
        const r = await purge(b, { url: "/m/1" });
        equal(r.status, 200);
        // The total and each replica's count: every node held it.
        equal(r.body.purged, 3);
        assertEquals(r.body.replicas, { a: 1, b: 1, c: 1 });
        equal(r.body.members.asked, 2);
        assertEquals([...r.body.members.acknowledged].sort(), ["a", "c"]);
        assertEquals(r.body.members.failed, []);
        // No member pushed it on: a and c each received it once, b never from a member.
        for (const n of [a, c]) {
          equal(n.proc.lines.filter((l) => l.startsWith('purge: {"url":"/m/1"} from b')).length, 1);
        }
        ok(!b.proc.lines.some((l) => /^purge: .* from /.test(l)));
        // Held nowhere any more: the first GET goes to the origin, the others to a member.
        const again = await get(`${a.url}/m/1`);
        equal(again.x, "MISS");
        equal(origin.count("/m/1"), 2);
        for (const n of [b, c]) equal((await get(`${n.url}/m/1`)).x, "MISS");
        equal(origin.count("/m/1"), 2);
      });

      await t.step("a prefix purge reaches every member too", async () => {
        for (const n of [a, b, c]) {
          for (const p of ["/d/1", "/d/2"]) equal((await get(`${n.url}${p}`)).status, 200);
        }
        const r = await purge(c, { prefix: "/d/" });
        equal(r.body.purged, 6);
        assertEquals(r.body.replicas, { a: 2, b: 2, c: 2 });
        assertEquals([...r.body.members.acknowledged].sort(), ["a", "b"]);
        for (const n of [a, b, c]) {
          const res = await tfetch(`${n.url}/d/1`, { headers: { "x-nearcast-peer": "1" } });
          await res.body?.cancel();
          equal(res.status, 504, `${n.id} no longer holds /d/1`);
        }
      });

      await t.step("copies filled from a member carry its surrogate keys", async () => {
        equal((await get(`${a.url}/k/1`)).x, "MISS");
        for (const n of [b, c]) {
          const r = await get(`${n.url}/k/1`);
          equal(r.x, "MISS");
          equal(r.res.headers.get("surrogate-key"), null, "never sent to clients");
        }
        equal(origin.count("/k/1"), 1, "b and c were filled by a member");
        const r = await purge(c, { key: "grp" });
        assertEquals([r.body.purged, r.body.replicas], [3, { a: 1, b: 1, c: 1 }]);
        for (const n of [a, b, c]) {
          const res = await tfetch(`${n.url}/k/1`, { headers: { "x-nearcast-peer": "1" } });
          await res.body?.cancel();
          equal(res.status, 504, `${n.id} no longer holds /k/1`);
        }
      });

      await t.step("a member caching another origin does not answer for ours", async () => {
        const d = await startNode("d", `${dir}/d`, ["-o", other.url, "--join", a.url]);
        nodes.push(d);
        await waitUntil(
          async () => await seesAlive(d, [a, b, c]),
          MEMBERSHIP_TIMEOUT_MS,
          "d to list a, b and c as alive",
        );
        equal((await get(`${a.url}/m/2`)).body, "object /m/2");
        const r = await get(`${d.url}/m/2`);
        assertEquals([r.status, r.body], [200, "other /m/2"]);
        equal(other.count("/m/2"), 1);
        const asked = await tfetch(`${a.url}/m/2`, {
          headers: { "x-nearcast-peer": "1", "x-nearcast-peer-origin": other.url },
        });
        await asked.body?.cancel();
        equal(asked.status, 504);
      });

      await t.step("a member that hangs delays a miss by the peer timeout only", async () => {
        const d = nodes.pop()!;
        await stopAll([d]);
        Deno.kill(c.proc.pid, "SIGSTOP");
        stopped = c.proc.pid;
        try {
          // Bounded by the test's request timeout: the miss must not wait on c.
          const r = await get(`${a.url}/d/2`);
          assertEquals([r.status, r.body], [200, "object /d/2"]);
        } finally {
          Deno.kill(c.proc.pid, "SIGCONT");
          stopped = null;
        }
      });

      await t.step("a member that is down is reported as failed", async () => {
        await stopAll([c]);
        nodes.splice(nodes.indexOf(c), 1);
        const r = await purge(a, { url: "/m/1" });
        equal(r.status, 200);
        // c and d are down (still listed): both reported, after the retries.
        equal(r.body.members.asked, 3);
        assertEquals(r.body.members.acknowledged, ["b"]);
        const failed = r.body.members.failed as { id: string; error: string }[];
        assertEquals(failed.map((f) => f.id).sort(), ["c", "d"]);
        for (const f of failed) match(f.error, /unreachable/);
        for (const f of failed) equal((f as { queued?: boolean }).queued, true);
        // b still fills from a member or the origin: the dead one does not stall the miss.
        const got = await get(`${b.url}/m/2`);
        equal(got.status, 200);
      });

      await t.step("a member that was down is told once it is back", async () => {
        // c stored /m/1 before it stopped (SQLite store): back on the same data, it loads it,
        // and a delivers the purge it missed as soon as c answers a heartbeat.
        const back = await startNode("c", `${dir}/c`, ["-o", origin.url, "--join", a.url]);
        nodes.push(back);
        await waitUntil(
          () => back.proc.lines.some((l) => l.startsWith('purge: {"url":"/m/1"} from a: 1 ')),
          MEMBERSHIP_TIMEOUT_MS,
          "the queued purge to reach c",
        );
        const res = await tfetch(`${back.url}/m/1`, { headers: { "x-nearcast-peer": "1" } });
        await res.body?.cancel();
        equal(res.status, 504, "c no longer holds /m/1");
        ok(a.proc.lines.some((l) => l.startsWith('purge: delivered queued {"url":"/m/1"} to c')));
      });
    } finally {
      if (stopped !== null) Deno.kill(stopped, "SIGCONT");
      await stopAll(nodes);
      await origin.close();
      await other.close();
    }
  });
});

Deno.test("peer selection: static peers plus a few members ranked per URL", () => {
  const members = Array.from({ length: 20 }, (_, i) => `http://10.0.0.${i}:8080`);
  const fixed = ["http://peer:1"];
  const chosen = selectPeers("/x", fixed, members);
  equal(chosen.length, 1 + MAX_MEMBER_PEERS);
  equal(chosen[0], "http://peer:1");
  assertEquals(selectPeers("/x", fixed, [...members].reverse()), chosen, "order-independent");
  // A member that was not chosen leaving changes nothing for the URL.
  const other = members.find((m) => !chosen.includes(m))!;
  assertEquals(selectPeers("/x", fixed, members.filter((m) => m !== other)), chosen);
  // Different URLs spread over the members.
  const used = new Set<string>();
  for (let i = 0; i < 200; i++) for (const p of selectPeers(`/u/${i}`, [], members)) used.add(p);
  equal(used.size, members.length);
  // A static peer that is also a member is asked once.
  assertEquals(selectPeers("/x", [members[0]], members.slice(0, 1)), [members[0]]);
});
