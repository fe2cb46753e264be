/**
 * `--images on-the-fly` on a real replica process in front of a test origin serving a JPEG and a
 * PNG: ladder parameters, 400 off the ladder, Client Hints, the original once in the cache,
 * validators and ranges of each variant, `--images off` leaving images alone, and the default
 * (`both`) with and without `--allow-ffi`.
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { startOrigin } from "./_http_origin.ts";
import { runReplicaCli, startReplica } from "./_http_replica.ts";
import { magick, softScene } from "./_image_helpers.ts";
import { probeImage } from "../lib/image/probe.ts";
import { ImageLayer } from "../lib/image/serve.ts";
import { ThroughputEstimator } from "../lib/image/throughput.ts";
import { Prober } from "../lib/fleet/replica/probe.ts";
import { parseIp } from "../lib/common/ip.ts";

const W = 1600, H = 900;

async function fixtures() {
  const raw = ["-size", `${W}x${H}`, "-depth", "8", "rgba:-"];
  const jpg = new Uint8Array(await magick([...raw, "-quality", "90", "jpg:-"], softScene(W, H)));
  const png = new Uint8Array(await magick([...raw, "png:-"], softScene(W, H)));
  return await startOrigin({
    "/photo.jpg": {
      body: jpg,
      headers: { "content-type": "image/jpeg", "cache-control": "max-age=600", etag: '"orig-1"' },
    },
    "/logo.png": {
      body: png,
      headers: { "content-type": "image/png", "cache-control": "max-age=600" },
    },
    "/page.html": {
      body: "<p>hi</p>",
      headers: { "content-type": "text/html", "cache-control": "max-age=600" },
    },
  }).then((origin) => ({ origin, jpg }));
}

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  const body = new Uint8Array(await res.arrayBuffer());
  return { res, body, info: probeImage(body) };
}

Deno.test("--images on-the-fly: variants from ?w=/?q=/?fmt= and Client Hints; 400 off the ladder", async () => {
  const { origin, jpg } = await fixtures();
  const replica = await startReplica(["-o", origin.url, "--images", "on-the-fly"]);
  try {
    const base = replica.url;
    const a = await get(`${base}/photo.jpg?w=640`);
    equal(a.res.status, 200);
    equal(a.res.headers.get("x-nearcast-variant"), "w=640;q=80;fmt=jpeg");
    equal(`${a.info?.format} ${a.info?.width}x${a.info?.height}`, "jpeg 640x360");
    ok(a.res.headers.get("accept-ch")?.includes("Sec-CH-Width"));
    const etag = a.res.headers.get("etag")!;
    ok(/^"img-[0-9a-f]{24}"$/.test(etag), `variant ETag ${etag}`);

    const bad = await get(`${base}/photo.jpg?w=641`);
    equal(bad.res.status, 400);
    ok(new TextDecoder().decode(bad.body).includes("?w= must be one of 320, 640, 1280 or orig"));

    const png = await get(`${base}/photo.jpg?w=320&fmt=png`);
    equal(`${png.res.headers.get("content-type")} ${png.info?.width}`, "image/png 320");

    const webp = await get(`${base}/photo.jpg?w=640`, { accept: "image/avif,image/webp,*/*" });
    equal(webp.res.headers.get("content-type"), "image/webp");
    equal(webp.res.headers.get("x-nearcast-variant"), "w=640;q=80;fmt=webp");
    const magic = new TextDecoder().decode(webp.body.subarray(0, 4)) +
      new TextDecoder().decode(webp.body.subarray(8, 12));
    equal(magic, "RIFFWEBP");
    ok(webp.res.headers.get("vary")?.toLowerCase().includes("accept"));

    // Validators and ranges apply to the variant chosen, with its own ETag.
    const same = await get(`${base}/photo.jpg?w=640`, { "if-none-match": etag });
    deepStrictEqual([same.res.status, same.body.length], [304, 0]);
    equal(same.res.headers.get("etag"), etag);
    const other = await get(`${base}/photo.jpg?w=320`, { "if-none-match": etag });
    equal(other.res.status, 200, "another rung does not match the 640 one's ETag");
    ok(other.res.headers.get("etag") !== etag);
    const ranged = await get(`${base}/photo.jpg?w=640`, { range: "bytes=0-99" });
    equal(ranged.res.status, 206);
    equal(ranged.res.headers.get("content-range"), `bytes 0-99/${a.body.length}`);
    deepStrictEqual(ranged.body, a.body.subarray(0, 100));
    const stale = await get(`${base}/photo.jpg?w=640`, {
      range: "bytes=0-99",
      "if-range": '"other"',
    });
    deepStrictEqual([stale.res.status, stale.body], [200, a.body]);
    const past = await get(`${base}/photo.jpg?w=640`, { range: `bytes=${a.body.length}-` });
    deepStrictEqual(
      [past.res.status, past.res.headers.get("content-range")],
      [416, `bytes */${a.body.length}`],
    );
    const two = await get(`${base}/photo.jpg?w=640`, { range: "bytes=0-1,10-11" });
    equal(two.res.status, 206);
    ok(two.res.headers.get("content-type")?.startsWith("multipart/byteranges; boundary="));

    const slow = await get(`${base}/photo.jpg`, { "save-data": "on" });
    equal(slow.res.headers.get("x-nearcast-variant"), "w=640;q=50;fmt=jpeg");
    ok(slow.res.headers.get("vary")?.toLowerCase().includes("save-data"));
    equal(slow.res.headers.get("cache-control"), "private");

    const wide = await get(`${base}/photo.jpg`, {
      "sec-ch-viewport-width": "600",
      "sec-ch-dpr": "2",
    });
    equal(wide.res.headers.get("x-nearcast-variant"), "w=1280;q=80;fmt=jpeg");

    // No hints on a fast loopback link: the original bytes, as the origin sent them.
    const orig = await get(`${base}/photo.jpg`);
    equal(orig.res.headers.get("x-nearcast-variant"), "w=orig;q=80;fmt=jpeg");
    deepStrictEqual(orig.body, jpg);
    const origTag = orig.res.headers.get("etag");
    equal(origTag, '"orig-1"', "the original keeps the origin's ETag");
    const origSame = await get(`${base}/photo.jpg`, { "if-none-match": origTag });
    equal(origSame.res.status, 304);
    const origPart = await get(`${base}/photo.jpg`, { range: "bytes=-10" });
    deepStrictEqual([origPart.res.status, origPart.body], [206, jpg.subarray(-10)]);

    const again = await get(`${base}/photo.jpg?w=640`);
    deepStrictEqual(again.body, a.body);
    equal(origin.count("/photo.jpg"), 1, "the original is fetched once and cached");

    const logo = await get(`${base}/logo.png?w=320`);
    equal(`${logo.info?.format} ${logo.info?.width}`, "png 320");
    // ?fmt=webp on a PNG, at its own width: WebP is an output format for any rung.
    const logoWebp = await get(`${base}/logo.png?fmt=webp`);
    equal(logoWebp.res.headers.get("content-type"), "image/webp");
    equal(logoWebp.res.headers.get("x-nearcast-variant"), "w=orig;q=80;fmt=webp");
    equal(new TextDecoder().decode(logoWebp.body.subarray(8, 12)), "WEBP");
    const page = await get(`${base}/page.html?w=640`);
    equal(page.res.headers.get("x-nearcast-variant"), null); // not an image: untouched
  } finally {
    await replica.close();
    await origin.close();
  }
});

