// JPEG decoder in AssemblyScript with DCT-domain downscaling (1/1, 1/2, 1/4, 1/8), RGBA out.
//
// Baseline and extended sequential (SOF0, SOF1) and progressive (SOF2) Huffman JPEGs, 8-bit,
// one (grey) or three (YCbCr) components, any sampling factors 1..4, restart intervals. Every
// scan decodes into per-component coefficient planes; then each 8x8 block goes through a scaled
// inverse DCT to NxN pixels (N = 8 >> scale) whose values are the means of the full-size IDCT
// outputs they cover, which is what libjpeg's reduced IDCTs compute for scale_denom.
// As in libjpeg, a subsampled chroma component is decoded with a larger IDCT (up to 8x8) instead
// of being upsampled when the ratios allow (4:2:0 at 1/2 and below); what remains is replicated.
// YCbCr -> RGB uses libjpeg's fixed-point constants.
//
// Tested against libjpeg's own scaled decoding (ImageMagick `-define jpeg:size=`), not
// byte-identical (IDCT arithmetic differs): tests/image_jpeg_test.ts states the bounds.
// Every read of input bytes is checked against the input length; corrupt entropy data decodes
// as zeros. No allocation: regions of linear memory are laid out per decode (growing memory when
// an image needs more). ABI: wasm/README.md.

const PAGE: usize = 65536;

// Status codes (keep equal to lib/image/jpeg.ts).
const OK: i32 = 0;
const E_FORMAT: i32 = -1; // not a JPEG, or a malformed marker segment
const E_UNSUPPORTED: i32 = -2; // arithmetic coding, lossless, 12-bit, 2 or 4 components
const E_MEMORY: i32 = -3;

// ---- Static region (after __heap_base) ---------------------------------------------------
// Quantisation tables: 4 x 64 i32, natural order.
// Huffman tables: 8 (0-3 DC, 4-7 AC), each HT_SIZE bytes:
//   fast[512] u16 (len << 8 | symbol, 0 = not in the table), maxcode[18] i32, valoff[17] i32,
//   values[256] u8.
const HT_FAST: usize = 0;
const HT_MAXCODE: usize = 1024;
const HT_VALOFF: usize = HT_MAXCODE + 18 * 4;
const HT_VALUES: usize = HT_VALOFF + 17 * 4;
// AC tables also get fastAc[512] i32: for a 9-bit window holding a whole code and its value
// bits, (value << 8) | (run << 4) | (code length + value length); 0 = take the slow path.
const HT_FASTAC: usize = HT_VALUES + 256;
const HT_SIZE: usize = HT_FASTAC + 512 * 4;
const FAST_BITS: i32 = 9;

let qtBase: usize = 0;
let htBase: usize = 0;
let cosBase: usize = 0; // 2 modes x 4 scales x 8 x 8 f32: T[m][s][k][u]
let cosTBase: usize = 0; // the same transposed: T[m][s][u][k] (k padded to 8)
let lowpass: bool = false; // the mode of this decode (see decode())
let qfBase: usize = 0; // quantisation tables as f32, 4 x 64, natural order
let scratchBase: usize = 0; // IDCT scratch: 64 f32
let inPtr: usize = 0;
let dynBase: usize = 0;

// Frame.
let width: i32 = 0;
let height: i32 = 0;
let ncomp: i32 = 0;
let progressive: bool = false;
let hmax: i32 = 1;
let vmax: i32 = 1;
let mcusX: i32 = 0;
let mcusY: i32 = 0;
let restartInterval: i32 = 0;
let outW: i32 = 0;
let outH: i32 = 0;
let outPtr: usize = 0;
let adobeTransform: i32 = -1;
let minN: i32 = 8; // the scaled block size of a component with the largest sampling factors
let upPtr: usize = 0; // scratch rows of fancy-upsampled chroma

// Components (up to 3): id, h, v, tq, blocks per line/column (allocated), coefficient plane,
// DC predictor, scaled IDCT size, plane (pixels) pointer and width.
const cId: usize = memory.data(16); // i32[3]
const cH: usize = memory.data(16); // i32[3]
const cV: usize = memory.data(16); // i32[3]
const cTq: usize = memory.data(16); // i32[3]
const cBw: usize = memory.data(16); // i32[3]
const cBh: usize = memory.data(16); // i32[3]
const cCoef: usize = memory.data(16); // usize[3]
const cPred: usize = memory.data(16); // i32[3]
const cN: usize = memory.data(16); // i32[3]
const cPlane: usize = memory.data(16); // usize[3]
const cPw: usize = memory.data(16); // i32[3]
const cTd: usize = memory.data(16); // i32[3]
const cTa: usize = memory.data(16); // i32[3]

// Bit reader.
let pos: usize = 0;
let end: usize = 0;
let bitBuf: u32 = 0;
let bitCnt: i32 = 0;
let markerHit: bool = false;
let eobrun: i32 = 0;

const ZIGZAG: usize = memory.data<u8>([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
  13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
  52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
  // 16 spare entries: a corrupt run may index past 63; they map to 63 (and are then ignored).
  63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
]);

// @ts-ignore: decorator
@inline function align16(n: usize): usize {
  return (n + 15) & ~(<usize>15);
}

function ensure(top: usize): bool {
  const need = <i32>((top + PAGE - 1) / PAGE);
  const have = memory.size();
  return need <= have || memory.grow(need - have) >= 0;
}

