/**
 * Image transcodes within the memory allowance (issue 12, `lib/image/memory.ts`): a replica with
 * a small `--image-memory` serves the original when a variant does not fit, counts it and tells
 * it in its log and metrics; reservations are released after errors, timeouts and a worker ended
 * at its deadline; background work waits for room or skips what never fits; an idle worker ends.
 */
import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import { startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";
import { magick, softScene } from "./_image_helpers.ts";
import { jpegDecodeBytes, MemoryAllowance, transcodeBytes } from "../lib/image/memory.ts";
import { createJpegDecoder } from "../lib/image/jpeg.ts";
import { probeImage } from "../lib/image/probe.ts";
import { ImageLayer } from "../lib/image/serve.ts";

const MIB = 1024 * 1024;

/** A JPEG photo; `sampling` as ImageMagick's `-sampling-factor` (its default at -quality 90 is 4:4:4). */
async function photo(w = 1600, h = 900, sampling = "4:2:0"): Promise<Uint8Array<ArrayBuffer>> {
  const raw = ["-size", `${w}x${h}`, "-depth", "8", "rgba:-"];
  const args = [...raw, "-quality", "90", "-sampling-factor", sampling, "jpg:-"];
  return new Uint8Array(await magick(args, softScene(w, h)));
}

/** The value of one metric line in Prometheus text. */
function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  if (m === null) throw new Error(`no ${name} in metrics:\n${text}`);
  return Number(m[1]);
}

