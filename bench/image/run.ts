/**
 * Image benchmark (`deno task bench:image`): our pipeline against sharp, in one run, on one core.
 *
 * - resize only: 1920×1080 raw RGBA in, 480×270 raw RGBA out: our WASM rescaler (copy in and
 *   out included) against sharp's `lanczos3` on the same RGBA buffer (and, for reference, on the
 *   RGB buffer, 3/4 of the bytes), plus our TypeScript reference; PSNR of each against
 *   ImageMagick's `-filter Lanczos -resize` of the same pixels;
 * - pipeline: the 1920×1080 JPEG → 480 px wide JPEG q80: `transcode()` (our JPEG decoder at 1/2
 *   scale, our resize, imagescript's encode; each step timed, and imagescript's full-size decode
 *   for comparison) against `sharp(jpeg).resize(480).jpeg({quality: 80})`; PSNR of both outputs
 *   (decoded by ImageMagick) against ImageMagick's full decode + Lanczos resize.
 *
 * - the ladder: every variant `--images precompute` would make of the photo, and WebP for the
 *   downscaled ones: bytes and CPU time each (storage and CPU overhead of precomputing).
 *
 * Times are medians of wall time and of process CPU time (user + system, every thread), the
 * latter less disturbed when other work shares the machine.
 *
 * The photo is a real one from Debian's lomiri-wallpapers-16.04 (`life_by_Aitzol_Berasategi.jpg`,
 * 3088×2056), scaled and cropped to 1920×1080 and saved as JPEG q90 4:2:0 by ImageMagick into
 * bench/.out/image/; `--photo FILE` uses another JPEG (it must be 1920×1080 for the figures to
 * compare). The process re-runs itself under `taskset -c CPU` with `sharp.concurrency(1)`, so both
 * sides share one core. Rounds alternate ours and sharp; medians are reported. Writes JSON to
 * bench/.out/image/result.json.
 *
 * @module
 */
import { cpuUsage } from "node:process";
import { parseArgs } from "node:util";
import { Image } from "imagescript";
import sharp from "sharp";
import { createWasmResizer } from "../../lib/image/wasm_resize.ts";
import { TsResizer } from "../../lib/image/reference.ts";
import { scaledHeight, transcode } from "../../lib/image/pipeline.ts";
import { DEFAULT_LADDER } from "../../lib/image/ladder.ts";
import { createJpegDecoder, jpegShiftFor } from "../../lib/image/jpeg.ts";
import { probeImage } from "../../lib/image/probe.ts";
import { psnr } from "../../lib/image/quality.ts";
import { magick, magickResize } from "../../tests/_image_helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const OUT = `${ROOT}bench/.out/image/`;
const PHOTO_SOURCE = "/usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg";
const SW = 1920, SH = 1080, DW = 480, DH = 270;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "15" },
    cpu: { type: "string", default: "1" },
    photo: { type: "string" },
    child: { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});

if (values.help) {
  console.log(`Usage: deno task bench:image [--rounds N] [--cpu C] [--photo FILE.jpg]
  --rounds N   timed rounds per measurement, alternating ours and sharp (default 15)
  --cpu C      the core both sides run on (taskset -c C; default 1)
  --photo F    a 1920x1080 JPEG to use instead of the Debian photo
Needs ImageMagick (Debian imagemagick) and, without --photo, Debian lomiri-wallpapers-16.04.`);
  Deno.exit(0);
}

if (!values.child) {
  // Re-run pinned to one core: ours and sharp then compete for the same CPU.
  const args = ["-c", values.cpu, Deno.execPath(), "run", "-A", new URL(import.meta.url).pathname];
  const { code } = await new Deno.Command("taskset", {
    args: [...args, ...Deno.args, "--child"],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  Deno.exit(code);
}

sharp.concurrency(1);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

async function photo(): Promise<Uint8Array> {
  if (values.photo) return Deno.readFileSync(values.photo);
  const file = `${OUT}photo_1920x1080_q90.jpg`;
  try {
    return Deno.readFileSync(file);
  } catch { /* make it */ }
  try {
    Deno.statSync(PHOTO_SOURCE);
  } catch {
    throw new Error(
      `Cannot find ${PHOTO_SOURCE}: apt-get install lomiri-wallpapers-16.04 (or pass --photo)`,
    );
  }
  await Deno.mkdir(OUT, { recursive: true });
  const jpg = await magick([
    PHOTO_SOURCE,
    "-resize",
    `${SW}x${SH}^`,
    "-gravity",
    "center",
    "-extent",
    `${SW}x${SH}`,
    "-quality",
    "90",
    "-sampling-factor",
    "4:2:0",
    "jpg:-",
  ]);
  Deno.writeFileSync(file, jpg);
  return jpg;
}

/** Wall and CPU (user + system, all threads: sharp works on a libuv thread) time of one call. */
interface Cost {
  wall: number;
  cpu: number;
}

async function cost(f: () => unknown): Promise<Cost> {
  const c0 = cpuUsage();
  const t0 = performance.now();
  await f();
  const wall = performance.now() - t0;
  const c = cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1000 };
}

/** Times `f` and `g` alternately for `rounds` rounds after one warm-up each; medians in ms. */
async function duel(
  rounds: number,
  f: () => unknown,
  g: () => unknown,
): Promise<[Cost, Cost]> {
  await f();
  await g();
  const a: Cost[] = [], b: Cost[] = [];
  for (let i = 0; i < rounds; i++) {
    a.push(await cost(f));
    b.push(await cost(g));
  }
  const med = (xs: Cost[]) => ({
    wall: median(xs.map((x) => x.wall)),
    cpu: median(xs.map((x) => x.cpu)),
  });
  return [med(a), med(b)];
}

const rounds = Number(values.rounds);
const jpeg = await photo();
const info = probeImage(jpeg);
if (info?.format !== "jpeg" || info.width !== SW || info.height !== SH) {
  throw new Error(`The photo must be a ${SW}x${SH} JPEG: got ${JSON.stringify(info)}`);
}
const rgba = new Uint8Array((await Image.decode(jpeg)).bitmap.buffer);
const rgb = new Uint8Array(SW * SH * 3);
for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) rgb.set(rgba.subarray(i, i + 3), j);