Deno.test("--images off: images pass through untouched", async () => {
  const { origin, jpg } = await fixtures();
  const replica = await startReplica(["-o", origin.url, "--images", "off"]);
  try {
    const a = await get(`${replica.url}/photo.jpg?w=641`, { "save-data": "on" });
    equal(a.res.status, 200);
    equal(a.res.headers.get("x-nearcast-variant"), null);
    deepStrictEqual(a.body, jpg);
  } finally {
    await replica.close();
    await origin.close();
  }
});

Deno.test("the default is both; without --allow-ffi it turns images off, an explicit mode exits 2", async () => {
  const { origin, jpg } = await fixtures();
  const on = await startReplica(["-o", origin.url]);
  const noFfi = ["--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-sys"];
  const off = await startReplica(["-o", origin.url], { denoFlags: noFfi });
  try {
    const a = await get(`${on.url}/photo.jpg?w=320`);
    equal(a.res.headers.get("x-nearcast-variant"), "w=320;q=80;fmt=jpeg");
    ok(
      off.lines.some((l) =>
        l.includes("images off: --images both (the default) needs --allow-ffi")
      ),
    );
    const b = await get(`${off.url}/photo.jpg?w=320`);
    deepStrictEqual([b.res.headers.get("x-nearcast-variant"), b.body], [null, jpg]);
  } finally {
    await on.close();
    await off.close();
    await origin.close();
  }
  const r = await runReplicaCli(["-p", "0", "-o", "http://127.0.0.1:9", "--images", "on-the-fly"], {
    denoFlags: ["--allow-net", "--allow-read", "--allow-env", "--allow-sys"],
  });
  equal(r.code, 2, r.out);
  ok(r.out.includes("--images on-the-fly: needs --allow-ffi"), r.out);
});