function init(): void {
  qtBase = align16(__heap_base);
  htBase = qtBase + 4 * 64 * 4;
  cosBase = align16(htBase + 8 * HT_SIZE);
  cosTBase = cosBase + 8 * 64 * 4;
  qfBase = cosTBase + 8 * 64 * 4;
  scratchBase = qfBase + 4 * 64 * 4;
  inPtr = align16(scratchBase + 64 * 4 + 64);
  ensure(inPtr);
  // Mode 0, T[0][s][k][u]: output k of an n = 8 >> s point transform from coefficient u < 8:
  // the mean of the 8 / n full-size IDCT outputs it covers (libjpeg's reduced IDCTs are this box
  // average). Mode 1 (lowpass): the n-point IDCT of the n lowest coefficients only, the others
  // dropped: a sharper cut-off that aliases less before a further resize.
  for (let s = 0; s < 8; s++) {
    const n = 8 >> (s & 3);
    const group = 8 / n;
    for (let k = 0; k < n; k++) {
      for (let u = 0; u < 8; u++) {
        const c = u == 0 ? Math.SQRT1_2 : 1.0;
        let sum = 0.0;
        for (let j = k * group; j < (k + 1) * group; j++) {
          sum += Math.cos(((2 * j + 1) * u * Math.PI) / 16);
        }
        let t = <f32>((c * sum) / 2 / group);
        if (s >= 4) t = u < n ? <f32>((c * Math.cos(((2 * k + 1) * u * Math.PI) / (2 * n))) / 2) : 0;
        store<f32>(cosBase + ((<usize>s * 64 + <usize>k * 8 + <usize>u) << 2), t);
        store<f32>(cosTBase + ((<usize>s * 64 + <usize>u * 8 + <usize>k) << 2), t);
      }
    }
  }
}
init();

/** Makes room for `len` input bytes; returns where the host writes them (0 if no memory). */
export function input(len: i32): i32 {
  if (!ensure(inPtr + <usize>len + 16)) return 0;
  return <i32>inPtr;
}

/** Frame facts after decode/probe: 0 width, 1 height, 2 out width, 3 out height, 4 RGBA pointer, 5 progressive, 6 components. */
export function info(which: i32): i32 {
  if (which == 0) return width;
  if (which == 1) return height;
  if (which == 2) return outW;
  if (which == 3) return outH;
  if (which == 4) return <i32>outPtr;
  if (which == 5) return progressive ? 1 : 0;
  return ncomp;
}

// ---- Bit reader -----------------------------------------------------------------------------

// @ts-ignore: decorator
@inline function nextByte(): u32 {
  if (markerHit || pos >= end) return 0;
  const b = <u32>load<u8>(pos);
  if (b != 0xff) {
    pos++;
    return b;
  }
  const nb = pos + 1 < end ? <u32>load<u8>(pos + 1) : 0xd9;
  if (nb == 0) {
    pos += 2;
    return 0xff;
  }
  markerHit = true; // a marker ends the entropy-coded segment: feed zeros, do not consume it
  return 0;
}

// @ts-ignore: decorator
@inline function fill(): void {
  while (bitCnt <= 24) {
    bitBuf |= nextByte() << (24 - bitCnt);
    bitCnt += 8;
  }
}

function getBits(n: i32): i32 {
  if (n == 0) return 0;
  fill();
  const v = bitBuf >>> (32 - n);
  bitBuf <<= n;
  bitCnt -= n;
  return <i32>v;
}

// @ts-ignore: decorator
@inline function getBit(): i32 {
  fill();
  const v = bitBuf >>> 31;
  bitBuf <<= 1;
  bitCnt--;
  return <i32>v;
}

// @ts-ignore: decorator
@inline function extend(v: i32, s: i32): i32 {
  return v < (1 << (s - 1)) ? v + (-1 << s) + 1 : v;
}

// @ts-ignore: decorator
@inline function decodeHuff(t: usize): i32 {
  fill();
  const e = <i32>load<u16>(t + HT_FAST + ((<usize>(bitBuf >>> (32 - FAST_BITS))) << 1));
  if (e != 0) {
    const len = e >> 8;
    bitBuf <<= len;
    bitCnt -= len;
    return e & 255;
  }
  for (let len = FAST_BITS + 1; len <= 16; len++) {
    const code = <i32>(bitBuf >>> (32 - len));
    if (code <= load<i32>(t + HT_MAXCODE + (<usize>len << 2))) {
      bitBuf <<= len;
      bitCnt -= len;
      const idx = code + load<i32>(t + HT_VALOFF + (<usize>len << 2));
      return idx >= 0 && idx < 256 ? <i32>load<u8>(t + HT_VALUES + <usize>idx) : 0;
    }
  }
  bitBuf <<= 16; // corrupt: skip and decode as zeros
  bitCnt -= 16;
  return 0;
}

function resetBits(): void {
  bitBuf = 0;
  bitCnt = 0;
  markerHit = false;
}

/** At a restart: skip the RSTn marker, reset the bit reader, predictors and EOB run. */
function restart(): void {
  resetBits();
  pos = nextMarker(pos);
  if (pos + 1 < end && load<u8>(pos + 1) >= 0xd0 && load<u8>(pos + 1) <= 0xd7) pos += 2;
  for (let c = 0; c < 3; c++) store<i32>(cPred + (<usize>(c) << 2), 0);
  eobrun = 0;
}

/** The first marker (0xFF followed by neither 0x00 nor 0xFF) at or after p, or the end. */
function nextMarker(p: usize): usize {
  while (p + 1 < end) {
    if (load<u8>(p) == 0xff) {
      const m = load<u8>(p + 1);
      if (m != 0 && m != 0xff) return p;
    }
    p++;
  }
  return end;
}

// ---- Marker segments ------------------------------------------------------------------------

// @ts-ignore: decorator
@inline function rd16(p: usize): i32 {
  return (<i32>load<u8>(p) << 8) | <i32>load<u8>(p + 1);
}

function readDQT(p: usize, e: usize): i32 {
  while (p < e) {
    const pq = <i32>load<u8>(p) >> 4;
    const tq = <i32>load<u8>(p) & 15;
    p++;
    if (tq > 3 || pq > 1 || p + (pq ? 128 : 64) > e) return E_FORMAT;
    for (let i = 0; i < 64; i++) {
      const q = pq ? rd16(p + (<usize>i << 1)) : <i32>load<u8>(p + <usize>i);
      const at = (<usize>tq * 64 + <usize>load<u8>(ZIGZAG + <usize>i)) << 2;
      store<i32>(qtBase + at, q);
      store<f32>(qfBase + at, <f32>q);
    }
    p += pq ? 128 : 64;
  }
  return OK;
}

