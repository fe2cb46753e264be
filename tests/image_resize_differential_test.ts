/**
 * The WASM rescaler must give exactly the bytes of the TypeScript reference, on seeded random
 * images (opaque and with alpha, noise and smooth content) and sizes (shrink, enlarge, one axis
 * only, one-pixel sides, odd widths that end mid SIMD vector), and refuse the same bad inputs.
 */
import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { TsResizer } from "../lib/image/reference.ts";
import { createWasmResizer } from "../lib/image/wasm_resize.ts";
import { filterTable } from "../lib/image/_filter.ts";
import { zonePlate } from "./_image_helpers.ts";

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomImage(r: () => number, w: number, h: number, alpha: boolean): Uint8Array {
  const p = new Uint8Array(w * h * 4);
  for (let i = 0; i < p.length; i++) p[i] = Math.floor(r() * 256);
  if (!alpha) { for (let i = 3; i < p.length; i += 4) p[i] = 255; }
  else for (let i = 3; i < p.length; i += 16) p[i] = r() < 0.5 ? 0 : 255; // exact 0 and 255 too
  return p;
}

/** First differing index, for a readable failure. */
function firstDiff(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

const ts = new TsResizer();
const wasm = createWasmResizer();

Deno.test("wasm and ts agree byte for byte on 120 random resizes", () => {
  const r = rng(12);
  const side = () => 1 + Math.floor(r() ** 2 * 300);
  for (let n = 0; n < 120; n++) {
    const sw = side(), sh = side();
    const mode = r();
    const dw = mode < 0.15 ? sw : side(), dh = mode > 0.85 ? sh : side();
    const src = randomImage(r, sw, sh, r() < 0.4);
    const a = wasm.resize(src, sw, sh, dw, dh);
    const b = ts.resize(src, sw, sh, dw, dh);
    equal(firstDiff(a, b), -1, `${sw}x${sh} -> ${dw}x${dh}: first difference`);
  }
});

Deno.test("wasm and ts agree on a 1920x1080 zone plate to 480x270 and 1280x720", () => {
  const src = zonePlate(1920, 1080);
  for (const [dw, dh] of [[480, 270], [1280, 720]]) {
    const a = wasm.resize(src, 1920, 1080, dw, dh);
    equal(firstDiff(a, ts.resize(src, 1920, 1080, dw, dh)), -1, `${dw}x${dh}`);
  }
});

Deno.test("a flat image stays flat, transparent pixels come out as 0,0,0,0", () => {
  const grey = new Uint8Array(37 * 23 * 4).fill(77);
  for (let i = 3; i < grey.length; i += 4) grey[i] = 255;
  const out = wasm.resize(grey, 37, 23, 11, 5);
  ok(out.every((v, i) => v === (i % 4 === 3 ? 255 : 77)));
  const clear = new Uint8Array(16 * 16 * 4).fill(200);
  for (let i = 3; i < clear.length; i += 4) clear[i] = 0;
  ok(wasm.resize(clear, 16, 16, 4, 4).every((v) => v === 0));
  deepStrictEqual(ts.resize(clear, 16, 16, 4, 4), wasm.resize(clear, 16, 16, 4, 4));
});

Deno.test("filter rows sum to 2^14 and the support grows with the shrink factor", () => {
  for (const [s, d] of [[1920, 480], [1000, 333], [10, 640], [5, 1], [1, 9]]) {
    const t = filterTable(s, d);
    for (let x = 0; x < d; x++) {
      let sum = 0;
      for (let j = 0; j < t.taps; j++) sum += t.weights[x * t.taps + j];
      equal(sum, 1 << 14, `${s}->${d} row ${x}`);
      ok(t.starts[x] >= 0 && t.starts[x] + t.taps <= s + 1);
    }
  }
  // Shrinking 4x: 3 lobes x 4 source pixels each side, about 24 taps; enlarging: 6.
  ok(filterTable(1920, 480).taps >= 24);
  ok(filterTable(100, 400).taps <= 8);
});

Deno.test("repeated calls reuse memory; out is filled and returned", () => {
  const src = zonePlate(640, 480);
  const out = new Uint8Array(320 * 240 * 4);
  wasm.resize(src, 640, 480, 320, 240, out);
  const bytes = wasm.memoryBytes;
  for (let i = 0; i < 5; i++) equal(wasm.resize(src, 640, 480, 320, 240, out), out);
  equal(wasm.memoryBytes, bytes);
  equal(firstDiff(out, ts.resize(src, 640, 480, 320, 240)), -1);
});

Deno.test("both refuse bad arguments with the same errors", () => {
  const src = new Uint8Array(4 * 4 * 4);
  const cases: [number, number, number, number, Uint8Array | undefined, RegExp][] = [
    [0, 4, 2, 2, undefined, /source width must be an integer from 1/],
    [4, 4, 2.5, 2, undefined, /target width must be an integer/],
    [4, 4, 2, 40000, undefined, /target height must be an integer from 1 to 32768/],
    [4, 5, 2, 2, undefined, /a 4x5 RGBA image has 80 bytes: received 64/],
    [4, 4, 2, 2, new Uint8Array(3), /needs 16 bytes: received 3/],
    [20000, 20000, 2, 2, undefined, /more than 64000000 pixels/],
  ];
  for (const [sw, sh, dw, dh, out, re] of cases) {
    throws(() => ts.resize(src, sw, sh, dw, dh, out), re);
    throws(() => wasm.resize(src, sw, sh, dw, dh, out), re);
  }
});
