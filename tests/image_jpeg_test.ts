/**
 * Our JPEG decoder (`wasm/jpeg.ts`) against libjpeg (through ImageMagick, Debian imagemagick):
 * the same file decoded at the same scale by both, PSNR over RGB with a bound per case. libjpeg's
 * scaled decoding is requested with `-define jpeg:size=`; its default chroma upsampling
 * (`do_fancy_upsampling`, triangle filter) is what our decoder implements too. The remaining
 * differences come from the IDCT arithmetic (float here, integer in libjpeg).
 * Corpus: synthetic images encoded by ImageMagick in every layout we claim (baseline,
 * progressive, restart intervals, 4:2:0, 4:2:2, 4:4:4, grey, odd sizes) and real photos from
 * Debian's lomiri-wallpapers-16.04 (installed by scripts/ensure_tools.sh).
 */
import { equal, ok, throws } from "node:assert/strict";
import { createJpegDecoder, jpegShiftFor } from "../lib/image/jpeg.ts";
import { psnr } from "../lib/image/quality.ts";
import { magick, softScene, zonePlate } from "./_image_helpers.ts";

const decoder = createJpegDecoder();
/** The worst case measured over this corpus was 61.3 dB. */
const BOUND_DB = 55;

/** libjpeg's decode of `jpg` at 1/2^shift (ImageMagick picks the scale from jpeg:size). */
async function libjpeg(jpg: Uint8Array, w: number, h: number, shift: number) {
  const size = `${Math.floor(w / 2 ** shift)}x${Math.floor(h / 2 ** shift)}`;
  return await magick(
    ["-define", `jpeg:size=${size}`, "jpg:-", "-depth", "8", "rgba:-"],
    jpg,
  );
}

async function check(name: string, jpg: Uint8Array, shifts: number[]) {
  for (const shift of shifts) {
    const r = decoder.decode(jpg, shift);
    const ref = await libjpeg(jpg, r.width, r.height, shift);
    equal(ref.length, r.pixels.length, `${name} 1/${2 ** shift}: size`);
    const db = psnr(r.pixels, ref);
    ok(db >= BOUND_DB, `${name} at 1/${2 ** shift}: ${db.toFixed(2)} dB < ${BOUND_DB}`);
  }
}

const W = 333, H = 199;
const scene = softScene(W, H);
const zone = zonePlate(W, H);
for (let i = 0; i < scene.length; i++) if (i % 4 !== 3 && (i >> 2) % W > W / 2) scene[i] = zone[i];
const raw = ["-size", `${W}x${H}`, "-depth", "8", "rgba:-"];

const SYNTHETIC: [string, string[]][] = [
  ["baseline 4:2:0 q85", ["-sampling-factor", "2x2", "-quality", "85"]],
  ["baseline 4:2:2 q92", ["-sampling-factor", "2x1", "-quality", "92"]],
  ["baseline 4:4:4 q95", ["-sampling-factor", "1x1", "-quality", "95"]],
  ["baseline grey q75", ["-colorspace", "gray", "-quality", "75"]],
  ["progressive 4:2:0 q85", ["-interlace", "JPEG", "-sampling-factor", "2x2"]],
  [
    "progressive 4:4:4 q50",
    ["-interlace", "JPEG", "-sampling-factor", "1x1", "-quality", "50"],
  ],
  ["restart every 2 MCUs, 4:2:0", ["-define", "jpeg:restart-interval=2"]],
  ["progressive + restart, 4:2:2", [
    "-interlace",
    "JPEG",
    "-sampling-factor",
    "2x1",
    "-define",
    "jpeg:restart-interval=5",
  ]],
];

for (const [name, args] of SYNTHETIC) {
  Deno.test(`synthetic ${W}x${H} ${name}: within bounds of libjpeg at 1, 1/2, 1/4, 1/8`, async () => {
    const jpg = await magick([...raw, ...args, "jpg:-"], scene);
    await check(name, jpg, [0, 1, 2, 3]);
  });
}