function readDHT(p: usize, e: usize): i32 {
  while (p < e) {
    if (p + 17 > e) return E_FORMAT;
    const tc = <i32>load<u8>(p) >> 4;
    const th = <i32>load<u8>(p) & 15;
    if (tc > 1 || th > 3) return E_FORMAT;
    const t = htBase + <usize>(tc * 4 + th) * HT_SIZE;
    let total = 0;
    for (let i = 1; i <= 16; i++) total += <i32>load<u8>(p + <usize>i);
    if (total > 256 || p + 17 + <usize>total > e) return E_FORMAT;
    memory.copy(t + HT_VALUES, p + 17, <usize>total);
    memory.fill(t + HT_FAST, 0, 1024);
    let code = 0;
    let k = 0;
    for (let len = 1; len <= 16; len++) {
      const count = <i32>load<u8>(p + <usize>len);
      store<i32>(t + HT_VALOFF + (<usize>len << 2), k - code);
      for (let i = 0; i < count; i++) {
        if (len <= FAST_BITS) {
          const shift = FAST_BITS - len;
          const first = code << shift;
          const entry = <u16>((len << 8) | <i32>load<u8>(t + HT_VALUES + <usize>(k + i)));
          for (let j = 0; j < 1 << shift; j++) {
            store<u16>(t + HT_FAST + (<usize>(first + j) << 1), entry);
          }
        }
        code++;
      }
      k += count;
      store<i32>(t + HT_MAXCODE + (<usize>len << 2), count ? code - 1 : -1);
      if (code > 1 << len) return E_FORMAT;
      code <<= 1;
    }
    store<i32>(t + HT_MAXCODE + (17 << 2), 0x7fffffff);
    if (tc == 1) buildFastAc(t);
    p += 17 + <usize>total;
  }
  return OK;
}

/** Fills an AC table's fastAc from its fast table (see HT_FASTAC). */
function buildFastAc(t: usize): void {
  for (let i = 0; i < 1 << FAST_BITS; i++) {
    const e = <i32>load<u16>(t + HT_FAST + (<usize>i << 1));
    let entry = 0;
    if (e != 0) {
      const len = e >> 8;
      const run = (e >> 4) & 15;
      const size = e & 15;
      if (size != 0 && len + size <= FAST_BITS) {
        const bits = ((i << len) & ((1 << FAST_BITS) - 1)) >> (FAST_BITS - size);
        entry = (extend(bits, size) << 8) | (run << 4) | (len + size);
      }
    }
    store<i32>(t + HT_FASTAC + (<usize>i << 2), entry);
  }
}

function readSOF(p: usize, e: usize, marker: i32, shift: i32): i32 {
  if (shift < 0 || shift > 3) return E_FORMAT;
  if (marker == 0xc3 || marker >= 0xc5) return E_UNSUPPORTED; // lossless, hierarchical, arithmetic
  if (p + 6 > e) return E_FORMAT;
  if (load<u8>(p) != 8) return E_UNSUPPORTED;
  height = rd16(p + 1);
  width = rd16(p + 3);
  ncomp = <i32>load<u8>(p + 5);
  progressive = marker == 0xc2;
  if (width == 0 || height == 0) return E_UNSUPPORTED; // DNL-defined height: not supported
  if (ncomp != 1 && ncomp != 3) return E_UNSUPPORTED;
  if (p + 6 + <usize>ncomp * 3 > e) return E_FORMAT;
  hmax = 1;
  vmax = 1;
  for (let c = 0; c < ncomp; c++) {
    const q = p + 6 + <usize>c * 3;
    store<i32>(cId + (<usize>(c) << 2), <i32>load<u8>(q));
    store<i32>(cH + (<usize>(c) << 2), <i32>load<u8>(q + 1) >> 4);
    store<i32>(cV + (<usize>(c) << 2), <i32>load<u8>(q + 1) & 15);
    store<i32>(cTq + (<usize>(c) << 2), <i32>load<u8>(q + 2) & 3);
    if (load<i32>(cH + (<usize>(c) << 2)) < 1 || load<i32>(cH + (<usize>(c) << 2)) > 4 || load<i32>(cV + (<usize>(c) << 2)) < 1 || load<i32>(cV + (<usize>(c) << 2)) > 4) return E_FORMAT;
    if (load<i32>(cH + (<usize>(c) << 2)) > hmax) hmax = load<i32>(cH + (<usize>(c) << 2));
    if (load<i32>(cV + (<usize>(c) << 2)) > vmax) vmax = load<i32>(cV + (<usize>(c) << 2));
  }
  if (ncomp == 1) {
    // A lone component is never interleaved: its blocks cover the image, whatever its factors.
    store<i32>(cH + (<usize>(0) << 2), 1);
    store<i32>(cV + (<usize>(0) << 2), 1);
    hmax = 1;
    vmax = 1;
  }
  mcusX = (width + 8 * hmax - 1) / (8 * hmax);
  mcusY = (height + 8 * vmax - 1) / (8 * vmax);
  minN = 8 >> shift;
  outW = (width * minN + 7) / 8;
  outH = (height * minN + 7) / 8;
  return OK;
}

