/**
 * Variants in the replica's own cache and store: precomputed when an image enters the cache (an
 * origin fill, an upload) without any request through the image layer, counted in the cache's
 * budget, stored after an on-the-fly computation, dropped with their original (purge, eviction,
 * delete), pinned with an upload and kept across a restart.
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { startOrigin } from "./_http_origin.ts";
import { magick, softScene } from "./_image_helpers.ts";
import {
  startNode,
  stopAll,
  type TestNode,
  tfetch,
  TOKEN,
  waitUntil,
  withTempDir,
} from "./_upload_cluster.ts";
import { runUpload } from "./_upload_cluster.ts";
import { createReplica } from "../lib/http/replica.ts";
import { TsLfru } from "../lib/cache/lfru.ts";
import { hashKey } from "../lib/cache/hash.ts";
import { ImageLayer } from "../lib/image/serve.ts";
import { probeImage } from "../lib/image/probe.ts";

const DERIVED = " #img:";

async function photo(w = 1600, h = 900): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(
    await magick(["-size", `${w}x${h}`, "-depth", "8", "rgba:-", "jpg:-"], softScene(w, h)),
  );
}

async function settle(layer: ImageLayer): Promise<void> {
  for (let i = 0; i < 600 && layer.precomputing; i++) await new Promise((r) => setTimeout(r, 50));
  equal(layer.precomputing, false, "the ladder was not finished within 30 s");
}

Deno.test("an origin fill's ladder is precomputed into the replica's cache, and goes with it", async () => {
  const jpg = await photo();
  const origin = await startOrigin({
    "/a.jpg": {
      body: jpg,
      headers: { "content-type": "image/jpeg", "cache-control": "max-age=600" },
    },
    "/b.jpg": {
      body: jpg,
      headers: { "content-type": "image/jpeg", "cache-control": "max-age=600" },
    },
  });
  const layer = new ImageLayer({ mode: "both" });
  const replica = createReplica({
    origin: origin.url,
    id: "t",
    index: new TsLfru(64 * 1024 * 1024),
    hashKey,
    cacheEvents: layer.cacheEvents,
    log: () => {},
  });
  layer.attach(replica.cache, null);
  const variants = () => [...replica.cache.entries()].filter((e) => e.url.includes(DERIVED));
  try {
    // Filled through the replica alone: the layer is not asked, the cache tells it.
    const before = replica.cache.usedBytes;
    const res = await replica.handler(new Request(`http://cdn.test/a.jpg`));
    await res.arrayBuffer();
    await settle(layer);
    equal(
      layer.stats.precomputed,
      13,
      "320, 640, 1280 at q80 and q50 in JPEG and WebP, the original at q50",
    );
    equal(variants().length, 13);
    ok(variants().some((e) => e.url === `/a.jpg${DERIVED}w=640;q=50;fmt=webp`));
    const bytes = variants().reduce((n, e) => n + e.size, 0);
    ok(replica.cache.usedBytes - before > jpg.length + bytes, "variants count in the budget");

    const hit = await layer.handle(
      new Request("http://cdn.test/a.jpg?w=640"),
      "203.0.113.5",
      replica.handler,
    );
    equal(hit.headers.get("x-nearcast-variant"), "w=640;q=80;fmt=jpeg");
    equal(probeImage(new Uint8Array(await hit.arrayBuffer()))?.width, 640);
    deepStrictEqual([layer.stats.cacheHits, layer.stats.computed], [1, 13]);
    // WebP when Accept allows: precomputed too, served from the cache.
    const webp = await layer.handle(
      new Request("http://cdn.test/a.jpg?w=640", { headers: { accept: "image/webp,*/*" } }),
      "203.0.113.5",
      replica.handler,
    );
    equal(webp.headers.get("x-nearcast-variant"), "w=640;q=80;fmt=webp");
    equal(webp.headers.get("content-type"), "image/webp");
    ok(webp.headers.get("vary")?.includes("accept"));
    await webp.arrayBuffer();
    deepStrictEqual([layer.stats.cacheHits, layer.stats.computed], [2, 13]);

    // A purge of the original takes its variants.
    replica.cache.invalidate("/a.jpg");
    await new Promise((r) => setTimeout(r, 0));
    equal(variants().length, 0);

    // On the fly: stored in the cache after computing, dropped when the original is evicted.
    const fly = await layer.handle(
      new Request("http://cdn.test/b.jpg?w=320&fmt=webp"),
      "203.0.113.5",
      replica.handler,
    );
    await fly.arrayBuffer();
    await settle(layer);
    ok(variants().some((e) => e.url === `/b.jpg${DERIVED}w=320;q=80;fmt=webp`));
    const original = replica.cache.peek("/b.jpg")!;
    replica.cache.remove(original);
    await new Promise((r) => setTimeout(r, 0));
    equal(variants().length, 0);
    equal(origin.count("/a.jpg"), 1);
  } finally {
    await replica.close();
    await origin.close();
  }
});

type Listed = { url: string; pinned: boolean; size: number };

async function listed(node: TestNode): Promise<Listed[]> {
  const res = await tfetch(`${node.url}/_cdn/cache?limit=1000`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  equal(res.status, 200);
  return ((await res.json()).entries as Listed[]).filter((e) => e.url.includes(DERIVED));
}

Deno.test("an upload's ladder is pinned with it, kept across a restart, deleted with it", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/src`);
    await Deno.mkdir(`${dir}/n1`);
    await Deno.writeFile(`${dir}/src/photo.jpg`, await photo());
    let node: TestNode | null = await startNode("n1", `${dir}/n1`);
    try {
      const up = await runUpload([`${dir}/src/photo.jpg`, "--to", node.url, "--token", TOKEN]);
      equal(up.code, 0, up.err);
      await waitUntil(async () => (await listed(node!)).length === 13, 60_000, "13 variants");
      ok((await listed(node)).every((e) => e.pinned), "pinned like the upload");
      const v = await tfetch(`${node.url}/photo.jpg?w=320&q=50`);
      equal(v.headers.get("x-nearcast-variant"), "w=320;q=50;fmt=jpeg");
      equal(probeImage(new Uint8Array(await v.arrayBuffer()))?.width, 320);

      await node.proc.close();
      node = await startNode("n1", `${dir}/n1`);
      equal((await listed(node)).length, 13, "the variants are in the store");

      const del = await tfetch(`${node.url}/_cdn/files/photo.jpg`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      equal(del.status, 200);
      await del.body?.cancel();
      await waitUntil(async () => (await listed(node!)).length === 0, 10_000, "no variant");
      await node.proc.close();
      node = await startNode("n1", `${dir}/n1`);
      equal((await listed(node)).length, 0, "their store rows went too");
    } finally {
      await stopAll([node]);
    }
  });
});
