// Separable Lanczos-3 RGBA rescaler in AssemblyScript (SIMD).
//
// Behaviour is defined by lib/image/reference.ts (the oracle); this file must agree with it
// byte for byte (tests/image_resize_differential_test.ts). The filter tables (first source
// index and 14-bit fixed-point weights per output pixel) are computed once by the host
// (lib/image/_filter.ts) and written into this module's memory: both implementations share them,
// so only the integer arithmetic below has to agree. ABI and memory layout: wasm/README.md.
//
// Order: premultiply alpha (only when some alpha is below 255), vertical pass (source ->
// intermediate, sw x dh), horizontal pass (intermediate -> destination, dw x dh), un-premultiply.
// A pass whose dimension does not change is skipped. Both passes accumulate u8 x i16 products in
// i32 lanes with i32x4.dot_i16x8_s (two taps per instruction) and round once:
// clamp((acc + 8192) >> 14, 0, 255).
//
// No allocation: the runtime is the stub and the buffers are regions of linear memory laid out by
// prepare(), which grows memory only when a larger image needs it.

const PAGE: usize = 65536;
const SLACK: usize = 64; // over-read / over-write room after every region
const ROUND: i32 = 1 << 13;
const BITS: i32 = 14;

let srcPtr: usize = 0;
let tmpPtr: usize = 0;
let dstPtr: usize = 0;
let vStartPtr: usize = 0;
let vWeightPtr: usize = 0;
let hStartPtr: usize = 0;
let hWeightPtr: usize = 0;

// @ts-ignore: decorator
@inline function align16(n: usize): usize {
  return (n + 15) & ~(<usize>15);
}

/**
 * Lays out the regions for a sw x sh -> dw x dh resize with kv vertical and kh horizontal taps
 * per output pixel (both even), growing memory if needed. Returns 0, or -1 if memory cannot grow.
 */
export function prepare(sw: i32, sh: i32, dw: i32, dh: i32, kv: i32, kh: i32): i32 {
  let p = align16(__heap_base);
  const srcRow = <usize>sw * 4;
  srcPtr = p;
  p += align16(srcRow * <usize>(sh + 1)) + SLACK; // + 1 row: a tap pair may reach row sh
  tmpPtr = p;
  p += align16(srcRow * <usize>(dh + 1)) + SLACK;
  dstPtr = p;
  p += align16(<usize>dw * 4 * <usize>dh) + SLACK;
  vStartPtr = p;
  p += align16(<usize>dh * 4);
  vWeightPtr = p;
  p += align16(<usize>dh * <usize>kv * 2);
  hStartPtr = p;
  p += align16(<usize>dw * 4);
  hWeightPtr = p;
  p += align16(<usize>dw * <usize>kh * 2) + SLACK;
  const need = <i32>((p + PAGE - 1) / PAGE);
  const have = memory.size();
  if (need > have && memory.grow(need - have) < 0) return -1;
  return 0;
}

/** Region addresses: 0 source, 1 intermediate, 2 destination, 3/4 vertical starts/weights, 5/6 horizontal. */
export function ptr(which: i32): i32 {
  if (which == 0) return <i32>srcPtr;
  if (which == 1) return <i32>tmpPtr;
  if (which == 2) return <i32>dstPtr;
  if (which == 3) return <i32>vStartPtr;
  if (which == 4) return <i32>vWeightPtr;
  if (which == 5) return <i32>hStartPtr;
  return <i32>hWeightPtr;
}

/** True if some pixel of the n at p has alpha below 255. */
function hasAlpha(p: usize, n: usize): bool {
  const mask = i32x4.splat(0xff000000);
  const end = p + n * 4;
  let q = p;
  for (; q + 16 <= end; q += 16) {
    if (!i32x4.all_true(i32x4.eq(v128.and(v128.load(q), mask), mask))) return true;
  }
  for (; q < end; q += 4) {
    if (load<u8>(q + 3) != 255) return true;
  }
  return false;
}

// @ts-ignore: decorator
@inline function mul255(c: u32, a: u32): u32 {
  const t = c * a + 128;
  return (t + (t >> 8)) >> 8;
}

function premultiply(p: usize, n: usize): void {
  const end = p + n * 4;
  for (let q = p; q < end; q += 4) {
    const a = <u32>load<u8>(q + 3);
    if (a == 255) continue;
    store<u8>(q, <u8>mul255(<u32>load<u8>(q), a));
    store<u8>(q + 1, <u8>mul255(<u32>load<u8>(q + 1), a));
    store<u8>(q + 2, <u8>mul255(<u32>load<u8>(q + 2), a));
  }
}

// @ts-ignore: decorator
@inline function div255(c: u32, a: u32): u8 {
  const v = (c * 255 + (a >> 1)) / a;
  return <u8>(v > 255 ? 255 : v);
}

function unpremultiply(p: usize, n: usize): void {
  const end = p + n * 4;
  for (let q = p; q < end; q += 4) {
    const a = <u32>load<u8>(q + 3);
    if (a == 255) continue;
    if (a == 0) {
      store<u8>(q, 0);
      store<u8>(q + 1, 0);
      store<u8>(q + 2, 0);
      continue;
    }
    store<u8>(q, div255(<u32>load<u8>(q), a));
    store<u8>(q + 1, div255(<u32>load<u8>(q + 1), a));
    store<u8>(q + 2, div255(<u32>load<u8>(q + 2), a));
  }
}

