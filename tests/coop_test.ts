/**
 * Cooperative caching (`--coop`) between two replicas of one membership: summaries travel
 * (versioned by heartbeats), a miss on B for an object A holds is filled from A without the
 * origin, a miss no member claims goes to the origin without asking A, and B prefetches what
 * is hot on A.
 */
import { deepStrictEqual as assertEquals, equal, match, ok } from "node:assert/strict";
import { startOrigin } from "./_http_origin.ts";
import {
  startNode,
  stopAll,
  type TestNode,
  tfetch,
  waitUntil,
  withTempDir,
} from "./_upload_cluster.ts";

/** Generous: summaries travel with heartbeats, slow on a loaded machine. */
const WAIT_MS = 60_000;

async function get(url: string) {
  const res = await tfetch(url);
  return { status: res.status, body: await res.text(), x: res.headers.get("x-cache"), res };
}

/** `node`'s coop health: the summaries it holds and its counters. */
async function coopOf(node: TestNode) {
  const res = await tfetch(`${node.url}/_cdn/health`);
  return (await res.json()).coop as {
    version: string;
    peers: { id: string; version: string; hot: number }[];
    prefetches: number;
    prefetchedBytes: number;
  };
}

Deno.test("cooperative caching between two replicas", async (t) => {
  const routes: Record<string, { headers: Record<string, string>; body: string }> = {};
  for (const p of ["/x", "/y", "/hot"]) {
    routes[p] = { headers: { "cache-control": "max-age=600" }, body: `object ${p}` };
  }
  const origin = await startOrigin(routes);
  await withTempDir(async (dir) => {
    const nodes: TestNode[] = [];
    try {
      const coop = ["-o", origin.url, "--coop", "--coop-prefetch-rate", "1MiB"];
      // A's access log (standard output) shows every request it receives, peer asks included.
      const a = await startNode("a", `${dir}/a`, [...coop, "--access-log", "-"]);
      nodes.push(a);
      const b = await startNode("b", `${dir}/b`, [...coop, "--join", a.url]);
      nodes.push(b);

      await t.step("a miss on B is served from A, not the origin", async () => {
        equal((await get(`${a.url}/x`)).x, "MISS");
        equal(origin.count("/x"), 1);
        // A's next summary (rebuilt every heartbeat) lists /x; B fetches it once announced.
        const before = (await coopOf(a)).version;
        await waitUntil(
          async () => {
            const [ca, cb] = [await coopOf(a), await coopOf(b)];
            return ca.version !== before &&
              cb.peers.some((p) => p.id === "a" && p.version === ca.version);
          },
          WAIT_MS,
          "B to hold A's summary listing /x",
        );
        const r = await get(`${b.url}/x`);
        assertEquals([r.status, r.x, r.body], [200, "MISS", "object /x"]);
        match(r.res.headers.get("via") ?? "", /nearcast-a/, "filled from A");
        equal(origin.count("/x"), 1, "the origin was not asked again");
        equal((await get(`${b.url}/x`)).x, "HIT");
      });

      await t.step("a miss no member claims goes to the origin without asking A", async () => {
        const asked = (path: string) => a.proc.lines.some((l) => l.includes(`"GET ${path} `));
        ok(asked("/x"), "B's peer request for /x is in A's access log");
        const r = await get(`${b.url}/y`);
        assertEquals([r.status, r.x], [200, "MISS"]);
        equal(origin.count("/y"), 1);
        ok(!(r.res.headers.get("via") ?? "").includes("nearcast-a"));
        ok(!asked("/y"), "A was not asked for /y");
      });

      await t.step("B prefetches what is hot on A", async () => {
        for (let i = 0; i < 5; i++) await get(`${a.url}/hot`);
        equal(origin.count("/hot"), 1);
        await waitUntil(async () => (await coopOf(b)).prefetches >= 1, WAIT_MS, "B to prefetch");
        const r = await get(`${b.url}/hot`);
        assertEquals([r.status, r.x, r.body], [200, "HIT", "object /hot"]);
        equal(origin.count("/hot"), 1, "prefetched from A, not from the origin");
        ok((await coopOf(b)).prefetchedBytes >= "object /hot".length);
      });
    } finally {
      await stopAll(nodes);
      await origin.close();
    }
  });
});