const PHOTOS: [string, number[]][] = [
  ["Picture_1A_by_freespace.jpg", [0, 1, 2, 3]], // 1365x1074 progressive q99
  ["Picture_0B_by_freespace.jpg", [1, 2, 3]], // 2572x1740 progressive 4:2:0
  ["Bridge_by_Sander_Klootwijk.jpg", [1, 2, 3]], // 4352x2448 progressive 4:2:2
  ["free_by_Peter_Nerlich.jpg", [1, 2, 3]], // 2880x2160 baseline 4:4:4 q95
  ["analogpattern_by_Peter_Nerlich.jpg", [1, 2, 3]], // 2880x2160 baseline 4:2:0
];

for (const [file, shifts] of PHOTOS) {
  Deno.test(`photo ${file}: within bounds of libjpeg`, async () => {
    const path = `/usr/share/backgrounds/${file}`;
    let jpg: Uint8Array;
    try {
      jpg = Deno.readFileSync(path);
    } catch {
      throw new Error(`${path} is missing: apt-get install lomiri-wallpapers-16.04`);
    }
    await check(file, jpg, shifts);
  });
}

Deno.test("lowpass mode: the same as libjpeg's at full size, sharper when scaled", async () => {
  const jpg = await magick([...raw, "-quality", "90", "jpg:-"], scene);
  const a = decoder.decode(jpg, 0).pixels.slice();
  equal(psnr(decoder.decode(jpg, 0, true).pixels, a), Infinity);
  const box = decoder.decode(jpg, 1).pixels.slice();
  const low = decoder.decode(jpg, 1, true).pixels;
  ok(psnr(low, box) < 50, "the scaled lowpass decode differs from the box average");
});

Deno.test("jpegShiftFor: the largest scale that keeps the wanted width", () => {
  equal(jpegShiftFor(1920, 960), 1);
  equal(jpegShiftFor(1920, 961), 0);
  equal(jpegShiftFor(1920, 240), 3);
  equal(jpegShiftFor(1920, 100), 3);
  equal(jpegShiftFor(1921, 241), 3); // ceil(1921 / 8) = 241
});

Deno.test("refuses what it does not decode with RangeError, garbage with SyntaxError", async () => {
  const cmyk = await magick([...raw, "-colorspace", "CMYK", "jpg:-"], scene);
  throws(() => decoder.decode(cmyk, 1), RangeError);
  // Arithmetic coding (SOF9): ImageMagick does not write it, so relabel a baseline frame.
  const arith = await magick([...raw, "jpg:-"], scene);
  for (let i = 0; i + 1 < arith.length; i++) {
    if (arith[i] === 0xff && arith[i + 1] === 0xc0) {
      arith[i + 1] = 0xc9;
      break;
    }
  }
  throws(() => decoder.decode(arith, 1), RangeError);
  throws(() => decoder.decode(new Uint8Array([0xff, 0xd8, 0xff, 0xd9]), 0), SyntaxError);
  throws(() => decoder.decode(new Uint8Array(10), 0), SyntaxError);
  throws(() => decoder.decode(cmyk, 4), /shift must be 0 to 3/);
});

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("hostile input: 600 truncated or mutated JPEGs decode or throw Syntax/RangeError, never trap", async () => {
  const r = rng(7);
  const small = softScene(64, 40);
  const files = [
    await magick(["-size", "64x40", "-depth", "8", "rgba:-", "-quality", "80", "jpg:-"], small),
    await magick(
      [
        "-size",
        "64x40",
        "-depth",
        "8",
        "rgba:-",
        "-interlace",
        "JPEG",
        "-define",
        "jpeg:restart-interval=1",
        "jpg:-",
      ],
      small,
    ),
  ];
  let decoded = 0, refused = 0;
  for (let n = 0; n < 600; n++) {
    const src = files[n & 1];
    let b = src.slice(0, n % 3 === 0 ? Math.floor(r() * src.length) : src.length);
    for (let k = 0, m = 1 + Math.floor(r() * 8); k < m && n % 3 !== 0; k++) {
      b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
    }
    if (n % 7 === 0) b = b.slice(0, 2 + Math.floor(r() * 40)); // cut inside the headers
    try {
      decoder.decode(b, n % 4);
      decoded++;
    } catch (e) {
      ok(e instanceof SyntaxError || e instanceof RangeError, `case ${n}: ${e}`);
      refused++;
    }
  }
  ok(decoded > 0 && refused > 0, `decoded ${decoded}, refused ${refused}`);
  // The decoder still works afterwards.
  equal(decoder.decode(files[0], 0).outWidth, 64);
});