/** Lays out coefficient planes, pixel planes and the RGBA output after the input; zeroes coefficients. */
function layout(): i32 {
  // Lay out coefficient planes, pixel planes and the RGBA output after the input.
  let top = dynBase;
  for (let c = 0; c < ncomp; c++) {
    store<i32>(cBw + (<usize>(c) << 2), mcusX * load<i32>(cH + (<usize>(c) << 2)));
    store<i32>(cBh + (<usize>(c) << 2), mcusY * load<i32>(cV + (<usize>(c) << 2)));
    // libjpeg's rule: grow the component's IDCT while it still divides the sampling ratio.
    let n = minN;
    while (n < 8 && (hmax * minN) % (load<i32>(cH + (<usize>(c) << 2)) * n * 2) == 0 && (vmax * minN) % (load<i32>(cV + (<usize>(c) << 2)) * n * 2) == 0) {
      n *= 2;
    }
    store<i32>(cN + (<usize>(c) << 2), n);
    store<usize>(cCoef + (<usize>(c) << 2), top);
    top = align16(top + <usize>load<i32>(cBw + (<usize>(c) << 2)) * <usize>load<i32>(cBh + (<usize>(c) << 2)) * 128);
    store<usize>(cPlane + (<usize>(c) << 2), top);
    store<i32>(cPw + (<usize>(c) << 2), load<i32>(cBw + (<usize>(c) << 2)) * n);
    top = align16(top + <usize>load<i32>(cPw + (<usize>(c) << 2)) * <usize>(load<i32>(cBh + (<usize>(c) << 2)) * n));
  }
  outPtr = top;
  top += <usize>outW * <usize>outH * 4 + 16;
  upPtr = align16(top); // two upsampled chroma rows (fancy upsampling), with room for 2·cw > outW
  top = upPtr + 2 * (<usize>outW + 64);
  if (!ensure(top)) return E_MEMORY;
  for (let c = 0; c < ncomp; c++) memory.fill(load<usize>(cCoef + (<usize>(c) << 2)), 0, <usize>load<i32>(cBw + (<usize>(c) << 2)) * <usize>load<i32>(cBh + (<usize>(c) << 2)) * 128);
  return OK;
}

// ---- Entropy decoding -----------------------------------------------------------------------

/** Baseline block: DC and AC coefficients, quantised values, natural order. */
function blockBaseline(c: i32, blk: usize): void {
  const dc = htBase + <usize>load<i32>(cTd + (<usize>(c) << 2)) * HT_SIZE;
  const ac = htBase + <usize>(4 + load<i32>(cTa + (<usize>(c) << 2))) * HT_SIZE;
  const t = decodeHuff(dc);
  const diff = t ? extend(getBits(t), t) : 0;
  store<i32>(cPred + (<usize>(c) << 2), load<i32>(cPred + (<usize>(c) << 2)) + diff);
  store<i16>(blk, <i16>load<i32>(cPred + (<usize>(c) << 2)));
  for (let k = 1; k < 64; k++) {
    fill();
    const fast = load<i32>(ac + HT_FASTAC + (<usize>(bitBuf >>> (32 - FAST_BITS)) << 2));
    if (fast != 0) {
      const used = fast & 15;
      bitBuf <<= used;
      bitCnt -= used;
      k += (fast >> 4) & 15;
      if (k < 64) store<i16>(blk + (<usize>load<u8>(ZIGZAG + <usize>k) << 1), <i16>(fast >> 8));
      continue;
    }
    const rs = decodeHuff(ac);
    const r = rs >> 4;
    const s = rs & 15;
    if (s) {
      k += r;
      const v = extend(getBits(s), s);
      if (k < 64) store<i16>(blk + (<usize>load<u8>(ZIGZAG + <usize>k) << 1), <i16>v);
    } else {
      if (r != 15) break;
      k += 15;
    }
  }
}

let ss: i32 = 0;
let se: i32 = 63;
let ah: i32 = 0;
let al: i32 = 0;

function blockDC(c: i32, blk: usize): void {
  if (ah == 0) {
    const t = decodeHuff(htBase + <usize>load<i32>(cTd + (<usize>(c) << 2)) * HT_SIZE);
    const diff = t ? extend(getBits(t), t) : 0;
    store<i32>(cPred + (<usize>(c) << 2), load<i32>(cPred + (<usize>(c) << 2)) + diff);
    store<i16>(blk, <i16>(load<i32>(cPred + (<usize>(c) << 2)) << al));
  } else if (getBit()) {
    store<i16>(blk, <i16>(<i32>load<i16>(blk) | (1 << al)));
  }
}

function blockACFirst(c: i32, blk: usize): void {
  if (eobrun > 0) {
    eobrun--;
    return;
  }
  const ac = htBase + <usize>(4 + load<i32>(cTa + (<usize>(c) << 2))) * HT_SIZE;
  for (let k = ss; k <= se; k++) {
    fill();
    const fast = load<i32>(ac + HT_FASTAC + (<usize>(bitBuf >>> (32 - FAST_BITS)) << 2));
    if (fast != 0) {
      const used = fast & 15;
      bitBuf <<= used;
      bitCnt -= used;
      k += (fast >> 4) & 15;
      if (k < 64) store<i16>(blk + (<usize>load<u8>(ZIGZAG + <usize>k) << 1), <i16>((fast >> 8) << al));
      continue;
    }
    const rs = decodeHuff(ac);
    const r = rs >> 4;
    const s = rs & 15;
    if (s) {
      k += r;
      const v = extend(getBits(s), s);
      if (k < 64) store<i16>(blk + (<usize>load<u8>(ZIGZAG + <usize>k) << 1), <i16>(v << al));
    } else if (r < 15) {
      eobrun = (1 << r) - 1;
      if (r) eobrun += getBits(r);
      break;
    } else {
      k += 15;
    }
  }
}

/** Refines one nonzero coefficient: adds ±(1 << al) if the correction bit is set. */
// @ts-ignore: decorator
@inline function refine(p: usize, bit: i32): void {
  const v = <i32>load<i16>(p);
  if (getBit() && (v & bit) == 0) store<i16>(p, <i16>(v >= 0 ? v + bit : v - bit));
}

