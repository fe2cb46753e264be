/**
 * Cooperative caching (`--coop`) between two replicas of one membership: every URL has a
 * home member (rendezvous hashing over the live members), which a miss elsewhere asks to fill
 * it; the asking replica keeps a copy only on a second miss, within its copy budget; a miss
 * no member claims goes to the origin without asking the other; a replica prefetches what is
 * hot on the other.
 */
import { deepStrictEqual as assertEquals, equal, match, ok } from "node:assert/strict";
import { homeOf } from "../lib/coop/home.ts";
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
const IDS = ["a", "b"];

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await tfetch(url, { headers });
  return { status: res.status, body: await res.text(), x: res.headers.get("x-cache"), res };
}

/** Whether `node` holds `path` (asked with `only-if-cached`: 504 when it does not). */
async function holds(node: TestNode, path: string): Promise<boolean> {
  const r = await get(`${node.url}${path}`, { "cache-control": "only-if-cached" });
  return r.status === 200;
}

/** `node`'s coop health: the summaries it holds and its counters. */
async function coopOf(node: TestNode) {
  const res = await tfetch(`${node.url}/_cdn/health`);
  return (await res.json()).coop as {
    version: string;
    peers: { id: string; version: string; hot: number }[];
    prefetches: number;
    prefetchedBytes: number;
    homeAsks: number;
    memberFills: number;
    copies: number;
    copiesRemoved: number;
  };
}

/** `n` paths under `prefix` whose home is `home` among {@link IDS}. */
function pathsHomedAt(home: string, prefix: string, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) {
    if (homeOf(`${prefix}${i}`, IDS) === home) out.push(`${prefix}${i}`);
  }
  return out;
}

Deno.test("cooperative caching between two replicas", async (t) => {
  const [onA, onA2, hot, large] = pathsHomedAt("a", "/a", 4);
  const [onB] = pathsHomedAt("b", "/b", 1);
  const budgeted = pathsHomedAt("a", "/c", 4);
  const routes: Record<string, { headers: Record<string, string>; body: string }> = {};
  for (const p of [onA, onA2, hot, onB, ...budgeted]) {
    routes[p] = { headers: { "cache-control": "max-age=600" }, body: `object ${p}`.padEnd(900) };
  }
  // Past 1 MiB: written to the store as it arrives.
  routes[large] = { headers: { "cache-control": "max-age=600" }, body: "x".repeat(1_100_000) };
  const origin = await startOrigin(routes);
  await withTempDir(async (dir) => {
    const nodes: TestNode[] = [];
    try {
      const coop = ["-o", origin.url, "--coop", "--coop-prefetch-rate", "1MiB"];
      // A's access log (standard output) shows every request it receives, peer asks included.
      const a = await startNode("a", `${dir}/a`, [...coop, "--access-log", "-"]);
      nodes.push(a);
      // B keeps at most about two copies of other homes' objects (each ~3 KiB accounted).
      const b = await startNode("b", `${dir}/b`, [
        ...coop,
        "--coop-copy-bytes",
        "7KiB",
        "--join",
        a.url,
      ]);
      nodes.push(b);
      // Both see each other alive and hold each other's summary.
      await waitUntil(
        async () => {
          const [ca, cb] = [await coopOf(a), await coopOf(b)];
          return ca.peers.some((p) => p.id === "b") && cb.peers.some((p) => p.id === "a");
        },
        WAIT_MS,
        "A and B to hold each other's summary",
      );

      await t.step(
        "a miss on B of an object homed at A is filled by A and kept there only",
        async () => {
          const r = await get(`${b.url}${onA}`);
          assertEquals([r.status, r.x, r.body.trim()], [200, "MISS", `object ${onA}`]);
          match(r.res.headers.get("via") ?? "", /nearcast-a/, "filled through A");
          equal(origin.count(onA), 1);
          ok(await holds(a, onA), "A, the home, holds it");
          ok(!(await holds(b, onA)), "B kept no copy of a first miss");
          equal((await coopOf(a)).memberFills, 1);
        },
      );

      await t.step("a second miss on B keeps a copy", async () => {
        equal((await get(`${b.url}${onA2}`)).x, "MISS");
        const r = await get(`${b.url}${onA2}`);
        assertEquals([r.status, r.x], [200, "MISS"]);
        match(r.res.headers.get("via") ?? "", /nearcast-a/, "served from A's copy");
        equal((await get(`${b.url}${onA2}`)).x, "HIT");
        equal(origin.count(onA2), 1, "the origin was asked once");
      });

      await t.step("a large object filled from A is kept on a first miss, as a copy", async () => {
        const copies = (await coopOf(b)).copies;
        const r = await get(`${b.url}${large}`);
        assertEquals([r.status, r.body.length], [200, 1_100_000]);
        ok(await holds(b, large), "B streamed it to its store");
        equal((await coopOf(b)).copies, copies + 1, "counted as a copy");
        equal(origin.count(large), 1);
      });

      await t.step("B prefetches what is hot on A", async () => {
        for (let i = 0; i < 5; i++) await get(`${a.url}${hot}`);
        equal(origin.count(hot), 1);
        // An object's score decays by half every summary rebuild (one heartbeat), so hits that
        // stopped are "hot" for a few rounds only, which a loaded machine can miss: it stays
        // requested on A while B is watched, as a hot object is.
        await waitUntil(
          async () => {
            await get(`${a.url}${hot}`);
            return await holds(b, hot);
          },
          WAIT_MS,
          "B to prefetch it",
        );
        ok((await coopOf(b)).prefetches >= 1);
        const r = await get(`${b.url}${hot}`);
        assertEquals([r.status, r.x, r.body.trim()], [200, "HIT", `object ${hot}`]);
        equal(origin.count(hot), 1, "prefetched from A, not from the origin");
        ok((await coopOf(b)).prefetchedBytes >= 900);
      });
      await t.step("copies stay within --coop-copy-bytes", async () => {
        for (const p of budgeted) {
          await get(`${b.url}${p}`);
          await get(`${b.url}${p}`);
        }
        const kept = (await Promise.all(budgeted.map((p) => holds(b, p)))).filter((x) => x);
        ok(kept.length <= 2, `B holds ${kept.length} of 4 copies`);
        ok((await coopOf(b)).copiesRemoved >= 2);
        for (const p of budgeted) ok(await holds(a, p), `A, the home, still holds ${p}`);
      });

      await t.step("a miss homed here that no member claims goes to the origin alone", async () => {
        const asked = (path: string) => a.proc.lines.some((l) => l.includes(`"GET ${path} `));
        ok(asked(onA), "B's requests for objects homed at A are in A's access log");
        const r = await get(`${b.url}${onB}`);
        assertEquals([r.status, r.x], [200, "MISS"]);
        equal(origin.count(onB), 1);
        ok(!(r.res.headers.get("via") ?? "").includes("nearcast-a"));
        ok(!asked(onB), `A was not asked for ${onB}`);
      });
    } finally {
      await stopAll(nodes);
      await origin.close();
    }
  });
});