async function until(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("image memory: the JPEG estimate follows the sampling factors, as the decoder lays out its buffers", async () => {
  const PAGE = 64 * 1024;
  const cases: [string, number[][]][] = [
    ["4:4:4", [[1, 1], [1, 1], [1, 1]]],
    ["4:2:2", [[2, 1], [1, 1], [1, 1]]],
    ["4:2:0", [[2, 2], [1, 1], [1, 1]]],
  ];
  const w = 1000, h = 700;
  const perPixel: number[] = [];
  for (const [name, want] of cases) {
    const jpg = await photo(w, h, name);
    const info = probeImage(jpg)!;
    deepStrictEqual(info.sampling, want, name);
    for (let shift = 0; shift <= 3; shift++) {
      const d = createJpegDecoder();
      const fresh = d.memoryBytes;
      d.decode(jpg, shift, true);
      const est = jpegDecodeBytes(w, h, info.sampling!, shift);
      // The decoder's memory holds its static data, the input and what it laid out; it grows
      // by whole pages. The estimate covers the layout and is not above it by a page.
      ok(
        d.memoryBytes <= fresh + jpg.length + est + PAGE,
        `${name} 1/${2 ** shift}: ${d.memoryBytes} > ${fresh} + ${jpg.length} + ${est}`,
      );
      ok(
        d.memoryBytes + PAGE >= fresh + est,
        `${name} 1/${2 ** shift}: estimate ${est} above ${d.memoryBytes - fresh}`,
      );
    }
    perPixel.push(Math.round(jpegDecodeBytes(w, h, info.sampling!, 3) / (w * h)));
  }
  // Coefficients of every block whatever the scale: 6, 4 and 3 bytes per pixel (+ small planes).
  deepStrictEqual(perPixel, [6, 4, 3]);
  const grey = await magick(["-size", `${w}x${h}`, "xc:gray50", "-quality", "90", "jpg:-"]);
  const g = probeImage(grey)!;
  equal(g.sampling?.length, 1);
  ok(transcodeBytes(g, grey.length, 320) < transcodeBytes(info444(w, h), grey.length, 320));
  // Unknown sampling counts as 4:4:4, the largest.
  equal(
    transcodeBytes({ format: "jpeg", width: w, height: h }, 0, 320),
    transcodeBytes(info444(w, h), 0, 320),
  );
});

function info444(width: number, height: number) {
  return { format: "jpeg" as const, width, height, sampling: [[1, 1], [1, 1], [1, 1]] as const };
}

Deno.test("--image-memory: a variant that does not fit is served as the original, counted and logged", async () => {
  const jpg = await photo();
  const info = probeImage(jpg)!;
  const small = transcodeBytes(info, jpg.length, 320);
  const big = transcodeBytes(info, jpg.length, 1280);
  ok(small < 10 * MIB && big > 10 * MIB, `estimates ${small} and ${big} around 10 MiB`);
  const origin = await startOrigin({
    "/big.jpg": {
      body: jpg,
      headers: { "content-type": "image/jpeg", "cache-control": "max-age=600", etag: '"b"' },
    },
  });
  const replica = await startReplica([
    "-o",
    origin.url,
    "--images",
    "on-the-fly",
    "--image-memory",
    "10MiB",
  ]);
  try {
    const fits = await fetch(`${replica.url}/big.jpg?w=320`);
    equal(fits.headers.get("x-nearcast-variant"), "w=320;q=80;fmt=jpeg");
    equal(probeImage(new Uint8Array(await fits.arrayBuffer()))?.width, 320);
    const refused = await fetch(`${replica.url}/big.jpg?w=1280`);
    equal(refused.status, 200);
    equal(refused.headers.get("x-nearcast-variant"), "w=orig;memory");
    equal(refused.headers.get("content-type"), "image/jpeg");
    deepStrictEqual(new Uint8Array(await refused.arrayBuffer()), jpg);
    const line = await replica.waitFor(/image memory: serving the original/);
    ok(line.includes(`/big.jpg w=1280;q=80;fmt=jpeg needs ${big} bytes`), line);
    ok(line.includes(`of ${10 * MIB} reserved`), line);
    const text = await (await fetch(`${replica.url}/_cdn/metrics`)).text();
    equal(metric(text, "nearcast_http_image_memory_limit_bytes"), 10 * MIB);
    equal(metric(text, "nearcast_http_image_memory_refused_total"), 1);
    equal(metric(text, "nearcast_http_image_memory_reserved_bytes"), 0, "released after the 320");
    equal(metric(text, "nearcast_http_image_memory_peak_bytes"), small);
    equal(metric(text, "nearcast_http_image_variants_computed_total"), 1);
  } finally {
    await replica.close();
    await origin.close();
  }
});

Deno.test("image memory: reservations are released after a timeout, a decode error and a worker's deadline", async () => {
  const jpg = await photo();
  const next = (body: Uint8Array<ArrayBuffer>) => () =>
    new Response(body, { headers: { "content-type": "image/jpeg" } });

  // Timed out for the request: the bytes stay reserved while the worker still works, then go.
  const hasty = new ImageLayer({ timeoutMs: 1 });
  try {
    const late = await hasty.handle(
      new Request("http://cdn.test/a.jpg?w=1280"),
      "203.0.113.5",
      next(jpg),
    );
    equal(late.headers.get("x-nearcast-variant"), "w=orig;timeout");
    await late.arrayBuffer();
    equal(hasty.memory.reserved, transcodeBytes(probeImage(jpg)!, jpg.length, 1280));
    await until(() => hasty.stats.computed === 1, "the transcode ends");
    equal(hasty.memory.reserved, 0);
  } finally {
    hasty.close();
  }

  // A header that probes as 1600x900 followed by garbage: the decode fails in the worker.
  const sos = jpg.findIndex((b, i) => b === 0xff && jpg[i + 1] === 0xda);
  const broken = new Uint8Array(sos + 4096).fill(0x5a);
  broken.set(jpg.subarray(0, sos + 2));
  equal(probeImage(broken)?.width, 1600);
  const layer = new ImageLayer({});
  try {
    const bad = await layer.handle(
      new Request("http://cdn.test/bad.jpg?w=640"),
      "203.0.113.5",
      next(broken),
    );
    equal(bad.headers.get("x-nearcast-variant"), "w=orig;timeout");
    await bad.arrayBuffer();
    equal(layer.memory.reserved, 0);
    ok(layer.memory.peak > 0);
  } finally {
    layer.close();
  }

  // A worker that does not answer within its deadline is ended, and its jobs' bytes released.
  const stuck = new ImageLayer({ workerDeadlineMs: 1 });
  try {
    const r = await stuck.handle(
      new Request("http://cdn.test/a.jpg?w=1280"),
      "203.0.113.5",
      next(jpg),
    );
    equal(r.headers.get("x-nearcast-variant"), "w=orig;timeout");
    await r.arrayBuffer();
    equal(stuck.memory.reserved, 0);
    equal(stuck.workers.deadlineEnded, 1);
    equal(stuck.workers.alive, 0);
  } finally {
    stuck.close();
  }
});

Deno.test("image memory: background work skips what never fits, and waits for room", async () => {
  const jpg = await photo();
  const lines: string[] = [];
  const layer = new ImageLayer({
    mode: "precompute",
    memoryBytes: 10 * MIB,
    log: (l) => lines.push(l),
  });
  try {
    const first = await layer.handle(
      new Request("http://cdn.test/a.jpg?w=640"),
      "203.0.113.5",
      () => new Response(jpg, { headers: { "content-type": "image/jpeg" } }),
    );
    equal(first.headers.get("x-nearcast-variant"), "w=orig;pending");
    await first.arrayBuffer();
    await until(() => !layer.precomputing, "the ladder is done");
    // 320 at q80 and q50 (JPEG and WebP) fit in 10 MiB; 640, 1280 and the original at q50
    // never do.
    equal(layer.stats.precomputed, 4);
    equal(layer.stats.memorySkipped, 9);
    equal(layer.memory.reserved, 0);
    equal(lines.length, 1, "one line per 10 s at most");
    ok(lines[0].startsWith("image memory: not precomputed (over the whole allowance): /a.jpg"));
  } finally {
    layer.close();
  }

  // Another transcode holds most of the allowance: the background waits, and a request for the
  // variant it waits to make gets the original at once (not after the 5 s timeout); once the
  // bytes are released, the ladder is made.
  const held = 60 * MIB;
  const waits: string[] = [];
  const both = new ImageLayer({ mode: "both", memoryBytes: 64 * MIB, log: (l) => waits.push(l) });
  try {
    ok(both.memory.tryReserve(held));
    const next = () => new Response(jpg, { headers: { "content-type": "image/jpeg" } });
    const r = await both.handle(new Request("http://cdn.test/a.jpg?w=320"), "203.0.113.5", next);
    equal(r.headers.get("x-nearcast-variant"), "w=orig;memory");
    await r.arrayBuffer();
    await until(() => both.stats.memoryDeferred === 1, "the background waits");
    equal(both.stats.precomputed, 0);
    ok(both.precomputing);
    equal(both.stats.memoryRefused, 1);
    ok(waits[0].startsWith("image memory: precompute deferred until memory is free: /a.jpg"));
    both.memory.release(held);
    await until(() => !both.precomputing, "the ladder is done");
    equal(both.stats.precomputed, 13);
    equal(both.memory.reserved, 0);
  } finally {
    both.close();
  }

  const m = new MemoryAllowance(100);
  ok(m.tryReserve(60));
  let started = false;
  const waiting = m.reserve(50).then(() => started = true);
  await new Promise((r) => setTimeout(r, 10));
  equal(started, false, "50 more do not fit while 60 are held");
  ok(m.tryReserve(40), "a request does not queue behind background work");
  equal(m.tryReserve(1), false);
  m.release(60);
  m.release(40);
  await waiting;
  deepStrictEqual([m.reserved, m.peak, m.deferred, m.refused], [50, 100, 1, 1]);
  await rejects(() => m.reserve(101), /more than the allowance of 100/);
  m.release(50);
  equal(m.reserved, 0);
});

Deno.test("an idle transcoding worker is ended, and a new one starts with the next job", async () => {
  const jpg = await photo(800, 450);
  const layer = new ImageLayer({ workerIdleMs: 200 });
  const next = () => new Response(jpg, { headers: { "content-type": "image/jpeg" } });
  try {
    const a = await layer.handle(new Request("http://cdn.test/a.jpg?w=320"), "203.0.113.5", next);
    equal(a.headers.get("x-nearcast-variant"), "w=320;q=80;fmt=jpeg");
    await a.arrayBuffer();
    equal(layer.workers.alive, 1);
    await until(() => layer.workers.alive === 0, "the idle worker ends", 5000);
    equal(layer.workers.idleEnded, 1);
    const b = await layer.handle(new Request("http://cdn.test/a.jpg?w=640"), "203.0.113.5", next);
    equal(b.headers.get("x-nearcast-variant"), "w=640;q=80;fmt=jpeg");
    await b.arrayBuffer();
    equal(layer.workers.started, 2);
  } finally {
    layer.close();
  }
});