function blockACRefine(c: i32, blk: usize): void {
  const bit = 1 << al;
  let k = ss;
  if (eobrun <= 0) {
    const ac = htBase + <usize>(4 + load<i32>(cTa + (<usize>(c) << 2))) * HT_SIZE;
    for (; k <= se;) {
      const rs = decodeHuff(ac);
      let r = rs >> 4;
      const s = rs & 15;
      let value = 0;
      if (s) {
        value = getBit() ? bit : -bit; // s must be 1 in a refinement scan
      } else if (r != 15) {
        eobrun = 1 << r;
        if (r) eobrun += getBits(r);
        break;
      }
      // Skip r zero coefficients (refining the nonzero ones on the way), then place value.
      while (k <= se) {
        const p = blk + (<usize>load<u8>(ZIGZAG + <usize>k) << 1);
        if (load<i16>(p) != 0) {
          refine(p, bit);
        } else {
          if (r == 0) {
            if (value != 0) store<i16>(p, <i16>value);
            k++;
            break;
          }
          r--;
        }
        k++;
      }
    }
  }
  if (eobrun > 0) {
    // Inside an EOB run: only the nonzero coefficients get correction bits.
    for (; k <= se; k++) {
      const p = blk + (<usize>load<u8>(ZIGZAG + <usize>k) << 1);
      if (load<i16>(p) != 0) refine(p, bit);
    }
    eobrun--;
  }
}

// @ts-ignore: decorator
@inline function decodeBlock(c: i32, blk: usize): void {
  if (!progressive) blockBaseline(c, blk);
  else if (ss == 0) blockDC(c, blk);
  else if (ah == 0) blockACFirst(c, blk);
  else blockACRefine(c, blk);
}

const sComp: usize = memory.data(16); // i32[3]

function readScan(p: usize, e: usize): i32 {
  if (ncomp == 0 || p >= e) return E_FORMAT;
  const ns = <i32>load<u8>(p);
  if (ns < 1 || ns > ncomp || p + 1 + <usize>ns * 2 + 3 > e) return E_FORMAT;
  for (let i = 0; i < ns; i++) {
    const id = <i32>load<u8>(p + 1 + <usize>i * 2);
    const t = <i32>load<u8>(p + 2 + <usize>i * 2);
    let c = -1;
    for (let j = 0; j < ncomp; j++) if (load<i32>(cId + (<usize>(j) << 2)) == id) c = j;
    if (c < 0) return E_FORMAT;
    store<i32>(sComp + (<usize>(i) << 2), c);
    store<i32>(cTd + (<usize>(c) << 2), (t >> 4) & 3);
    store<i32>(cTa + (<usize>(c) << 2), t & 3);
  }
  const q = p + 1 + <usize>ns * 2;
  ss = <i32>load<u8>(q);
  se = <i32>load<u8>(q + 1);
  ah = <i32>load<u8>(q + 2) >> 4;
  al = <i32>load<u8>(q + 2) & 15;
  if (progressive) {
    if (ss > se || se > 63 || (ss == 0 && se != 0) || (ss > 0 && ns != 1) || al > 13) {
      return E_FORMAT;
    }
  } else {
    ss = 0;
    se = 63;
  }
  pos = e;
  resetBits();
  eobrun = 0;
  for (let c = 0; c < 3; c++) store<i32>(cPred + (<usize>(c) << 2), 0);
  let count = 0;
  if (ns == 1) {
    const c = load<i32>(sComp + (<usize>(0) << 2));
    // Non-interleaved: the component's own blocks, not MCU-padded.
    const cw = (width * load<i32>(cH + (<usize>(c) << 2)) + hmax - 1) / hmax;
    const ch = (height * load<i32>(cV + (<usize>(c) << 2)) + vmax - 1) / vmax;
    const bw = (cw + 7) / 8;
    const bh = (ch + 7) / 8;
    for (let by = 0; by < bh; by++) {
      for (let bx = 0; bx < bw; bx++) {
        if (restartInterval && count == restartInterval) {
          restart();
          count = 0;
        }
        decodeBlock(c, load<usize>(cCoef + (<usize>(c) << 2)) + ((<usize>by * <usize>load<i32>(cBw + (<usize>(c) << 2)) + <usize>bx) << 7));
        count++;
      }
    }
  } else {
    for (let my = 0; my < mcusY; my++) {
      for (let mx = 0; mx < mcusX; mx++) {
        if (restartInterval && count == restartInterval) {
          restart();
          count = 0;
        }
        for (let i = 0; i < ns; i++) {
          const c = load<i32>(sComp + (<usize>(i) << 2));
          for (let v = 0; v < load<i32>(cV + (<usize>(c) << 2)); v++) {
            for (let h = 0; h < load<i32>(cH + (<usize>(c) << 2)); h++) {
              const by = my * load<i32>(cV + (<usize>(c) << 2)) + v;
              const bx = mx * load<i32>(cH + (<usize>(c) << 2)) + h;
              decodeBlock(c, load<usize>(cCoef + (<usize>(c) << 2)) + ((<usize>by * <usize>load<i32>(cBw + (<usize>(c) << 2)) + <usize>bx) << 7));
            }
          }
        }
        count++;
      }
    }
  }
  return OK;
}

// ---- Scaled IDCT and colour -----------------------------------------------------------------

/**
 * IDCT of every block of component c at size n x n into its pixel plane (SIMD: four outputs per
 * f32x4; n = 8 uses two). Rows of coefficients that are all zero (most high rows) are skipped.
 */