// ---- resize only -----------------------------------------------------------------------------
const wasm = createWasmResizer();
const out = new Uint8Array(DW * DH * 4);
const sharpRaw = (buf: Uint8Array, channels: 3 | 4) =>
  sharp(buf, { raw: { width: SW, height: SH, channels } })
    .resize(DW, DH, { kernel: "lanczos3", fit: "fill" })
    .raw()
    .toBuffer();
const [oursResize, sharpResize] = await duel(
  rounds,
  () => wasm.resize(rgba, SW, SH, DW, DH, out),
  () => sharpRaw(rgba, 4),
);
const [, sharpResizeRgb] = await duel(rounds, () => 0, () => sharpRaw(rgb, 3));
const ts = new TsResizer();
const tsTimes: number[] = [];
for (let i = 0; i < 3; i++) {
  const t = performance.now();
  ts.resize(rgba, SW, SH, DW, DH);
  tsTimes.push(performance.now() - t);
}
const ref = await magickResize(rgba, SW, SH, DW, DH);
const sharpOut = new Uint8Array(await sharpRaw(rgba, 4));
const resizePsnr = {
  ours: psnr(wasm.resize(rgba, SW, SH, DW, DH), ref),
  sharp: psnr(sharpOut, ref),
};

// ---- pipeline --------------------------------------------------------------------------------
const [oursPipe, sharpPipe] = await duel(
  Math.max(3, Math.ceil(rounds / 2)),
  () => transcode(jpeg, { width: DW, format: "jpeg", quality: 80 }, wasm),
  () => sharp(jpeg).resize(DW).jpeg({ quality: 80 }).toBuffer(),
);
// Breakdown of ours: our decoder at the scale transcode() picks, resize, imagescript's encode;
// and imagescript's full-size decode, which transcode() used before our decoder existed.
const shift = jpegShiftFor(SW, 2 * DW);
const jd = createJpegDecoder();
const steps = {
  decode: [] as number[],
  resize: [] as number[],
  encode: [] as number[],
  imagescriptDecode: [] as number[],
};
for (let i = 0; i < Math.max(3, Math.ceil(rounds / 3)); i++) {
  let t = performance.now();
  const d = jd.decode(jpeg, shift, true);
  steps.decode.push(performance.now() - t);
  t = performance.now();
  const small = new Image(DW, scaledHeight(SW, SH, DW));
  small.bitmap.set(wasm.resizeView(d.pixels, d.outWidth, d.outHeight, DW, small.height));
  steps.resize.push(performance.now() - t);
  t = performance.now();
  await small.encodeJPEG(80);
  steps.encode.push(performance.now() - t);
  t = performance.now();
  await Image.decode(jpeg);
  steps.imagescriptDecode.push(performance.now() - t);
}
const pipeRef = await magick(
  ["jpg:-", "-filter", "Lanczos", "-resize", `${DW}x${DH}!`, "-depth", "8", "rgba:-"],
  jpeg,
);
const decodeByMagick = (b: Uint8Array) => magick(["jpg:-", "-depth", "8", "rgba:-"], b);
const oursJpeg = (await transcode(jpeg, { width: DW, quality: 80 }, wasm)).bytes;
const sharpJpeg = new Uint8Array(await sharp(jpeg).resize(DW).jpeg({ quality: 80 }).toBuffer());
const pipePsnr = {
  ours: psnr(await decodeByMagick(oursJpeg), pipeRef),
  sharp: psnr(await decodeByMagick(sharpJpeg), pipeRef),
};

