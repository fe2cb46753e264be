/**
 * Image quality measures used by the tests and `deno task bench:image`.
 *
 * @module
 */

/**
 * Peak signal-to-noise ratio in dB between two RGBA images of the same size, over the R, G and
 * B channels (alpha is ignored). `Infinity` when they are identical.
 */
export function psnr(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length || a.length % 4 !== 0) {
    throw new RangeError(
      `Cannot compare images: sizes differ or are not RGBA: ${a.length} and ${b.length} bytes`,
    );
  }
  let sum = 0;
  for (let i = 0; i < a.length; i += 4) {
    const dr = a[i] - b[i], dg = a[i + 1] - b[i + 1], db = a[i + 2] - b[i + 2];
    sum += dr * dr + dg * dg + db * db;
  }
  if (sum === 0) return Infinity;
  const mse = sum / ((a.length / 4) * 3);
  return 10 * Math.log10((255 * 255) / mse);
}