function idctComponent(c: i32): void {
  const n = load<i32>(cN + (<usize>(c) << 2));
  const s = n == 8 ? 0 : n == 4 ? 1 : n == 2 ? 2 : 3;
  const m: usize = lowpass ? 4 : 0;
  const T = cosBase + ((m + <usize>s) << 8);
  const TT = cosTBase + ((m + <usize>s) << 8);
  const qf = qfBase + (<usize>load<i32>(cTq + (<usize>(c) << 2)) << 8);
  const tmp = scratchBase;
  const pw = <usize>load<i32>(cPw + (<usize>(c) << 2));
  const bw = load<i32>(cBw + (<usize>(c) << 2));
  const bh = load<i32>(cBh + (<usize>(c) << 2));
  const coef = load<usize>(cCoef + (<usize>(c) << 2));
  const plane = load<usize>(cPlane + (<usize>(c) << 2));
  const wide = n == 8;
  const zero = f32x4.splat(0);
  const bias = f32x4.splat(128.5);
  for (let by = 0; by < bh; by++) {
    for (let bx = 0; bx < bw; bx++) {
      const blk = coef + ((<usize>by * <usize>bw + <usize>bx) << 7);
      const out = plane + <usize>by * <usize>n * pw + <usize>bx * <usize>n;
      if (n == 1) {
        store<u8>(out, clamp8(<f32>load<i16>(blk) * load<f32>(qf) / 8));
        continue;
      }
      for (let v: usize = 0; v < 8; v++) {
        const raw = v128.load(blk + (v << 4));
        const t = tmp + (v << 5);
        if (!v128.any_true(raw)) {
          v128.store(t, zero);
          v128.store(t, zero, 16);
          continue;
        }
        const lo = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(raw)), v128.load(qf + (v << 5)));
        const hi = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(raw)), v128.load(qf + (v << 5), 16));
        let a0 = zero;
        let a1 = zero;
        let f: v128;
        f = f32x4.splat(f32x4.extract_lane(lo, 0));
        a0 = f32x4.add(a0, f32x4.mul(f, v128.load(TT + 0)));
        if (wide) a1 = f32x4.add(a1, f32x4.mul(f, v128.load(TT + 16)));
        f = f32x4.splat(f32x4.extract_lane(lo, 1));
        a0 = f32x4.add(a0, f32x4.mul(f, v128.load(TT + 32)));
        if (wide) a1 = f32x4.add(a1, f32x4.mul(f, v128.load(TT + 48)));
        f = f32x4.splat(f32x4.extract_lane(lo, 2));
        a0 = f32x4.add(a0, f32x4.mul(f, v128.load(TT + 64)));
        if (wide) a1 = f32x4.add(a1, f32x4.mul(f, v128.load(TT + 80)));
        f = f32x4.splat(f32x4.extract_lane(lo, 3));
        a0 = f32x4.add(a0, f32x4.mul(f, v128.load(TT + 96)));
        if (wide) a1 = f32x4.add(a1, f32x4.mul(f, v128.load(TT + 112)));
        f = f32x4.splat(f32x4.extract_lane(hi, 0));
        a0 = f32x4.add(a0, f32x4.mul(f, v128.load(TT + 128)));
        if (wide) a1 = f32x4.add(a1, f32x4.mul(f, v128.load(TT + 144)));
        f = f32x4.splat(f32x4.extract_lane(hi, 1));
        a0 = f32x4.add(a0, f32x4.mul(f, v128.load(TT + 160)));
        if (wide) a1 = f32x4.add(a1, f32x4.mul(f, v128.load(TT + 176)));
        f = f32x4.splat(f32x4.extract_lane(hi, 2));
        a0 = f32x4.add(a0, f32x4.mul(f, v128.load(TT + 192)));
        if (wide) a1 = f32x4.add(a1, f32x4.mul(f, v128.load(TT + 208)));
        f = f32x4.splat(f32x4.extract_lane(hi, 3));
        a0 = f32x4.add(a0, f32x4.mul(f, v128.load(TT + 224)));
        if (wide) a1 = f32x4.add(a1, f32x4.mul(f, v128.load(TT + 240)));
        v128.store(t, a0);
        v128.store(t, a1, 16);
      }
      for (let y: usize = 0; y < <usize>n; y++) {
        let o0 = bias;
        let o1 = bias;
        const ty = T + (y << 5);
        for (let v: usize = 0; v < 8; v++) {
          const w = f32x4.splat(load<f32>(ty + (v << 2)));
          o0 = f32x4.add(o0, f32x4.mul(w, v128.load(tmp + (v << 5))));
          if (wide) o1 = f32x4.add(o1, f32x4.mul(w, v128.load(tmp + (v << 5), 16)));
        }
        const i0 = i32x4.trunc_sat_f32x4_s(f32x4.floor(o0));
        const i1 = i32x4.trunc_sat_f32x4_s(f32x4.floor(o1));
        const px = i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(i0, i1), i16x8.narrow_i32x4_s(i0, i1));
        const dst = out + y * pw;
        if (n == 8) v128.store64_lane(dst, px, 0);
        else if (n == 4) v128.store32_lane(dst, px, 0);
        else v128.store16_lane(dst, px, 0);
      }
    }
  }
}

// @ts-ignore: decorator
@inline function clamp8(v: f32): u8 {
  const i = <i32>Mathf.floor(v + 128.5);
  return <u8>(i < 0 ? 0 : i > 255 ? 255 : i);
}

// @ts-ignore: decorator
@inline function clampi(v: i32): u8 {
  return <u8>(v < 0 ? 0 : v > 255 ? 255 : v);
}

/** log2 of a power of two from 1 to 8, or -1. */
function log2(r: i32): i32 {
  return r == 1 ? 0 : r == 2 ? 1 : r == 4 ? 2 : r == 8 ? 3 : -1;
}

const rowPtr: usize = memory.data(16); // usize[3]: plane row of each component for output row y
const rh: usize = memory.data(16); // i32[3]: horizontal replication ratio
const rv: usize = memory.data(16); // i32[3]: vertical replication ratio

const fancy: usize = memory.data(16); // i32[3]: 0 none, 1 h2v1, 2 h2v2 fancy upsampling
const realW: usize = memory.data(16); // i32[3]: the component's real width at its IDCT size
const realH: usize = memory.data(16); // i32[3]: the same, height

