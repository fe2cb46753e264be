/**
 * The serving side's pure modules: the ladder and its URL parameters, Client Hints parsing, the
 * variant choice (display, network, explicit overrides, Vary, cache key) and the per-prefix
 * throughput estimate.
 */
import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { checkLadder, DEFAULT_LADDER, parseImageParams, rungFor } from "../lib/image/ladder.ts";
import { ACCEPT_CH, type ClientHints, parseClientHints } from "../lib/image/client_hints.ts";
import {
  chooseVariant,
  chosenRungs,
  rungHeader,
  variantKey,
  type VariantRequest,
} from "../lib/image/variant.ts";
import { prefixOf, ThroughputEstimator } from "../lib/image/throughput.ts";

const url = (q: string) => new URL(`http://cdn.test/photo.jpg${q}`);

Deno.test("URL parameters must name a rung of the ladder", () => {
  deepStrictEqual(parseImageParams(url("?w=640"), DEFAULT_LADDER), {
    ok: true,
    params: { width: 640 },
  });
  deepStrictEqual(parseImageParams(url("?w=orig&q=50&fmt=png"), DEFAULT_LADDER), {
    ok: true,
    params: { width: "original", quality: 50, format: "png" },
  });
  deepStrictEqual(parseImageParams(url("?fmt=jpg"), DEFAULT_LADDER), {
    ok: true,
    params: { format: "jpeg" },
  });
  const bad: [string, RegExp][] = [
    ["?w=641", /\?w= must be one of 320, 640, 1280 or orig: received "641"/],
    ["?w=0640", /\?w= must be one of/],
    ["?w=640.0", /\?w= must be one of/],
    ["?w=640&w=320", /\?w= given more than once/],
    ["?q=81", /\?q= must be one of 80, 50: received "81"/],
    ["?fmt=gif", /\?fmt= must be one of jpeg, png, webp: received "gif"/],
    [`?w=${"9".repeat(100)}`, /received "9{32}…"/],
  ];
  for (const [q, re] of bad) {
    const r = parseImageParams(url(q), DEFAULT_LADDER);
    ok(!r.ok && re.test(r.message), `${q}: ${JSON.stringify(r)}`);
  }
});

Deno.test("ladder: rungs and configuration checks", () => {
  equal(rungFor(300, 1920, DEFAULT_LADDER), 320);
  equal(rungFor(321, 1920, DEFAULT_LADDER), 640);
  equal(rungFor(1281, 1920, DEFAULT_LADDER), "original");
  equal(rungFor(500, 600, DEFAULT_LADDER), "original"); // 640 ≥ the source: serve the source
  checkLadder({ widths: [200, 400], qualities: [90, 40] });
  throws(() => checkLadder({ widths: [640, 320], qualities: [80, 50] }), /ascending/);
  throws(() => checkLadder({ widths: [], qualities: [80, 50] }), /1 to 8 widths/);
  throws(() => checkLadder({ widths: [320], qualities: [80, 0] }), /qualities must be 1 to 100/);
});

Deno.test("Client Hints: valid values read, malformed ones ignored", () => {
  const h = parseClientHints(
    new Headers({
      "sec-ch-dpr": "2.5",
      "sec-ch-viewport-width": "412",
      "width": "abc",
      "downlink": "1.45",
      "rtt": "350",
      "ect": "3G",
      "save-data": "on",
    }),
  );
  deepStrictEqual(h, {
    dpr: 2.5,
    viewportWidth: 412,
    downlinkMbps: 1.45,
    rttMs: 350,
    saveData: true,
    ect: "3g",
    used: ["sec-ch-dpr", "sec-ch-viewport-width", "downlink", "rtt", "save-data", "ect"],
  });
  deepStrictEqual(
    parseClientHints(new Headers({ "dpr": "0", "ect": "5g", "save-data": "off", "rtt": "-1" })),
    { used: [] },
  );
  deepStrictEqual(parseClientHints(new Headers({ "width": "639.6" })), {
    width: 640,
    used: ["width"],
  });
  ok(ACCEPT_CH.includes("Sec-CH-Width") && ACCEPT_CH.includes("Downlink"));
});

function req(hints: Partial<ClientHints>, extra: Partial<VariantRequest> = {}): VariantRequest {
  return {
    ladder: DEFAULT_LADDER,
    sourceWidth: 1920,
    sourceFormat: "jpeg",
    params: {},
    hints: { used: [], ...hints },
    ...extra,
  };
}

