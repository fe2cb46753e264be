/**
 * Decode → resize → encode: JPEG or PNG in, JPEG or PNG out. A JPEG is decoded by our WASM decoder
 * at the smallest DCT scale (1, 1/2, 1/4, 1/8) that keeps at least twice the target width, then
 * resized with Lanczos-3 (sharp's shrink-on-load); PNGs and the JPEG kinds our decoder refuses are
 * decoded by imagescript, and imagescript encodes (JPEG, PNG, lossy WebP). The source size is read from the header first
 * and refused above {@link MAX_PIXELS} before anything is decoded; images are never enlarged.
 *
 * @example
 * ```ts
 * import { Image } from "imagescript";
 * import { transcode } from "./pipeline.ts";
 *
 * const src = await new Image(64, 32).fill(0xff0000ff).encode();
 * const out = await transcode(src, { width: 16, format: "jpeg", quality: 80 });
 * if (out.width !== 16 || out.height !== 8 || out.format !== "jpeg") throw new Error("16x8 JPEG");
 * ```
 *
 * @module
 */
import { Image } from "imagescript";
import { MAX_PIXELS } from "./_common.ts";
import { createJpegDecoder, type JpegDecoder, jpegShiftFor } from "./jpeg.ts";
import { type OutputFormat, probeImage } from "./probe.ts";
import { createWasmResizer, type WasmResizer } from "./wasm_resize.ts";

/** What to produce. */
export interface TranscodeOptions {
  /** Target width in pixels; the height keeps the aspect ratio. Default (or ≥ source): unchanged. */
  width?: number;
  /** Output format; default: the input's. */
  format?: OutputFormat;
  /** JPEG and WebP quality 1–100; default 80. Ignored for PNG. */
  quality?: number;
  /** Largest source (width × height) accepted; default and at most {@link MAX_PIXELS}. */
  maxPixels?: number;
}

/**
 * WASM memory never shrinks: a shared decoder or resizer that grew past this for a large image
 * is dropped after the call (and a new one made for the next), so the memory can be collected.
 */
export const KEEP_WASM_BYTES = 128 * 1024 * 1024;

/** The encoded result. */
export interface Transcoded {
  bytes: Uint8Array;
  format: OutputFormat;
  width: number;
  height: number;
  sourceWidth: number;
  sourceHeight: number;
}

let shared: WasmResizer | undefined;
let sharedJpeg: JpegDecoder | undefined;

/**
 * Decodes at 1/2^shift with our decoder and resizes to `w` wide (`undefined`: no resize);
 * `undefined` if the decoder does not handle this JPEG (the caller falls back to imagescript).
 */
function ourJpeg(
  input: Uint8Array,
  shift: number,
  sw: number,
  sh: number,
  w: number | undefined,
  r: WasmResizer,
): Image | undefined {
  const d = (sharedJpeg ??= createJpegDecoder());
  let decoded;
  try {
    decoded = d.decode(input, shift, true);
  } catch (e) {
    if (e instanceof RangeError) return undefined; // a kind of JPEG it does not decode
    throw e;
  }
  if (decoded.width !== sw || decoded.height !== sh) {
    throw new SyntaxError(
      `Cannot transcode image: header says ${sw}x${sh}, decoder found ${decoded.width}x${decoded.height}`,
    );
  }
  if (w === undefined) {
    const full = new Image(sw, sh);
    full.bitmap.set(decoded.pixels);
    return full;
  }
  const dh = scaledHeight(sw, sh, w);
  const out = new Image(w, dh);
  out.bitmap.set(r.resizeView(decoded.pixels, decoded.outWidth, decoded.outHeight, w, dh));
  return out;
}

/** Target height for `width` keeping the aspect ratio of `sw`×`sh` (at least 1). */
export function scaledHeight(sw: number, sh: number, width: number): number {
  return Math.max(1, Math.round((sh * width) / sw));
}

/**
 * Decodes `input` (JPEG or PNG), downsizes it to `options.width` and encodes it. Throws
 * `SyntaxError` for bytes that are not a JPEG or PNG, `RangeError` for a source over
 * {@link MAX_PIXELS} or a bad option. The resizer is shared per process unless one is given.
 */
export async function transcode(
  input: Uint8Array,
  options: TranscodeOptions = {},
  resizer?: WasmResizer,
): Promise<Transcoded> {
  const info = probeImage(input);
  if (!info) throw new SyntaxError("Cannot transcode image: not a JPEG or PNG");
  const { width: sw, height: sh } = info;
  const maxPixels = Math.min(options.maxPixels ?? MAX_PIXELS, MAX_PIXELS);
  if (sw < 1 || sh < 1 || sw * sh > maxPixels) {
    throw new RangeError(
      `Cannot transcode image: ${sw}x${sh} is outside 1 to ${maxPixels} pixels`,
    );
  }
  const quality = options.quality ?? 80;
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new RangeError(`Cannot transcode image: quality must be 1 to 100: received ${quality}`);
  }
  const w = options.width;
  if (w !== undefined && (!Number.isInteger(w) || w < 1)) {
    throw new RangeError(`Cannot transcode image: width must be a positive integer: received ${w}`);
  }
  const format = options.format ?? info.format;
  const r = resizer ?? (shared ??= createWasmResizer());
  let out: Image | undefined;
  if (info.format === "jpeg") {
    const resize = w !== undefined && w < sw ? w : undefined;
    out = ourJpeg(input, resize ? jpegShiftFor(sw, 2 * resize) : 0, sw, sh, resize, r);
  }
  if (!out) {
    const decoded = await Image.decode(input);
    if (decoded.width !== sw || decoded.height !== sh) {
      throw new SyntaxError(
        `Cannot transcode image: header says ${sw}x${sh}, decoder gave ${decoded.width}x${decoded.height}`,
      );
    }
    out = decoded;
    if (w !== undefined && w < sw) {
      const dh = scaledHeight(sw, sh, w);
      out = new Image(w, dh);
      // Copied before any await: the view is only valid until the resizer's next call.
      out.bitmap.set(r.resizeView(decoded.bitmap, sw, sh, w, dh));
    }
  }
  if (shared && shared.memoryBytes > KEEP_WASM_BYTES) shared = undefined;
  if (sharedJpeg && sharedJpeg.memoryBytes > KEEP_WASM_BYTES) sharedJpeg = undefined;
  const bytes = format === "jpeg"
    ? await out.encodeJPEG(quality as Parameters<Image["encodeJPEG"]>[0])
    : format === "webp"
    ? await out.encodeWEBP(quality as Parameters<Image["encodeWEBP"]>[0])
    : await out.encode(1);
  return { bytes, format, width: out.width, height: out.height, sourceWidth: sw, sourceHeight: sh };
}
