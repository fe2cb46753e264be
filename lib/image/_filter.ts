/**
 * Lanczos-3 filter tables shared by the TypeScript rescaler and the WASM one: for each output
 * pixel of one axis, the first source index and `taps` 14-bit fixed-point weights that sum to
 * exactly 2^14. Both implementations read the same tables, so they agree bit for bit.
 *
 * The geometry is ImageMagick's (`resize.c`, `HorizontalFilter`): output pixel x is centred on
 * source coordinate `(x + 0.5) / factor`; when shrinking, the kernel is stretched by the shrink
 * factor (support 3 × factor source pixels each side), which is what makes the result
 * area-correct (every source pixel contributes, no aliasing); when enlarging, support is 3.
 * Weights are normalised to sum to 1 before quantising.
 *
 * @module
 */

/** Fractional bits of the fixed-point weights. */
export const FILTER_BITS = 14;
const ONE = 1 << FILTER_BITS;
/** Lanczos-3: sinc(x) · sinc(x / 3) on |x| < 3. */
const LOBES = 3;
/** ImageMagick's MagickEpsilon, added to the centre so ties fall as they do there. */
const EPSILON = 1e-12;

/** One axis of a resize. */
export interface FilterTable {
  /** Source length. */
  readonly srcLength: number;
  /** Destination length. */
  readonly dstLength: number;
  /** Weights per output pixel (even, so the SIMD code can apply them in pairs). */
  readonly taps: number;
  /** First source index read for each output pixel; `start + taps ≤ srcLength + 1`. */
  readonly starts: Int32Array;
  /** `taps` weights per output pixel, row-major; each row sums to 2^14. */
  readonly weights: Int16Array;
}

/** The Lanczos-3 kernel. */
export function lanczos3(x: number): number {
  x = Math.abs(x);
  if (x < 1e-9) return 1;
  if (x >= LOBES) return 0;
  const px = Math.PI * x;
  return (LOBES * Math.sin(px) * Math.sin(px / LOBES)) / (px * px);
}

/** Builds the table resampling `srcLength` pixels to `dstLength` (both ≥ 1). */
export function filterTable(srcLength: number, dstLength: number): FilterTable {
  const factor = dstLength / srcLength;
  const scale = Math.max(1 / factor, 1);
  const support = LOBES * scale;
  const spans: { start: number; stop: number; centre: number }[] = [];
  let widest = 1;
  for (let x = 0; x < dstLength; x++) {
    const centre = (x + 0.5) / factor + EPSILON;
    const start = Math.max(Math.trunc(centre - support + 0.5), 0);
    const stop = Math.min(Math.trunc(centre + support + 0.5), srcLength);
    spans.push({ start, stop, centre });
    widest = Math.max(widest, stop - start);
  }
  const taps = widest + (widest & 1);
  const starts = new Int32Array(dstLength);
  const weights = new Int16Array(dstLength * taps);
  const w = new Float64Array(taps);
  for (let x = 0; x < dstLength; x++) {
    const { start, stop, centre } = spans[x];
    const n = stop - start;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      w[i] = lanczos3((start + i - centre + 0.5) / scale);
      sum += w[i];
    }
    // Place the window so that it stays inside [0, srcLength + 1).
    const first = Math.max(0, Math.min(start, srcLength - taps));
    starts[x] = first;
    const row = x * taps + (start - first);
    let total = 0, peak = 0;
    for (let i = 0; i < n; i++) {
      const q = Math.round((w[i] / sum) * ONE);
      weights[row + i] = q;
      total += q;
      if (q > weights[row + peak]) peak = i;
    }
    // Rounding may leave the row a few units off 2^14: give the difference to the largest weight.
    weights[row + peak] += ONE - total;
  }
  return { srcLength, dstLength, taps, starts, weights };
}