Deno.test("image layer: the measured throughput decides without hints; coalesced; timeout serves the original", async () => {
  const jpg = new Uint8Array(
    await magick(["-size", "1600x900", "-depth", "8", "rgba:-", "jpg:-"], softScene(1600, 900)),
  );
  let fetches = 0;
  const next = (req: Request) => {
    fetches++;
    equal(new URL(req.url).search, "", "parameters are removed before the cache");
    return new Response(jpg, { headers: { "content-type": "image/jpeg" } });
  };
  const throughput = new ThroughputEstimator();
  throughput.record("192.0.2.7", 100_000, 2000); // 400 kbit/s: very constrained
  const layer = new ImageLayer({ throughput });
  const slow = await layer.handle(new Request("http://cdn.test/a.jpg"), "192.0.2.7", next);
  equal(slow.headers.get("x-nearcast-variant"), "w=640;q=50;fmt=jpeg");
  equal(slow.headers.get("cache-control"), "private");
  await slow.body?.cancel();
  const fast = await layer.handle(new Request("http://cdn.test/a.jpg"), "198.51.100.1", next);
  equal(fast.headers.get("x-nearcast-variant"), "w=orig;q=80;fmt=jpeg");
  await fast.arrayBuffer();
  // Read 16 KiB every 20 ms or more (at most 6.5 Mbit/s): the steady part teaches the client's
  // prefix.
  const paced = await layer.handle(new Request("http://cdn.test/a.jpg"), "198.51.101.1", next);
  const reader = paced.body!.getReader();
  while (!(await reader.read()).done) await new Promise((r) => setTimeout(r, 20));
  const bps = layer.throughput.estimate("198.51.101.99")!;
  ok(bps > 0.3e6 && bps < 8e6, `paced read measured ${bps} bit/s`);

  const many = await Promise.all(
    Array.from(
      { length: 6 },
      () => layer.handle(new Request("http://cdn.test/a.jpg?w=320"), "203.0.113.5", next),
    ),
  );
  const bodies = await Promise.all(many.map((r) => r.arrayBuffer()));
  ok(bodies.every((b) => b.byteLength === bodies[0].byteLength));
  equal(layer.stats.computed, 2, "one computation for 640 q50, one for the six 320 requests");
  equal(fetches, 9);

  const hasty = new ImageLayer({ timeoutMs: 1 });
  const late = await hasty.handle(new Request("http://cdn.test/a.jpg?w=1280"), "203.0.113.5", next);
  equal(late.headers.get("x-nearcast-variant"), "w=orig;timeout");
  deepStrictEqual(new Uint8Array(await late.arrayBuffer()), jpg);
});