Deno.test("homeOf: one home per URL, spread evenly; a member leaving moves only its own URLs", () => {
  const ids = ["r0", "r1", "r2"];
  const urls = Array.from({ length: 3000 }, (_, i) => `/o/${i}`);
  const homes = urls.map((u) => homeOf(u, ids));
  for (const id of ids) {
    const n = homes.filter((h) => h === id).length;
    ok(n > 800 && n < 1200, `${id} is home for ${n} of 3000`);
  }
  equal(homeOf("/o/1", [...ids].reverse()), homes[1], "the order of the members does not matter");
  const after = urls.map((u) => homeOf(u, ["r0", "r2"]));
  for (let i = 0; i < urls.length; i++) {
    if (homes[i] !== "r1") equal(after[i], homes[i], `${urls[i]} stays where it was`);
  }
});

Deno.test("a member joining becomes home for a share of the URLs and fills them from the old home", async () => {
  // Homed on b while a and b are the members, on c once c has joined.
  let moved = "";
  for (let i = 0; moved === ""; i++) {
    const p = `/m${i}`;
    if (homeOf(p, ["a", "b"]) === "b" && homeOf(p, ["a", "b", "c"]) === "c") moved = p;
  }
  const origin = await startOrigin({
    [moved]: { headers: { "cache-control": "max-age=600" }, body: `object ${moved}` },
  });
  await withTempDir(async (dir) => {
    const nodes: TestNode[] = [];
    try {
      const coop = ["-o", origin.url, "--coop", "--coop-prefetch-rate", "0"];
      const a = await startNode("a", `${dir}/a`, coop);
      nodes.push(a);
      const b = await startNode("b", `${dir}/b`, [...coop, "--join", a.url]);
      nodes.push(b);
      const peersOf = async (n: TestNode) => (await coopOf(n)).peers.map((p) => p.id).sort();
      await waitUntil(async () => (await peersOf(a)).includes("b"), WAIT_MS, "A to see B");
      equal((await get(`${a.url}${moved}`)).x, "MISS");
      ok(await holds(b, moved), "B, the home, holds it");
      ok(!(await holds(a, moved)));

      const c = await startNode("c", `${dir}/c`, [...coop, "--join", a.url]);
      nodes.push(c);
      // C holds a summary of B listing the object, and A counts C among the live members.
      await waitUntil(
        async () => (await peersOf(a)).join() === "b,c" && (await peersOf(c)).join() === "a,b",
        WAIT_MS,
        "A and C to see every member",
      );
      const r = await get(`${a.url}${moved}`);
      assertEquals([r.status, r.x, r.body], [200, "MISS", `object ${moved}`]);
      match(r.res.headers.get("via") ?? "", /nearcast-b.*nearcast-c/, "from B's copy through C");
      ok(await holds(c, moved), "C, the new home, holds it");
      equal(origin.count(moved), 1, "the origin was asked once");
    } finally {
      await stopAll(nodes);
      await origin.close();
    }
  });
});