/**
 * libjpeg's fancy upsampling (jdsample.c) of component c into `dst` for output row y: across,
 * 3/4 of the nearer sample and 1/4 of the further one; h2v2 first mixes rows the same way
 * (3/4 this row, 1/4 the row above for an upper output row, below for a lower one, the edge row
 * repeated at the top and bottom), with libjpeg's rounding. Same integers as libjpeg.
 */
function upsampleRow(c: i32, y: i32, dst: usize): void {
  const mode = load<i32>(fancy + (<usize>c << 2));
  const w = load<i32>(realW + (<usize>c << 2));
  const h = load<i32>(realH + (<usize>c << 2));
  const pw = <usize>load<i32>(cPw + (<usize>c << 2));
  const plane = load<usize>(cPlane + (<usize>c << 2));
  if (mode == 1) {
    const p = plane + <usize>y * pw;
    let v = <i32>load<u8>(p);
    store<u8>(dst, <u8>v);
    store<u8>(dst + 1, <u8>((v * 3 + <i32>load<u8>(p + 1) + 2) >> 2));
    for (let i = 1; i < w - 1; i++) {
      v = <i32>load<u8>(p + <usize>i) * 3;
      store<u8>(dst + (<usize>i << 1), <u8>((v + <i32>load<u8>(p + <usize>(i - 1)) + 1) >> 2));
      store<u8>(dst + (<usize>i << 1) + 1, <u8>((v + <i32>load<u8>(p + <usize>(i + 1)) + 2) >> 2));
    }
    v = <i32>load<u8>(p + <usize>(w - 1));
    store<u8>(dst + (<usize>(w - 1) << 1), <u8>((v * 3 + <i32>load<u8>(p + <usize>(w - 2)) + 1) >> 2));
    store<u8>(dst + (<usize>(w - 1) << 1) + 1, <u8>v);
    return;
  }
  const row = y >> 1;
  const near = (y & 1) == 0 ? (row > 0 ? row - 1 : 0) : (row + 1 < h ? row + 1 : h - 1);
  const p0 = plane + <usize>row * pw;
  const p1 = plane + <usize>near * pw;
  let last = 0;
  let cur = <i32>load<u8>(p0) * 3 + <i32>load<u8>(p1);
  let next = <i32>load<u8>(p0 + 1) * 3 + <i32>load<u8>(p1 + 1);
  store<u8>(dst, <u8>((cur * 4 + 8) >> 4));
  store<u8>(dst + 1, <u8>((cur * 3 + next + 7) >> 4));
  last = cur;
  cur = next;
  for (let i = 1; i < w - 1; i++) {
    next = <i32>load<u8>(p0 + <usize>(i + 1)) * 3 + <i32>load<u8>(p1 + <usize>(i + 1));
    store<u8>(dst + (<usize>i << 1), <u8>((cur * 3 + last + 8) >> 4));
    store<u8>(dst + (<usize>i << 1) + 1, <u8>((cur * 3 + next + 7) >> 4));
    last = cur;
    cur = next;
  }
  store<u8>(dst + (<usize>(w - 1) << 1), <u8>((cur * 3 + last + 8) >> 4));
  store<u8>(dst + (<usize>(w - 1) << 1) + 1, <u8>((cur * 4 + 7) >> 4));
}

/**
 * Writes RGBA: each chroma component upsampled as libjpeg does by default (fancy h2v1 or h2v2
 * where the remaining ratio is 2 across and 1 or 2 down, its IDCT is larger than 1x1 and it is
 * more than 2 samples wide), else its samples replicated by the remaining ratio (hmax·minN /
 * (h·N) across, the same down); then YCbCr -> RGB.
 */
