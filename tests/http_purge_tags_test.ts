/**
 * Surrogate-key and soft purges on one replica with a store: `Surrogate-Key` (space-separated)
 * and `Cache-Tag` (comma-separated) tag entries, are never sent to clients, survive a restart
 * with the store, and name what `{"key": K}` purges; `"soft": true` marks entries stale (the
 * next request revalidates, `stale-while-revalidate` still applies) instead of removing them.
 */
import { deepStrictEqual as assertEquals, equal } from "node:assert/strict";
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

async function get(url: string) {
  const res = await tfetch(url);
  const body = await res.text();
  return { status: res.status, body, x: res.headers.get("x-cache"), headers: res.headers };
}

async function purge(node: TestNode, target: Record<string, unknown>) {
  const res = await tfetch(`${node.url}/_cdn/purge`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(target),
  });
  if (res.status !== 200) return { status: res.status, body: await res.text() };
  // A single node: no member asked, so only the total and this replica's count matter.
  const { purged, replicas } = await res.json();
  return { status: res.status, body: { purged, replicas } };
}

Deno.test("surrogate keys and soft purges", async (t) => {
  const fresh = "max-age=600";
  const origin = await startOrigin({
    "/t/1": { headers: { "cache-control": fresh, "surrogate-key": "a  b" }, body: "t1" },
    "/t/2": { headers: { "cache-control": fresh, "cache-tag": "b, c" }, body: "t2" },
    "/t/3": { headers: { "cache-control": fresh }, body: "t3" },
    "/s/1": {
      headers: { "cache-control": `${fresh}, stale-while-revalidate=60`, etag: '"s1"' },
      body: "s1",
      conditional: true,
    },
    "/s/2": {
      headers: { "cache-control": fresh, etag: '"s2"', "surrogate-key": "s" },
      body: "s2",
      conditional: true,
    },
  });
  await withTempDir(async (dir) => {
    let node: TestNode | null = null;
    try {
      node = await startNode("a", `${dir}/a`, ["-o", origin.url]);
      const base = node.url;

      await t.step("tags are stored but never sent to clients", async () => {
        for (const p of ["/t/1", "/t/2", "/t/3"]) {
          for (const x of ["MISS", "HIT"]) {
            const r = await get(`${base}${p}`);
            equal(r.x, x);
            equal(r.headers.get("surrogate-key"), null);
            equal(r.headers.get("cache-tag"), null);
          }
        }
      });

      await t.step("a key purge removes every entry tagged with it", async () => {
        const r = await purge(node!, { key: "b" });
        assertEquals(r.body, { purged: 2, replicas: { a: 2 } });
        assertEquals((await purge(node!, { key: "nothing" })).body, {
          purged: 0,
          replicas: { a: 0 },
        });
        for (const [p, x] of [["/t/1", "MISS"], ["/t/2", "MISS"], ["/t/3", "HIT"]]) {
          equal((await get(`${base}${p}`)).x, x, p);
        }
        equal(origin.count("/t/1"), 2);
      });

      await t.step("bad keys are refused", async () => {
        for (const key of ["", "a b", "a,b", 7]) equal((await purge(node!, { key })).status, 400);
        equal((await purge(node!, { key: "a", soft: "maybe" })).status, 400);
      });

      await t.step("tags survive a restart with the store", async () => {
        await stopAll([node]);
        node = await startNode("a", `${dir}/a`, ["-o", origin.url]);
        const r = await purge(node, { key: "c" });
        assertEquals(r.body, { purged: 1, replicas: { a: 1 } });
        equal((await get(`${node.url}/t/2`)).x, "MISS");
        equal((await get(`${node.url}/t/1`)).x, "HIT");
      });

      await t.step("a soft purge keeps stale-while-revalidate", async () => {
        const u = `${node!.url}/s/1`;
        equal((await get(u)).x, "MISS");
        equal((await get(u)).x, "HIT");
        const r = await purge(node!, { url: "/s/1", soft: true });
        assertEquals(r.body, { purged: 1, replicas: { a: 1 } });
        const stale = await get(u);
        assertEquals([stale.x, stale.body], ["STALE", "s1"]);
        // Revalidated in the background with the stored validator (a 304), then fresh again.
        await waitUntil(() => origin.count("/s/1") === 2, 10_000, "a background revalidation");
        const seen = origin.seen.filter((s) => s.path === "/s/1").at(-1)!;
        equal(seen.headers.get("if-none-match"), '"s1"');
        await waitUntil(async () => (await get(u)).x === "HIT", 10_000, "/s/1 fresh again");
      });

      await t.step("a soft key purge makes the next request revalidate", async () => {
        const u = `${node!.url}/s/2`;
        equal((await get(u)).x, "MISS");
        assertEquals((await purge(node!, { key: "s", soft: true })).body, {
          purged: 1,
          replicas: { a: 1 },
        });
        const r = await get(u);
        assertEquals([r.x, r.body], ["REVALIDATED", "s2"]);
        equal(origin.count("/s/2"), 2);
        equal((await get(u)).x, "HIT");
      });

      await t.step("a soft purge survives a restart", async () => {
        const u = `/s/2`;
        await purge(node!, { url: u, soft: true });
        await stopAll([node]);
        node = await startNode("a", `${dir}/a`, ["-o", origin.url]);
        equal((await get(`${node.url}${u}`)).x, "REVALIDATED");
      });
    } finally {
      await stopAll([node]);
      await origin.close();
    }
  });
});
