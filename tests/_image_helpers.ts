/** Test images and the ImageMagick reference downscale for the image tests. */

/** A zone plate (concentric rings whose frequency rises to Nyquist at the edges), opaque grey-ish RGB. */
export function zonePlate(w: number, h: number): Uint8Array {
  const p = new Uint8Array(w * h * 4);
  const k = Math.PI / Math.max(w, h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const dx = x - w / 2, dy = y - h / 2;
      const v = Math.round(127.5 + 127.5 * Math.cos(k * (dx * dx + dy * dy)));
      const i = (y * w + x) * 4;
      p[i] = v;
      p[i + 1] = 255 - v;
      p[i + 2] = (v + x) & 255;
      p[i + 3] = 255;
    }
  }
  return p;
}

/** A one-pixel checkerboard (the highest frequency there is) in two colours. */
export function checkerboard(w: number, h: number): Uint8Array {
  const p = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const on = (x + y) & 1;
      p.set(on ? [240, 200, 20, 255] : [10, 40, 230, 255], (y * w + x) * 4);
    }
  }
  return p;
}

/** Nearest-neighbour downscale (the aliasing baseline the quality bound must reject). */
export function nearest(src: Uint8Array, sw: number, sh: number, dw: number, dh: number) {
  const out = new Uint8Array(dw * dh * 4);
  for (let y = 0; y < dh; y++) {
    const sy = Math.min(sh - 1, Math.floor((y + 0.5) * sh / dh));
    for (let x = 0; x < dw; x++) {
      const sx = Math.min(sw - 1, Math.floor((x + 0.5) * sw / dw));
      out.set(src.subarray((sy * sw + sx) * 4, (sy * sw + sx) * 4 + 4), (y * dw + x) * 4);
    }
  }
  return out;
}

/** The real ImageMagick: /usr/bin/convert when present (a stand-in may come first on PATH). */
const CONVERT = (() => {
  try {
    Deno.statSync("/usr/bin/convert");
    return "/usr/bin/convert";
  } catch {
    return "convert";
  }
})();

/** Runs ImageMagick's convert with `args`, `input` on stdin; returns stdout. */
export async function magick(args: string[], input?: Uint8Array): Promise<Uint8Array> {
  const cmd = new Deno.Command(CONVERT, {
    args,
    stdin: input ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (input) {
    const w = cmd.stdin.getWriter();
    await w.write(input);
    await w.close();
  }
  const { code, stdout, stderr } = await cmd.output();
  if (code !== 0) throw new Error(`convert failed: ${new TextDecoder().decode(stderr)}`);
  return stdout;
}

/** ImageMagick's `-filter Lanczos -resize WxH!` of raw RGBA (needs `convert`, Debian imagemagick). */
export async function magickResize(
  src: Uint8Array,
  sw: number,
  sh: number,
  dw: number,
  dh: number,
): Promise<Uint8Array> {
  const out = await magick([
    "-size",
    `${sw}x${sh}`,
    "-depth",
    "8",
    "rgba:-",
    "-filter",
    "Lanczos",
    "-resize",
    `${dw}x${dh}!`,
    "-depth",
    "8",
    "rgba:-",
  ], src);
  if (out.length !== dw * dh * 4) {
    throw new Error(`convert gave ${out.length} bytes, expected ${dw * dh * 4}`);
  }
  return out;
}

/** A smooth photo-like test image (gradients, soft discs, some texture), opaque. */
export function softScene(w: number, h: number): Uint8Array {
  const p = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 4;
      const d = Math.hypot(x - w * 0.3, y - h * 0.4) / w;
      const t = 20 * Math.sin(x / 7) * Math.cos(y / 11);
      p[i] = Math.max(0, Math.min(255, Math.round(200 - 300 * d + t)));
      p[i + 1] = Math.round((150 * y) / h + 50);
      p[i + 2] = Math.max(0, Math.min(255, Math.round((255 * x) / w - t)));
      p[i + 3] = 255;
    }
  }
  return p;
}