Deno.test("precompute and both: the ladder is made in the background after the first request", async () => {
  const jpg = new Uint8Array(
    await magick(["-size", "1600x900", "-depth", "8", "rgba:-", "jpg:-"], softScene(1600, 900)),
  );
  const next = () => new Response(jpg, { headers: { "content-type": "image/jpeg" } });
  const settle = async (layer: ImageLayer) => {
    for (let i = 0; i < 600 && layer.precomputing; i++) await new Promise((r) => setTimeout(r, 50));
    equal(layer.precomputing, false, "the ladder was not finished within 30 s");
  };
  const pre = new ImageLayer({ mode: "precompute" });
  const first = await pre.handle(new Request("http://cdn.test/a.jpg?w=640"), "203.0.113.5", next);
  equal(first.headers.get("x-nearcast-variant"), "w=orig;pending"); // never waits
  await first.arrayBuffer();
  await settle(pre);
  // 320, 640, 1280 at q80 and q50 in JPEG and WebP, and the original at q50.
  equal(pre.stats.precomputed, 13);
  const ready = await pre.handle(new Request("http://cdn.test/a.jpg?w=640"), "203.0.113.5", next);
  equal(ready.headers.get("x-nearcast-variant"), "w=640;q=80;fmt=jpeg");
  equal(probeImage(new Uint8Array(await ready.arrayBuffer()))?.width, 640);
  equal(pre.stats.cacheHits, 1);
  equal(pre.stats.computed, 13, "nothing computed for the request itself");

  const both = new ImageLayer({ mode: "both" });
  const now = await both.handle(
    new Request("http://cdn.test/a.jpg?w=320&q=50"),
    "203.0.113.5",
    next,
  );
  equal(now.headers.get("x-nearcast-variant"), "w=320;q=50;fmt=jpeg"); // on the fly
  await now.arrayBuffer();
  await settle(both);
  equal(both.stats.computed, 13, "the background skipped the variant already made");
});

Deno.test("a source over the layer's pixel limit is served as it is", async () => {
  const jpg = new Uint8Array(
    await magick(["-size", "400x300", "-depth", "8", "rgba:-", "jpg:-"], softScene(400, 300)),
  );
  const layer = new ImageLayer({ maxPixels: 100_000 });
  const res = await layer.handle(
    new Request("http://cdn.test/a.jpg?w=320"),
    "203.0.113.5",
    () => new Response(jpg, { headers: { "content-type": "image/jpeg" } }),
  );
  equal(res.headers.get("x-nearcast-variant"), "w=orig;too-large");
  deepStrictEqual(new Uint8Array(await res.arrayBuffer()), jpg);
  equal(layer.stats.computed, 0);
});

Deno.test("the RTT the fleet's probes measured to the client's subnet reaches the choice", async () => {
  const jpg = new Uint8Array(
    await magick(["-size", "1600x900", "-depth", "8", "rgba:-", "jpg:-"], softScene(1600, 900)),
  );
  const prober = new Prober({ connect: () => Promise.resolve(350) });
  equal(prober.rttTo("198.51.100.7"), undefined, "nothing measured yet");
  await prober.measure(parseIp("198.51.100.1")!, 80, 2, 0); // as a DNS server asks
  equal(prober.rttTo("198.51.100.7"), 350, "same /24");
  equal(prober.rttTo("198.51.101.7"), undefined, "another /24");
  const layer = new ImageLayer({ rttMs: (ip) => prober.rttTo(ip) });
  const next = () => new Response(jpg, { headers: { "content-type": "image/jpeg" } });
  const far = await layer.handle(new Request("http://cdn.test/a.jpg"), "198.51.100.7", next);
  equal(far.headers.get("x-nearcast-variant"), "w=1280;q=50;fmt=jpeg"); // RTT ≥ 300 ms
  await far.arrayBuffer();
  const near = await layer.handle(new Request("http://cdn.test/a.jpg"), "198.51.101.7", next);
  equal(near.headers.get("x-nearcast-variant"), "w=orig;q=80;fmt=jpeg");
  await near.arrayBuffer();
});