// @ts-ignore: decorator
@inline function pack(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const r = i32x4.splat(ROUND);
  const lo = i16x8.narrow_i32x4_s(
    i32x4.shr_s(i32x4.add(a0, r), BITS),
    i32x4.shr_s(i32x4.add(a1, r), BITS),
  );
  const hi = i16x8.narrow_i32x4_s(
    i32x4.shr_s(i32x4.add(a2, r), BITS),
    i32x4.shr_s(i32x4.add(a3, r), BITS),
  );
  return i8x16.narrow_i16x8_u(lo, hi); // saturates to 0..255: the clamp
}

/**
 * Vertical pass: rows of `src` (width w, stride w*4) -> dh rows of `dst`. Four pixels (16 bytes)
 * per step; rows k and k+1 are interleaved byte by byte so one dot product applies a tap pair.
 * The last step of a row may run past the row end (it reads and writes the next row's first
 * bytes, rewritten later, or the slack after the region).
 */
function vertical(src: usize, w: i32, dst: usize, dh: i32, k: i32): void {
  const stride = <usize>w * 4;
  const chunks = (stride + 15) >> 4;
  for (let y = 0; y < dh; y++) {
    const srow = src + <usize>load<i32>(vStartPtr + (<usize>y << 2)) * stride;
    const wrow = vWeightPtr + <usize>y * <usize>k * 2;
    const drow = dst + <usize>y * stride;
    for (let c: usize = 0; c < chunks; c++) {
      let a0 = i32x4.splat(0);
      let a1 = i32x4.splat(0);
      let a2 = i32x4.splat(0);
      let a3 = i32x4.splat(0);
      let p = srow + (c << 4);
      for (let t = 0; t < k; t += 2) {
        const wv = i32x4.splat(load<i32>(wrow + (<usize>t << 1)));
        const r0 = v128.load(p);
        const r1 = v128.load(p + stride);
        const lo = i8x16.shuffle(r0, r1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        const hi = i8x16.shuffle(r0, r1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        a0 = i32x4.add(a0, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(lo), wv));
        a1 = i32x4.add(a1, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(lo), wv));
        a2 = i32x4.add(a2, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(hi), wv));
        a3 = i32x4.add(a3, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(hi), wv));
        p += stride << 1;
      }
      v128.store(drow + (c << 4), pack(a0, a1, a2, a3));
    }
  }
}

/**
 * Horizontal pass: h rows of width sw in `src` -> rows of width dw in `dst`. Per output pixel,
 * four source pixels per load, shuffled to R0 R1 G0 G1 B0 B1 A0 A1 | R2 R3 ..., two tap pairs
 * per load. Reads may pass the row end by up to 3 pixels (zero weights, or the slack).
 */
function horizontal(src: usize, sw: i32, h: i32, dst: usize, dw: i32, k: i32): void {
  const stride = <usize>sw * 4;
  const zero = i32x4.splat(0);
  for (let y = 0; y < h; y++) {
    const srow = src + <usize>y * stride;
    const drow = dst + <usize>y * <usize>dw * 4;
    for (let x = 0; x < dw; x++) {
      let p = srow + (<usize>load<i32>(hStartPtr + (<usize>x << 2)) << 2);
      let wp = hWeightPtr + <usize>x * <usize>k * 2;
      let acc = i32x4.splat(0);
      let t = 0;
      for (; t + 4 <= k; t += 4) {
        const v = v128.load(p);
        const s = i8x16.shuffle(v, v, 0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15);
        acc = i32x4.add(acc, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(s), i32x4.splat(load<i32>(wp))));
        acc = i32x4.add(acc, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(s), i32x4.splat(load<i32>(wp, 4))));
        p += 16;
        wp += 8;
      }
      if (t < k) {
        const v = v128.load64_zero(p);
        const s = i8x16.shuffle(v, v, 0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15);
        acc = i32x4.add(acc, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(s), i32x4.splat(load<i32>(wp))));
      }
      v128.store32_lane(drow + (<usize>x << 2), pack(acc, zero, zero, zero), 0);
    }
  }
}

/**
 * Resizes the source region into the destination region with the tables the host wrote after
 * prepare(). Returns 1 if the source had alpha below 255 (it was premultiplied), else 0.
 * The source region is modified (premultiplied in place).
 */
export function run(sw: i32, sh: i32, dw: i32, dh: i32, kv: i32, kh: i32): i32 {
  const n = <usize>sw * <usize>sh;
  const alpha = hasAlpha(srcPtr, n);
  if (alpha) premultiply(srcPtr, n);
  const doV = dh != sh;
  const doH = dw != sw;
  if (!doV && !doH) {
    memory.copy(dstPtr, srcPtr, n * 4);
  } else {
    // A tap pair may read the spare row after the source (with weight 0): keep it zeroed.
    memory.fill(srcPtr + n * 4, 0, <usize>sw * 4);
    const mid = doV ? (doH ? tmpPtr : dstPtr) : srcPtr;
    if (doV) vertical(srcPtr, sw, mid, dh, kv);
    if (doH) horizontal(mid, sw, dh, dstPtr, dw, kh);
  }
  if (alpha) unpremultiply(dstPtr, <usize>dw * <usize>dh);
  return alpha ? 1 : 0;
}