function colour(): void {
  let pow2 = true;
  for (let c = 0; c < ncomp; c++) {
    const ch = load<i32>(cH + (<usize>c << 2)), cv = load<i32>(cV + (<usize>c << 2));
    const n = load<i32>(cN + (<usize>c << 2));
    const h = (hmax * minN) / (ch * n), v = (vmax * minN) / (cv * n);
    // The component's real size at its IDCT size (libjpeg's downsampled_width/height).
    const w = (width * ch * n + hmax * 8 - 1) / (hmax * 8);
    const ht = (height * cv * n + vmax * 8 - 1) / (vmax * 8);
    store<i32>(realW + (<usize>c << 2), w);
    store<i32>(realH + (<usize>c << 2), ht);
    let mode = 0;
    if (c > 0 && n > 1 && h == 2 && (v == 1 || v == 2) && w > 2) mode = v;
    store<i32>(fancy + (<usize>c << 2), mode);
    store<i32>(rh + (<usize>c << 2), mode ? 1 : h);
    store<i32>(rv + (<usize>c << 2), v);
    if (log2(load<i32>(rh + (<usize>c << 2))) < 0) pow2 = false;
  }
  for (let y = 0; y < outH; y++) {
    for (let c = 0; c < ncomp; c++) {
      if (load<i32>(fancy + (<usize>c << 2))) {
        const dst = upPtr + <usize>(c - 1) * (<usize>outW + 64);
        upsampleRow(c, y, dst);
        store<usize>(rowPtr + (<usize>c << 2), dst);
        continue;
      }
      const r = load<i32>(rv + (<usize>c << 2));
      store<usize>(
        rowPtr + (<usize>c << 2),
        load<usize>(cPlane + (<usize>c << 2)) +
          <usize>(y / r) * <usize>load<i32>(cPw + (<usize>c << 2)),
      );
    }
    const row = outPtr + <usize>y * <usize>outW * 4;
    const p0 = load<usize>(rowPtr);
    if (ncomp == 1) {
      for (let x = 0; x < outW; x++) {
        const v = <u32>load<u8>(p0 + <usize>x);
        store<u32>(row + (<usize>x << 2), v | (v << 8) | (v << 16) | 0xff000000);
      }
      continue;
    }
    const p1 = load<usize>(rowPtr + 4), p2 = load<usize>(rowPtr + 8);
    const r0 = load<i32>(rh), r1 = load<i32>(rh + 4), r2 = load<i32>(rh + 8);
    const s0 = log2(r0), s1 = log2(r1), s2 = log2(r2);
    let x = 0;
    if (r0 == 1 && r1 == 1 && r2 == 1) {
      // No replication left (4:4:4, or 4:2:0 at 1/2 and below): four pixels per step, the same
      // integer arithmetic as the scalar loop; the saturating narrows are the clamp.
      const k128 = i32x4.splat(128);
      const half = i32x4.splat(32768);
      const alpha = i32x4.splat(255);
      for (; x + 4 <= outW; x += 4) {
        const yy = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(p0 + <usize>x)));
        const cb = i32x4.sub(i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(p1 + <usize>x))), k128);
        const cr = i32x4.sub(i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(p2 + <usize>x))), k128);
        const red = i32x4.add(yy, i32x4.shr_s(i32x4.add(i32x4.mul(cr, i32x4.splat(91881)), half), 16));
        const green = i32x4.add(yy, i32x4.shr_s(i32x4.add(i32x4.add(i32x4.mul(cb, i32x4.splat(-22554)), i32x4.mul(cr, i32x4.splat(-46802))), half), 16));
        const blue = i32x4.add(yy, i32x4.shr_s(i32x4.add(i32x4.mul(cb, i32x4.splat(116130)), half), 16));
        const planar = i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(red, green), i16x8.narrow_i32x4_s(blue, alpha));
        v128.store(row + (<usize>x << 2), i8x16.shuffle(planar, planar, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
      }
    }
    for (; x < outW; x++) {
      const yy = <i32>load<u8>(p0 + <usize>(pow2 ? x >> s0 : x / r0));
      const cb = <i32>load<u8>(p1 + <usize>(pow2 ? x >> s1 : x / r1)) - 128;
      const cr = <i32>load<u8>(p2 + <usize>(pow2 ? x >> s2 : x / r2)) - 128;
      // libjpeg's jdcolor.c: FIX(1.40200), FIX(0.34414), FIX(0.71414), FIX(1.77200), 16 bits.
      const red = clampi(yy + ((91881 * cr + 32768) >> 16));
      const green = clampi(yy + ((-22554 * cb - 46802 * cr + 32768) >> 16));
      const blue = clampi(yy + ((116130 * cb + 32768) >> 16));
      store<u32>(
        row + (<usize>x << 2),
        <u32>red | (<u32>green << 8) | (<u32>blue << 16) | 0xff000000,
      );
    }
  }
}

// ---- Driver ---------------------------------------------------------------------------------

/**
 * Decodes the `len` bytes the host wrote at input(len) at scale 1 / 2^shift (shift 0..3).
 * Returns 0 (then info() describes the RGBA result) or a negative status. Flags: 1 stops after
 * the frame header (info 0, 1, 5, 6 are then valid); 2 selects the lowpass scaled IDCT instead of
 * libjpeg's box average (the same at shift 0).
 */
export function decode(len: i32, shift: i32, flags: i32): i32 {
  const headerOnly = (flags & 1) != 0;
  lowpass = (flags & 2) != 0;
  const start = inPtr;
  end = inPtr + <usize>len;
  dynBase = align16(end + 16);
  width = 0;
  height = 0;
  ncomp = 0;
  restartInterval = 0;
  adobeTransform = -1;
  let sawFrame = false;
  let sawScan = false;
  if (len < 4 || load<u8>(start) != 0xff || load<u8>(start + 1) != 0xd8) return E_FORMAT;
  let p = start + 2;
  while (p + 4 <= end) {
    if (load<u8>(p) != 0xff) {
      p++; // tolerate garbage between segments, as libjpeg does (with a warning)
      continue;
    }
    const marker = <i32>load<u8>(p + 1);
    if (marker == 0xff) {
      p++;
      continue;
    }
    if (marker == 0xd9) break; // EOI
    if (marker == 0xd8 || marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7) || marker == 0) {
      p += 2;
      continue;
    }
    const segLen = rd16(p + 2);
    const body = p + 4;
    const segEnd = p + 2 + <usize>segLen;
    if (segLen < 2 || segEnd > end) return E_FORMAT;
    let st = OK;
    if (marker == 0xdb) st = readDQT(body, segEnd);
    else if (marker == 0xc4) st = readDHT(body, segEnd);
    else if (marker == 0xdd) {
      if (segLen < 4) return E_FORMAT;
      restartInterval = rd16(body);
    } else if (marker >= 0xc0 && marker <= 0xcf && marker != 0xc8 && marker != 0xcc) {
      if (sawFrame) return E_FORMAT;
      st = readSOF(body, segEnd, marker, shift);
      sawFrame = true;
      if (st == OK && headerOnly) return OK;
      if (st == OK) st = layout();
    } else if (marker == 0xcc) {
      return E_UNSUPPORTED; // arithmetic conditioning: arithmetic coding
    } else if (marker == 0xee && segLen >= 14) {
      adobeTransform = <i32>load<u8>(body + 11);
    } else if (marker == 0xda) {
      if (!sawFrame) return E_FORMAT;
      st = readScan(body, segEnd);
      sawScan = true;
      if (st != OK) return st;
      // After the entropy-coded data: the next marker that is not a stray RSTn.
      p = nextMarker(pos);
      while (p + 1 < end && load<u8>(p + 1) >= 0xd0 && load<u8>(p + 1) <= 0xd7) p = nextMarker(p + 2);
      continue;
    }
    if (st != OK) return st;
    p = segEnd;
  }
  if (!sawFrame || !sawScan) return E_FORMAT;
  if (ncomp == 3 && adobeTransform == 0) return E_UNSUPPORTED; // RGB JPEG, not YCbCr
  for (let c = 0; c < ncomp; c++) idctComponent(c);
  colour();
  return OK;
}
