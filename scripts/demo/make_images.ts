/**
 * Generates the demo site's images (committed, a few KiB each): a PNG logo and a JPEG
 * "landscape" drawn procedurally, so they are real encoded images with no licence question.
 *
 * Usage (imagescript loads a native codec, hence --allow-ffi):
 *   ./deno run --no-lock --allow-read --allow-ffi --allow-env --allow-write=scripts/demo/site \
 *     scripts/demo/make_images.ts
 */

import { Image } from "imagescript";

const OUT = new URL("./site/", import.meta.url);

/** 128x128 PNG: a radial gradient disc with a ring, on a transparent background. */
async function logo(): Promise<Uint8Array> {
  const n = 128;
  const img = new Image(n, n);
  img.fill((x: number, y: number) => {
    const dx = x - n / 2, dy = y - n / 2;
    const r = Math.sqrt(dx * dx + dy * dy);
    if (r > 60) return 0x00000000;
    if (r > 52) return Image.rgbaToColor(20, 40, 90, 255);
    const t = r / 52;
    return Image.rgbaToColor(40 + 180 * t, 140 + 60 * (1 - t), 230, 255);
  });
  return await img.encode(9);
}

/** 320x200 JPEG: sky gradient, a sun, two layers of hills. */
async function landscape(): Promise<Uint8Array> {
  const w = 320, h = 200;
  const img = new Image(w, h);
  img.fill((x: number, y: number) => {
    const far = 120 + 18 * Math.sin(x / 23) + 9 * Math.sin(x / 7.3);
    const near = 150 + 22 * Math.sin(x / 41 + 1.7) + 6 * Math.sin(x / 11);
    if (y > near) return Image.rgbaToColor(40 + y / 8, 110 + (y - near) / 2, 50, 255);
    if (y > far) return Image.rgbaToColor(70, 120, 90, 255);
    const sx = x - 240, sy = y - 50;
    if (sx * sx + sy * sy < 22 * 22) return Image.rgbaToColor(255, 220, 120, 255);
    const t = y / far;
    return Image.rgbaToColor(90 + 120 * t, 150 + 70 * t, 235, 255);
  });
  return await img.encodeJPEG(70);
}

if (import.meta.main) {
  const files: [string, Uint8Array][] = [
    ["logo.png", await logo()],
    ["landscape.jpg", await landscape()],
  ];
  for (const [name, bytes] of files) {
    await Deno.writeFile(new URL(name, OUT), bytes);
    console.log(`wrote scripts/demo/site/${name} (${bytes.length} bytes)`);
  }
}
