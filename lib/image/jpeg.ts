/**
 * Our JPEG decoder (`wasm/jpeg.ts`, built to `wasm/build/jpeg.wasm`): baseline, extended and
 * progressive Huffman JPEGs, 8-bit, grey or YCbCr, decoded at 1/1, 1/2, 1/4 or 1/8 scale in the
 * DCT domain (the smaller inverse DCTs run on the low coefficients only, as libjpeg's
 * `scale_denom` does). It exists because a full-size decode is the slow part of a downscale:
 * a 1920×1080 photo wanted 480 px wide is decoded at 1/2 (960×540) and then resized.
 *
 * @example
 * ```ts
 * import { createJpegDecoder } from "./jpeg.ts";
 *
 * const d = createJpegDecoder();
 * let threw = false;
 * try {
 *   d.decode(new Uint8Array([1, 2, 3, 4]), 0);
 * } catch (e) {
 *   threw = e instanceof SyntaxError;
 * }
 * if (!threw) throw new Error("not a JPEG: SyntaxError");
 * ```
 *
 * @module
 */
import { wasmModuleLoader } from "../common/wasm_module.ts";

const WASM_URL = new URL("../../wasm/build/jpeg.wasm", import.meta.url);

/** Status codes of the module (keep equal to `wasm/jpeg.ts`). */
const E_FORMAT = -1;
const E_UNSUPPORTED = -2;

/** The module's exports (numeric ABI, see `wasm/README.md`). */
interface Exports {
  memory: WebAssembly.Memory;
  input(len: number): number;
  info(which: number): number;
  decode(len: number, shift: number, flags: number): number;
}

/** A decoded image: RGBA pixels at the scaled size. */
export interface DecodedJpeg {
  /** Full-size dimensions from the frame header. */
  width: number;
  height: number;
  /** Dimensions of `pixels`: `ceil(width / 2^shift)` × `ceil(height / 2^shift)`. */
  outWidth: number;
  outHeight: number;
  progressive: boolean;
  /** RGBA, a view of the decoder's memory: valid until its next call. */
  pixels: Uint8Array;
}

/** Largest shift (scale 1/2^shift) whose output is at least `minWidth` wide (0 to 3). */
export function jpegShiftFor(width: number, minWidth: number): number {
  let s = 0;
  while (s < 3 && Math.ceil(width / 2 ** (s + 1)) >= minWidth) s++;
  return s;
}

/** Compiles the module once per process (synchronously). */
const wasmModule = wasmModuleLoader(WASM_URL, "the JPEG decoder");

/** One decoder instance (its own memory). Synchronous; not re-entrant. */
export class JpegDecoder {
  readonly #x: Exports;

  constructor() {
    this.#x = new WebAssembly.Instance(wasmModule()).exports as unknown as Exports;
  }

  /** Bytes of linear memory the module holds now (it grows for larger images, never shrinks). */
  get memoryBytes(): number {
    return this.#x.memory.buffer.byteLength;
  }

  /**
   * Decodes `bytes` at scale 1/2^`shift`. With `lowpass`, a scaled block is the inverse DCT of
   * its lowest coefficients only (a sharper cut-off, better before a further resize: the
   * pipeline uses it); without, each output pixel is the mean of the full-size pixels it covers,
   * as libjpeg's scaled decoding computes (the tests compare it with libjpeg). Throws `SyntaxError` for a malformed JPEG,
   * `RangeError` for one this decoder does not handle (arithmetic coding, lossless,
   * hierarchical, 12-bit, CMYK or RGB JPEGs) or that does not fit in memory.
   */
  decode(bytes: Uint8Array, shift: number, lowpass = false): DecodedJpeg {
    if (!Number.isInteger(shift) || shift < 0 || shift > 3) {
      throw new RangeError(`Cannot decode JPEG: shift must be 0 to 3: received ${shift}`);
    }
    const x = this.#x;
    const p = x.input(bytes.length);
    if (p === 0) throw new RangeError(`Cannot decode JPEG: no memory for ${bytes.length} bytes`);
    new Uint8Array(x.memory.buffer as ArrayBuffer, p, bytes.length).set(bytes);
    const st = x.decode(bytes.length, shift, lowpass ? 2 : 0);
    if (st === E_FORMAT) throw new SyntaxError("Cannot decode JPEG: malformed data");
    if (st === E_UNSUPPORTED) {
      throw new RangeError(
        "Cannot decode JPEG: not supported (arithmetic, lossless, hierarchical, 12-bit, CMYK or RGB)",
      );
    }
    if (st !== 0) throw new RangeError("Cannot decode JPEG: out of WASM memory");
    const outWidth = x.info(2), outHeight = x.info(3);
    return {
      width: x.info(0),
      height: x.info(1),
      outWidth,
      outHeight,
      progressive: x.info(5) === 1,
      pixels: new Uint8Array(x.memory.buffer as ArrayBuffer, x.info(4), outWidth * outHeight * 4),
    };
  }
}

/** A new decoder (the module is compiled once per process). */
export function createJpegDecoder(): JpegDecoder {
  return new JpegDecoder();
}