Deno.test("variant: display hints pick the smallest covering rung", () => {
  equal(chooseVariant(req({})).header, "w=orig;q=80;fmt=jpeg");
  equal(chooseVariant(req({ width: 600, used: ["sec-ch-width"] })).header, "w=640;q=80;fmt=jpeg");
  const v = chooseVariant(
    req({ viewportWidth: 400, dpr: 3, used: ["sec-ch-viewport-width", "sec-ch-dpr"] }),
  );
  equal(v.header, "w=1280;q=80;fmt=jpeg"); // 1200 physical px
  deepStrictEqual(v.vary, ["sec-ch-viewport-width", "sec-ch-dpr", "accept"]);
  equal(v.network, false);
  equal(chooseVariant(req({ width: 1500, used: ["sec-ch-width"] })).width, "original");
});

Deno.test("variant: slow links get the reduced quality and smaller rungs, fast ones the original", () => {
  const fast = chooseVariant(req({ downlinkMbps: 50, used: ["downlink"] }));
  equal(fast.header, "w=orig;q=80;fmt=jpeg");
  equal(fast.link, "fast");
  const threeG = chooseVariant(req({ ect: "3g", used: ["ect"] }));
  equal(threeG.header, "w=1280;q=50;fmt=jpeg");
  equal(threeG.network, true);
  deepStrictEqual(threeG.vary, ["ect", "accept"]);
  equal(chooseVariant(req({ saveData: true, used: ["save-data"] })).header, "w=640;q=50;fmt=jpeg");
  equal(chooseVariant(req({ downlinkMbps: 0.4, used: ["downlink"] })).link, "very constrained");
  // A 0.5 Mbit/s link is very constrained, 2 Mbit/s constrained, 10 Mbit/s fast.
  deepStrictEqual(
    [0.5, 2, 10].map((d) => chooseVariant(req({ downlinkMbps: d, used: ["downlink"] })).link),
    ["very constrained", "constrained", "fast"],
  );
  // Downlink is never in Vary: the response is network-dependent and marked so instead.
  const slow = chooseVariant(req({ downlinkMbps: 1, used: ["downlink"] }));
  deepStrictEqual([slow.vary, slow.network, slow.header], [
    ["accept"],
    true,
    "w=1280;q=50;fmt=jpeg",
  ]);
  // Akamai's threshold: RTT ≥ 300 ms is constrained, from a hint or the fleet's measurement.
  equal(chooseVariant(req({}, { measuredRttMs: 320 })).link, "constrained");
  equal(chooseVariant(req({}, { measuredRttMs: 120 })).link, "fast");
  // No hints at all: the replica's own throughput estimate decides.
  equal(chooseVariant(req({}, { measuredBps: 300_000 })).header, "w=640;q=50;fmt=jpeg");
  equal(chooseVariant(req({}, { measuredBps: 90_000_000 })).header, "w=orig;q=80;fmt=jpeg");
  // A hint beats the measurement.
  equal(
    chooseVariant(req({ downlinkMbps: 20, used: ["downlink"] }, { measuredBps: 1e5 })).link,
    "fast",
  );
  // A small display need stays small on a slow link; a small source is served as it is.
  equal(chooseVariant(req({ width: 300, saveData: true, used: [] })).width, 320);
  equal(chooseVariant(req({ saveData: true, used: [] }, { sourceWidth: 500 })).width, "original");
});

Deno.test("variant: explicit parameters override hints; the cache key follows the rung", () => {
  const v = chooseVariant(
    req({ saveData: true, used: ["save-data"] }, {
      params: { width: 1280, quality: 80, format: "png" },
    }),
  );
  equal(v.header, "w=1280;q=80;fmt=png");
  equal(v.network, false);
  equal(chooseVariant(req({}, { params: { width: 640 }, sourceWidth: 600 })).width, "original");
  const a = chooseVariant(req({ downlinkMbps: 1.1, used: ["downlink"] }));
  const b = chooseVariant(req({ downlinkMbps: 1.7, used: ["downlink"] }));
  equal(variantKey("/photo.jpg", a), variantKey("/photo.jpg", b)); // no key per Downlink value
  ok(variantKey("/photo.jpg", a) !== variantKey("/photo.jpg", chooseVariant(req({}))));
});