Deno.test("If-Match and If-Unmodified-Since give 412 on variants and originals (RFC 9110 §13)", async () => {
  const jpg = new Uint8Array(
    await magick(["-size", "800x450", "-depth", "8", "rgba:-", "jpg:-"], softScene(800, 450)),
  );
  const lastModified = "Tue, 01 Dec 2026 10:00:00 GMT";
  const origin = await startOrigin({
    "/p.jpg": {
      body: jpg,
      headers: {
        "content-type": "image/jpeg",
        "cache-control": "max-age=600",
        etag: '"orig-2"',
        "last-modified": lastModified,
      },
    },
  });
  const replica = await startReplica(["-o", origin.url, "--images", "on-the-fly"]);
  try {
    const v = `${replica.url}/p.jpg?w=320`;
    const first = await get(v);
    const tag = first.res.headers.get("etag")!;
    const status = async (url: string, headers: Record<string, string>, method = "GET") => {
      const res = await fetch(url, { method, headers });
      const body = new Uint8Array(await res.arrayBuffer());
      return { status: res.status, body, type: res.headers.get("content-type"), res };
    };
    equal((await status(v, { "if-match": tag })).status, 200);
    equal((await status(v, { "if-match": `"x", ${tag}` })).status, 200);
    equal((await status(v, { "if-match": "*" })).status, 200);
    const failed = await status(v, { "if-match": '"orig-2"' }); // the original's, not this rung's
    deepStrictEqual([failed.status, failed.type], [412, "text/plain; charset=utf-8"]);
    ok(new TextDecoder().decode(failed.body).includes("If-Match does not match"));
    equal(failed.res.headers.get("etag"), tag);
    equal((await status(v, { "if-match": `W/${tag}` })).status, 412, "weak never matches");
    // 412 first: before 304 (If-None-Match) and before a range.
    equal((await status(v, { "if-match": '"x"', "if-none-match": tag })).status, 412);
    equal((await status(v, { "if-match": '"x"', range: "bytes=0-9" })).status, 412);
    equal((await status(v, { "if-match": '"x"' }, "HEAD")).status, 412);
    equal((await status(v, { "if-match": tag, range: "bytes=0-9" })).status, 206);
    // A variant has no Last-Modified: If-Unmodified-Since is ignored there (§13.1.4).
    const long = "Thu, 01 Jan 1970 00:00:00 GMT";
    equal((await status(v, { "if-unmodified-since": long })).status, 200);

    const o = `${replica.url}/p.jpg`;
    equal((await status(o, { "if-match": '"orig-2"' })).status, 200);
    equal((await status(o, { "if-match": '"img-x"' })).status, 412);
    const before = await status(o, { "if-unmodified-since": "Mon, 30 Nov 2026 10:00:00 GMT" });
    equal(before.status, 412);
    ok(new TextDecoder().decode(before.body).includes("modified since"));
    equal((await status(o, { "if-unmodified-since": lastModified })).status, 200);
    equal((await status(o, { "if-unmodified-since": "not a date" })).status, 200);
    // If-Match decides alone when both are sent.
    const both = { "if-match": '"orig-2"', "if-unmodified-since": long };
    equal((await status(o, both)).status, 200);
    equal(origin.count("/p.jpg"), 1, "412s are answered from the cached original");
  } finally {
    await replica.close();
    await origin.close();
  }
});
