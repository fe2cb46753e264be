/**
 * Uploads against cache fills, end to end on one node (`main_http.ts` with `--data`): an
 * acknowledged upload that does not fit the cache budget is never replaced by an origin answer
 * that was in flight for the same name, before or after a restart; the manifest lists only
 * what the store holds; and the store refuses to replace a pinned object with a fill.
 */
import { deepStrictEqual, equal, notEqual, ok, rejects } from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { hashKey } from "../lib/cache/hash.ts";
import { TsLfru } from "../lib/cache/lfru.ts";
import { HttpCache, pinnedMeta } from "../lib/http/cache.ts";
import { openStore } from "../lib/store/sqlite_store.ts";
import {
  bytesOf,
  get,
  manifestOf,
  runUpload,
  sha256,
  startNode,
  stopAll,
  type TestNode,
  TOKEN,
  waitUntil,
  withTempDir,
} from "./_upload_cluster.ts";

/** An origin whose answers for every path wait until `release()`; counts requests. */
function gatedOrigin(body: string) {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  let count = 0;
  const ac = new AbortController();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: ac.signal,
    onListen: () => {},
  }, async () => {
    count++;
    await gate;
    return new Response(body, { headers: { "cache-control": "max-age=600" } });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    count: () => count,
    release,
    async close() {
      release();
      ac.abort();
      await server.finished;
    },
  };
}

Deno.test("upload: an origin answer in flight never replaces an upload larger than the cache", async () => {
  await withTempDir(async (dir) => {
    const origin = gatedOrigin("origin bytes, not the upload\n");
    let node: TestNode | null = null;
    try {
      node = await startNode("s", `${dir}/node`, ["-o", origin.url, "--cache-bytes", "64KiB"]);
      const bytes = bytesOf(300_000, 7);
      const want = await sha256(bytes);
      await Deno.writeFile(`${dir}/big.bin`, bytes);
      // A GET misses and waits on the origin while the upload lands.
      const pending = get(`${node.url}/big.bin`);
      await waitUntil(() => origin.count() === 1, 10_000, "the GET at the origin");
      const r = await runUpload([`${dir}/big.bin`, "--to", node.url, "--token", TOKEN]);
      equal(r.code, 0, r.err);
      origin.release();
      const first = await pending;
      equal(first.status, 200); // asked before the upload: either answer is right
      for (let i = 0; i < 2; i++) {
        const got = await get(`${node.url}/big.bin`);
        equal(got.status, 200);
        equal(await sha256(got.body), want, `GET ${i + 1} after the upload serves the upload`);
      }
      equal((await manifestOf(node.url)).get("big.bin"), want);
      await stopAll([node]);
      node = await startNode("s", `${dir}/node`, ["-o", origin.url, "--cache-bytes", "64KiB"]);
      const after = await get(`${node.url}/big.bin`);
      equal(after.status, 200);
      equal(await sha256(after.body), want, "the upload survives a restart");
      equal((await manifestOf(node.url)).get("big.bin"), want);
    } finally {
      await stopAll([node]);
      await origin.close();
    }
  });
});

Deno.test("upload: the manifest lists only what the store holds", async () => {
  await withTempDir(async (dir) => {
    const node = await startNode("s", `${dir}/node`);
    try {
      const bytes = bytesOf(5_000, 8);
      await Deno.writeFile(`${dir}/a.bin`, bytes);
      const r = await runUpload([`${dir}/a.bin`, "--to", node.url, "--token", TOKEN]);
      equal(r.code, 0, r.err);
      equal((await manifestOf(node.url)).get("a.bin"), await sha256(bytes));
      // The object disappears from under the node (as the cache-fill bug above made it do).
      const db = new DatabaseSync(`${dir}/node/store.sqlite`);
      try {
        db.exec("PRAGMA busy_timeout = 5000");
        db.prepare("DELETE FROM objects WHERE key = ?").run("/a.bin");
      } finally {
        db.close();
      }
      await waitUntil(
        async () => !(await manifestOf(node.url)).has("a.bin"),
        10_000,
        "a.bin gone from the manifest",
      );
    } finally {
      await stopAll([node]);
    }
  });
});

Deno.test("store: a put that is not pinned never replaces a pinned object", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, { fileThreshold: 16 });
    try {
      const upload = new Uint8Array(100).fill(1);
      await store.put("/f", "{}", upload, true);
      await rejects(store.put("/f", "{}", new Uint8Array(10).fill(2)), /pinned/);
      await rejects(store.put("/f", "{}", new Uint8Array(1000).fill(3)), /pinned/);
      const stream = new Blob([new Uint8Array(50)]).stream();
      await rejects(store.putStream("/f", "{}", stream), /pinned/);
      const head = store.head("/f");
      ok(head !== null && head.pinned);
      deepStrictEqual(await store.read("/f"), upload);
      // A pinned put replaces a pinned one (a new version of the upload).
      await store.put("/f", "{}", new Uint8Array(20).fill(4), true);
      notEqual(store.head("/f")?.sha256, head.sha256);
    } finally {
      store.close();
    }
  });
});

Deno.test("cache: a fill racing an upload's store write leaves the upload, in store and cache", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir);
    const errors: string[] = [];
    const cache = new HttpCache({
      index: new TsLfru(1 << 20),
      hashKey,
      store,
      maxObjectBytes: 1 << 20,
      via: "1.1 t",
      onStoreError: (m) => errors.push(m),
    });
    try {
      const upload = new Uint8Array(100).fill(1);
      // The upload's row is committed; its installPinned has not run yet.
      await store.put("/f", pinnedMeta("/f", [], {}), upload, true);
      const t = Date.now();
      const put = await cache.put("/f", new Headers(), {
        status: 200,
        headers: [["cache-control", "max-age=60"]],
        body: new Uint8Array(10).fill(2),
        requestTime: t,
        responseTime: t,
      });
      equal(put, null, "the refused fill is not held");
      equal(cache.get("/f"), null, "the refused fill is not served");
      ok(store.head("/f")?.pinned);
      deepStrictEqual(await store.read("/f"), upload);
      equal(errors.length, 1);
      // Once installed (even without room in the index), fills are not cached for the URL.
      cache.installPinned("/f", [], upload.byteLength);
      equal(
        await cache.put("/f", new Headers(), {
          status: 200,
          headers: [["cache-control", "max-age=60"]],
          body: new Uint8Array(10).fill(3),
          requestTime: t,
          responseTime: t,
        }),
        null,
      );
    } finally {
      store.close();
    }
  });
});