Deno.test("throughput: per prefix, converges within a few responses, expires, bounded", () => {
  let now = 0;
  const t = new ThroughputEstimator({ now: () => now, ttlMs: 60_000, maxPrefixes: 3 });
  t.record("198.51.100.9", 12_500_000, 1000); // 100 Mbit/s
  equal(Math.round(t.estimate("198.51.100.200")!), 100e6);
  equal(t.estimate("198.51.101.1"), undefined);
  // The link drops to 1 Mbit/s: below 2 Mbit/s after 3 responses, within 20 % after 5.
  const after: number[] = [];
  for (let i = 0; i < 5; i++) {
    now += 1000;
    t.record("198.51.100.9", 125_000, 1000);
    after.push(t.estimate("198.51.100.9")!);
  }
  ok(
    after[1] > 2e6 && after[2] < 2e6 && after[4] < 1.2e6,
    after.map((x) => Math.round(x / 1e3)).join(" kbit/s, "),
  );
  t.record("198.51.100.9", 1000, 1); // too small to count
  equal(t.estimate("198.51.100.9"), after[4]);
  now += 60_000;
  equal(t.estimate("198.51.100.9"), undefined);
  for (const ip of ["10.0.1.1", "10.0.2.1", "10.0.3.1", "10.0.4.1"]) t.record(ip, 1e6, 100);
  equal(t.size, 3);
  equal(t.estimate("10.0.1.1"), undefined); // the oldest went first
  equal(prefixOf("2001:db8:aa:bbcc::1"), "2001:db8:aa:bb00::/56");
  equal(prefixOf("::ffff:192.0.2.1"), "192.0.2.0/24");
  equal(prefixOf("not an ip"), undefined);
});

Deno.test("variant: WebP for downscaled JPEGs when Accept has it; originals and PNGs keep theirs", () => {
  const webp = chooseVariant(req({ width: 600, used: ["sec-ch-width"] }, { acceptsWebp: true }));
  equal(webp.header, "w=640;q=80;fmt=webp");
  deepStrictEqual(webp.vary, ["sec-ch-width", "accept"]);
  equal(chooseVariant(req({}, { acceptsWebp: true })).header, "w=orig;q=80;fmt=jpeg");
  const png = chooseVariant(
    req({ width: 600, used: [] }, { acceptsWebp: true, sourceFormat: "png" }),
  );
  deepStrictEqual([png.header, png.vary], ["w=640;q=80;fmt=png", []]);
  const asked = chooseVariant(
    req({ width: 600, used: [] }, { acceptsWebp: true, params: { format: "jpeg" } }),
  );
  deepStrictEqual([asked.header, asked.vary], ["w=640;q=80;fmt=jpeg", []]);
  deepStrictEqual(parseImageParams(url("?w=320&fmt=webp"), DEFAULT_LADDER), {
    ok: true,
    params: { width: 320, format: "webp" },
  });
});

Deno.test("precomputed rungs: what a request without parameters can get, WebP too for a JPEG", () => {
  const names = (w: number, f: "jpeg" | "png") =>
    chosenRungs(DEFAULT_LADDER, w, f).map((r) => rungHeader(r.width, r.quality, r.format));
  deepStrictEqual(names(700, "jpeg"), [
    "w=320;q=80;fmt=jpeg",
    "w=320;q=50;fmt=jpeg",
    "w=320;q=80;fmt=webp",
    "w=320;q=50;fmt=webp",
    "w=640;q=80;fmt=jpeg",
    "w=640;q=50;fmt=jpeg",
    "w=640;q=80;fmt=webp",
    "w=640;q=50;fmt=webp",
    "w=orig;q=80;fmt=jpeg",
    "w=orig;q=50;fmt=jpeg",
  ]);
  deepStrictEqual(names(500, "png"), [
    "w=320;q=80;fmt=png",
    "w=320;q=50;fmt=png",
    "w=orig;q=80;fmt=png",
    "w=orig;q=50;fmt=png",
  ]);
  // Every rung chooseVariant picks without parameters is among them.
  const all = new Set(names(1600, "jpeg"));
  for (const acceptsWebp of [false, true]) {
    for (const width of [undefined, 300, 600, 1200, 2000]) {
      for (const saveData of [false, true]) {
        const v = chooseVariant({
          ladder: DEFAULT_LADDER,
          sourceWidth: 1600,
          sourceFormat: "jpeg",
          params: {},
          hints: { width, saveData, used: [] },
          acceptsWebp,
        });
        ok(all.has(v.header), v.header);
      }
    }
  }
});
