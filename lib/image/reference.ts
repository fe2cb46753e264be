/**
 * The TypeScript rescaler: the oracle the WASM module (`wasm/resize.ts`) must match byte for
 * byte, and the baseline of `deno task bench:image`. Plain scalar loops over the same filter
 * tables and the same integer arithmetic as the module:
 *
 * 1. premultiply alpha, `c·a/255` rounded, only if some pixel has alpha below 255;
 * 2. vertical pass (skipped if the height does not change) into an 8-bit intermediate;
 * 3. horizontal pass (skipped if the width does not change);
 * 4. each channel is `clamp((Σ weight·value + 2^13) >> 14, 0, 255)` in both passes;
 * 5. un-premultiply, `c·255/a` rounded and capped at 255 (colour 0 where alpha is 0).
 *
 * @example
 * ```ts
 * import { TsResizer } from "./reference.ts";
 *
 * const red = new Uint8Array(4 * 4 * 4);
 * for (let i = 0; i < red.length; i += 4) red.set([255, 0, 0, 255], i);
 * const out = new TsResizer().resize(red, 4, 4, 2, 2);
 * if (out.join() !== "255,0,0,255,".repeat(4).slice(0, -1)) throw new Error("red stays red");
 * ```
 *
 * @module
 */
import { checkResize } from "./_common.ts";
import { FILTER_BITS, type FilterTable, filterTable } from "./_filter.ts";
import type { Pixels, Resizer } from "./types.ts";

const ROUND = 1 << (FILTER_BITS - 1);

function clamp8(acc: number): number {
  const v = (acc + ROUND) >> FILTER_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** True if some pixel has alpha below 255. */
export function hasAlpha(p: Pixels): boolean {
  for (let i = 3; i < p.length; i += 4) if (p[i] !== 255) return true;
  return false;
}

/** Rounded `c·a/255` for 8-bit c and a (exact: the classic `(t + (t >> 8)) >> 8`). */
function mul255(c: number, a: number): number {
  const t = c * a + 128;
  return (t + (t >> 8)) >> 8;
}

function premultiply(p: Uint8Array): void {
  for (let i = 0; i < p.length; i += 4) {
    const a = p[i + 3];
    if (a === 255) continue;
    p[i] = mul255(p[i], a);
    p[i + 1] = mul255(p[i + 1], a);
    p[i + 2] = mul255(p[i + 2], a);
  }
}

function unpremultiply(p: Uint8Array): void {
  for (let i = 0; i < p.length; i += 4) {
    const a = p[i + 3];
    if (a === 255) continue;
    for (let c = 0; c < 3; c++) {
      p[i + c] = a === 0 ? 0 : Math.min(255, Math.floor((p[i + c] * 255 + (a >> 1)) / a));
    }
  }
}

/** Vertical pass: `h` source rows of width `w` to `t.dstLength` rows. */
function vertical(src: Pixels, w: number, t: FilterTable, dst: Uint8Array): void {
  const stride = w * 4, k = t.taps, srcRows = t.srcLength;
  for (let y = 0; y < t.dstLength; y++) {
    const first = t.starts[y];
    for (let i = 0; i < stride; i++) {
      let acc = 0;
      for (let j = 0; j < k; j++) {
        const row = first + j;
        if (row < srcRows) acc += t.weights[y * k + j] * src[row * stride + i];
      }
      dst[y * stride + i] = clamp8(acc);
    }
  }
}

/** Horizontal pass: rows of width `t.srcLength` to rows of width `t.dstLength`. */
function horizontal(src: Pixels, h: number, t: FilterTable, dst: Uint8Array): void {
  const sw = t.srcLength, dw = t.dstLength, k = t.taps;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < dw; x++) {
      const first = t.starts[x];
      for (let c = 0; c < 4; c++) {
        let acc = 0;
        for (let j = 0; j < k; j++) {
          const col = first + j;
          if (col < sw) acc += t.weights[x * k + j] * src[(y * sw + col) * 4 + c];
        }
        dst[(y * dw + x) * 4 + c] = clamp8(acc);
      }
    }
  }
}

/** The reference rescaler (allocates its intermediate buffers on every call). */
export class TsResizer implements Resizer {
  resize(
    src: Pixels,
    sw: number,
    sh: number,
    dw: number,
    dh: number,
    out?: Uint8Array,
  ): Uint8Array {
    checkResize(src, sw, sh, dw, dh, out);
    const dst = out ?? new Uint8Array(dw * dh * 4);
    const alpha = hasAlpha(src);
    let cur = new Uint8Array(src);
    if (alpha) premultiply(cur);
    if (dh !== sh) {
      const next = new Uint8Array(sw * dh * 4);
      vertical(cur, sw, filterTable(sh, dh), next);
      cur = next;
    }
    if (dw !== sw) {
      const next = new Uint8Array(dw * dh * 4);
      horizontal(cur, dh, filterTable(sw, dw), next);
      cur = next;
    }
    dst.set(cur);
    if (alpha) unpremultiply(dst);
    return dst;
  }
}