const f = (ms: number) => ms.toFixed(2).padStart(8);
const fc = (c: Cost) => `${f(c.wall)} wall ${f(c.cpu)} cpu`;
const db = (x: number) => `${x.toFixed(2)} dB`;
console.log(`image benchmark: ${SW}x${SH} -> ${DW}x${DH}, ${rounds} rounds, cpu ${values.cpu}`);
console.log(`sharp ${sharp.versions.sharp}, libvips ${sharp.versions.vips}; medians in ms`);
console.log("resize only (raw RGBA in and out)");
console.log(`  ours (WASM)        ${fc(oursResize)}  PSNR ${db(resizePsnr.ours)}`);
console.log(`  sharp lanczos3     ${fc(sharpResize)}  PSNR ${db(resizePsnr.sharp)}`);
console.log(`  sharp, RGB input   ${fc(sharpResizeRgb)}  (3 bytes per pixel, for reference)`);
console.log(`  ours (TypeScript)  ${f(median(tsTimes))} wall`);
console.log(
  `  ratio ours/sharp   ${(oursResize.wall / sharpResize.wall).toFixed(2)}x wall, ${
    (oursResize.cpu / sharpResize.cpu).toFixed(2)
  }x cpu (goal <= 1.0x)`,
);
console.log(`pipeline (JPEG -> ${DW} px JPEG q80)`);
console.log(
  `  ours               ${fc(oursPipe)}  PSNR ${db(pipePsnr.ours)}  ${oursJpeg.length} bytes`,
);
console.log(
  `    decode at 1/${2 ** shift} ${f(median(steps.decode))}  resize ${
    f(median(steps.resize))
  }  encode ${f(median(steps.encode))}  (imagescript full decode ${
    f(median(steps.imagescriptDecode))
  })`,
);
console.log(
  `  sharp              ${fc(sharpPipe)}  PSNR ${db(pipePsnr.sharp)}  ${sharpJpeg.length} bytes`,
);
console.log(
  `  ratio ours/sharp   ${(oursPipe.wall / sharpPipe.wall).toFixed(2)}x wall, ${
    (oursPipe.cpu / sharpPipe.cpu).toFixed(2)
  }x cpu (goal <= 2.0x)`,
);

// ---- the ladder: what precomputing one image costs ------------------------------------------
// Every rung `--images precompute` makes for this photo (DEFAULT_LADDER), in the source format,
// and WebP for the downscaled ones: bytes and CPU time (median of 3) per variant.
const ladder: { variant: string; bytes: number; cpuMs: number }[] = [];
for (const w of [...DEFAULT_LADDER.widths, undefined]) {
  for (const quality of DEFAULT_LADDER.qualities) {
    for (const format of ["jpeg", "webp"] as const) {
      if (w === undefined && (format === "webp" || quality === DEFAULT_LADDER.qualities[0])) {
        continue;
      }
      const costs: number[] = [];
      let bytes = 0;
      for (let i = 0; i < 3; i++) {
        const c = await cost(async () => {
          bytes = (await transcode(jpeg, { width: w, quality, format }, wasm)).bytes.length;
        });
        costs.push(c.cpu);
      }
      ladder.push({
        variant: `w=${w ?? "orig"};q=${quality};fmt=${format}`,
        bytes,
        cpuMs: median(costs),
      });
    }
  }
}
console.log(`ladder of this photo (original ${jpeg.length} bytes): variant, bytes, CPU ms`);
for (const l of ladder) {
  console.log(`  ${l.variant.padEnd(22)} ${String(l.bytes).padStart(8)} ${f(l.cpuMs)}`);
}
const jpegRungs = ladder.filter((l) => l.variant.endsWith("jpeg"));
const sum = (xs: typeof ladder, k: "bytes" | "cpuMs") => xs.reduce((n, l) => n + l[k], 0);
console.log(
  `  JPEG ladder: ${sum(jpegRungs, "bytes")} bytes (${
    (100 * sum(jpegRungs, "bytes") / jpeg.length).toFixed(1)
  } % of the original), ${sum(jpegRungs, "cpuMs").toFixed(1)} ms CPU; with WebP: ${
    sum(ladder, "bytes")
  } bytes, ${sum(ladder, "cpuMs").toFixed(1)} ms`,
);

await Deno.mkdir(OUT, { recursive: true });
Deno.writeTextFileSync(
  `${OUT}result.json`,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      rounds,
      cpu: values.cpu,
      sharp: sharp.versions,
      resize: {
        ours: oursResize,
        sharp: sharpResize,
        sharpRgb: sharpResizeRgb,
        tsMs: median(tsTimes),
        psnr: resizePsnr,
      },
      pipeline: {
        ours: oursPipe,
        sharp: sharpPipe,
        shift,
        steps: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, median(v)])),
        psnr: pipePsnr,
        bytes: { ours: oursJpeg.length, sharp: sharpJpeg.length },
      },
      ladder,
    },
    null,
    2,
  ),
);
