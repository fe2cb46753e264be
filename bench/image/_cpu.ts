/**
 * The in-process part of the image experiment: the CPU and bytes of each image's precomputed
 * ladder (storage overhead), and a Zipf stream of requests from four link classes (Downlink
 * hints 0.5, 2, 10, 100 Mbit/s) through a replica and its image layer in each mode, for the
 * variant hit ratio, the CPU spent per variant on the fly and in the background, and the bytes
 * served.
 *
 * @module
 */
import { cpuUsage } from "node:process";
import { startOrigin } from "../../tests/_http_origin.ts";
import { createReplica } from "../../lib/http/replica.ts";
import { TsLfru } from "../../lib/cache/lfru.ts";
import { hashKey } from "../../lib/cache/hash.ts";
import { DEFAULT_LADDER } from "../../lib/image/ladder.ts";
import { transcode } from "../../lib/image/pipeline.ts";
import { probeImage } from "../../lib/image/probe.ts";
import { ImageLayer, type ImageMode, type ImageStats } from "../../lib/image/serve.ts";
import { chosenRungs, rungHeader } from "../../lib/image/variant.ts";
import { type Corpus, zipfSequence } from "./_corpus.ts";

/** The ladder of one image. */
export interface LadderCost {
  path: string;
  width: number;
  originalBytes: number;
  variants: { rung: string; bytes: number; cpuMs: number }[];
}

function cpuMs(since: { user: number; system: number }): number {
  const d = cpuUsage(since);
  return (d.user + d.system) / 1000;
}

/**
 * Every precomputed rung (`chosenRungs`: JPEG and WebP) of every corpus image, timed (process
 * CPU, in this thread) one at a time.
 */
export async function ladderCosts(corpus: Corpus): Promise<LadderCost[]> {
  const out: LadderCost[] = [];
  // Untimed first: compiling the WASM modules and warming the JIT is no variant's cost.
  await transcode(await Deno.readFile(`${corpus.dir}/photo.jpg`), { width: 320, format: "jpeg" });
  for (const path of ["/photo.jpg", ...corpus.pages]) {
    const bytes = await Deno.readFile(`${corpus.dir}${path}`);
    const info = probeImage(bytes)!;
    const variants = [];
    for (const r of chosenRungs(DEFAULT_LADDER, info.width, info.format)) {
      if (r.width === "original" && r.quality === DEFAULT_LADDER.qualities[0]) continue;
      const width = r.width === "original" ? undefined : r.width;
      const c0 = cpuUsage();
      const t = await transcode(bytes, { width, quality: r.quality, format: r.format });
      variants.push({
        rung: rungHeader(r.width, r.quality, r.format),
        bytes: t.bytes.length,
        cpuMs: cpuMs(c0),
      });
    }
    out.push({ path, width: info.width, originalBytes: bytes.length, variants });
  }
  return out;
}

/** One Zipf stream through one mode and cache budget. */
export interface StreamResult {
  mode: ImageMode;
  cacheBytes: number;
  requests: number;
  stats: ImageStats;
  /** Variant requests answered from a stored variant. */
  hitRatio: number;
  bytesServed: number;
  cpuMs: number;
  p50Ms: number;
  p95Ms: number;
  /** Bytes of variants held in the cache at the end. */
  variantBytesHeld: number;
}

const CLASSES = [0.5, 2, 10, 100];

/** `n` requests, Zipf(1) over the photo and the page images, one every `gapMs`. */
export async function zipfStream(
  corpus: Corpus,
  mode: ImageMode,
  cacheBytes: number,
  n: number,
  gapMs: number,
): Promise<StreamResult> {
  const paths = ["/photo.jpg", ...corpus.pages];
  const routes: Record<string, { body: Uint8Array<ArrayBuffer>; headers: Record<string, string> }> =
    {};
  for (const p of paths) {
    routes[p] = {
      body: await Deno.readFile(`${corpus.dir}${p}`),
      headers: { "content-type": "image/jpeg", "cache-control": "max-age=3600" },
    };
  }
  const origin = await startOrigin(routes);
  const layer = new ImageLayer({ mode });
  const replica = createReplica({
    origin: origin.url,
    id: "x",
    index: new TsLfru(cacheBytes),
    hashKey,
    cacheEvents: layer.cacheEvents,
    log: () => {},
  });
  layer.attach(replica.cache, null);
  const ranks = zipfSequence(n, paths.length, 7);
  const lat: number[] = [];
  let bytes = 0;
  const c0 = cpuUsage();
  try {
    for (let i = 0; i < n; i++) {
      const mbit = CLASSES[i % CLASSES.length];
      const t0 = performance.now();
      const res = await layer.handle(
        new Request(`http://cdn.test${paths[ranks[i]]}`, {
          headers: { downlink: String(mbit), "sec-ch-viewport-width": "1600" },
        }),
        `10.0.${i % CLASSES.length}.2`,
        replica.handler,
      );
      bytes += (await res.arrayBuffer()).byteLength;
      lat.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, gapMs));
    }
    for (let i = 0; i < 1200 && layer.precomputing; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const held = [...replica.cache.entries()].filter((e) => e.url.includes(" #img:"));
    lat.sort((a, b) => a - b);
    const s = layer.stats;
    return {
      mode,
      cacheBytes,
      requests: n,
      stats: { ...s },
      hitRatio: s.variantRequests === 0 ? 0 : s.cacheHits / s.variantRequests,
      bytesServed: bytes,
      cpuMs: cpuMs(c0),
      p50Ms: lat[Math.floor(n * 0.5)],
      p95Ms: lat[Math.floor(n * 0.95)],
      variantBytesHeld: held.reduce((a, e) => a + e.size, 0),
    };
  } finally {
    layer.close();
    await replica.close();
    await origin.close();
  }
}
